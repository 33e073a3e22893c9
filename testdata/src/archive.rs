//! Single-file image archives: `oci-archive` and both `docker save` formats.
//!
//! Members are written in sorted path order with their parent directories,
//! which is how `docker save` walks its staging directory: `manifest.json`
//! comes after the layers, so streaming readers must cope with that.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use crate::blob::{Blob, sha256_hex};
use crate::document::{
    Descriptor, DockerManifestItem, LegacyLayerJson, Manifest, Repositories, to_json,
};
use crate::image::BuiltImage;
use crate::layer::{Entry, tar_bytes};
use crate::layout::{
    FileTree, REF_NAME_ANNOTATION, add_blob, multi_platform_tree, single_platform_tree,
    tree_with_index,
};
use crate::media_type as mt;

/// The annotation containerd and Docker 25+ put the full image name in.
const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// Writes an `oci-archive`: the layout [`crate::write_oci_layout`] would write, as a tar.
pub fn write_oci_archive<W: Write>(
    mut writer: W,
    images: &[(&BuiltImage, Option<&str>)],
) -> io::Result<()> {
    writer.write_all(&tar_of_tree(&single_platform_tree(images)))
}

/// Writes an `oci-archive` of the multi-platform layout
/// [`crate::write_oci_layout_multi_platform`] would write.
pub fn write_oci_archive_multi_platform<W: Write>(
    mut writer: W,
    images: &[&BuiltImage],
    tag: Option<&str>,
) -> io::Result<()> {
    writer.write_all(&tar_of_tree(&multi_platform_tree(images, tag)))
}

/// Writes a classic `docker save` archive (Docker before 25):
/// `manifest.json` (`[{Config: "<hex>.json", Layers: ["<id>/layer.tar", …], RepoTags}]`),
/// the config as `<hex>.json`, per layer `<id>/{VERSION,json,layer.tar}` with the
/// layer uncompressed, and `repositories` when tagged. `repo_tags` are
/// `name[:tag]`, the tag defaulting to `latest`.
pub fn write_docker_archive_classic<W: Write>(
    mut writer: W,
    image: &BuiltImage,
    repo_tags: &[&str],
) -> io::Result<()> {
    let mut tree = FileTree::new();
    let mut layer_paths = Vec::with_capacity(image.layers.len());
    let mut parent: Option<String> = None;
    for (index, diff_id) in image.diff_ids.iter().enumerate() {
        // Docker derives v1 layer ids from the chain below them; hashing the
        // parent id with the diff_id keeps that (equal stacks, equal ids).
        let id =
            sha256_hex(format!("{}\n{diff_id}", parent.as_deref().unwrap_or_default()).as_bytes());
        let legacy = LegacyLayerJson {
            architecture: &image.platform.architecture,
            created: "1970-01-01T00:00:00Z",
            id: &id,
            os: &image.platform.os,
            parent: parent.as_deref(),
        };
        tree.insert(format!("{id}/VERSION"), b"1.0".to_vec());
        tree.insert(format!("{id}/json"), to_json(&legacy));
        tree.insert(format!("{id}/layer.tar"), image.layer_tar(index)?);
        layer_paths.push(format!("{id}/layer.tar"));
        parent = Some(id);
    }
    let config_path = format!("{}.json", image.config.hex());
    tree.insert(config_path.clone(), image.config.bytes.clone());
    add_docker_metadata(
        &mut tree,
        config_path,
        layer_paths,
        repo_tags,
        parent.as_deref(),
    );
    writer.write_all(&tar_of_tree(&tree))
}

/// Writes a `docker save` archive as Docker 25+ does: an OCI layout whose
/// layers are uncompressed tars (`application/vnd.oci.image.layer.v1.tar`, so
/// each layer digest equals its diff_id) and whose `index.json` lists the
/// manifest once per tag with its platform, plus `manifest.json` pointing at
/// `blobs/sha256/<hex>` paths and `repositories` when tagged.
pub fn write_docker_archive_oci<W: Write>(
    mut writer: W,
    image: &BuiltImage,
    repo_tags: &[&str],
) -> io::Result<()> {
    let layers = (0..image.layers.len())
        .map(|index| Ok(Blob::new(mt::OCI_LAYER_TAR, image.layer_tar(index)?)))
        .collect::<io::Result<Vec<_>>>()?;
    let config = Blob::new(mt::OCI_CONFIG, image.config.bytes.clone());
    let manifest = Manifest {
        config: Descriptor::of(&config),
        layers: layers.iter().map(Descriptor::of).collect(),
        media_type: mt::OCI_MANIFEST.to_owned(),
        schema_version: 2,
    };
    let manifest = Blob::new(mt::OCI_MANIFEST, to_json(&manifest));

    let untagged = Descriptor {
        platform: Some(image.platform.clone()),
        ..Descriptor::of(&manifest)
    };
    let descriptors = if repo_tags.is_empty() {
        vec![untagged]
    } else {
        repo_tags
            .iter()
            .map(|repo_tag| {
                let (name, tag) = split_repo_tag(repo_tag);
                let annotations = BTreeMap::from([
                    (
                        IMAGE_NAME_ANNOTATION.to_owned(),
                        format!("{}:{tag}", full_name(name)),
                    ),
                    (REF_NAME_ANNOTATION.to_owned(), tag.to_owned()),
                ]);
                Descriptor {
                    annotations,
                    ..untagged.clone()
                }
            })
            .collect()
    };

    let mut tree = tree_with_index(descriptors);
    for blob in [&manifest, &config].into_iter().chain(&layers) {
        add_blob(&mut tree, blob);
    }
    let layer_paths = layers.iter().map(Blob::layout_path).collect();
    let top = layers.last().map(Blob::hex);
    add_docker_metadata(&mut tree, config.layout_path(), layer_paths, repo_tags, top);
    writer.write_all(&tar_of_tree(&tree))
}

/// `manifest.json`, and `repositories` (name -> tag -> top layer) when tagged.
/// Both end in a newline, as Go's JSON encoder writes them.
fn add_docker_metadata(
    tree: &mut FileTree,
    config: String,
    layers: Vec<String>,
    repo_tags: &[&str],
    top_layer: Option<&str>,
) {
    let tags = repo_tags
        .iter()
        .map(|t| split_repo_tag(t))
        .collect::<Vec<_>>();
    let item = DockerManifestItem {
        config,
        layers,
        repo_tags: tags.iter().map(|(n, t)| format!("{n}:{t}")).collect(),
    };
    tree.insert("manifest.json".to_owned(), json_line(&[item]));
    if let (Some(top), false) = (top_layer, tags.is_empty()) {
        let mut repositories = Repositories::new();
        for (name, tag) in tags {
            repositories
                .entry(name.to_owned())
                .or_default()
                .insert(tag.to_owned(), top.to_owned());
        }
        tree.insert("repositories".to_owned(), json_line(&repositories));
    }
}

fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut json = to_json(value);
    json.push(b'\n');
    json
}

/// Splits `name[:tag]`; a `:` before the last `/` is a registry port, not a tag.
fn split_repo_tag(repo_tag: &str) -> (&str, &str) {
    match repo_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (repo_tag, "latest"),
    }
}

/// Docker's normalised name: `demo` -> `docker.io/library/demo`.
fn full_name(name: &str) -> String {
    match name.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => name.to_owned(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

/// The tree as a tar: every file, preceded by its parent directories.
fn tar_of_tree(tree: &FileTree) -> Vec<u8> {
    let mut dirs = BTreeSet::new();
    for path in tree.keys() {
        let mut rest = path.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            dirs.insert(format!("{parent}/"));
            rest = parent;
        }
    }
    let mut members: Vec<(&str, Entry)> = dirs
        .iter()
        .map(|dir| (dir.as_str(), Entry::dir(dir)))
        .collect();
    members.extend(
        tree.iter()
            .map(|(path, bytes)| (path.as_str(), Entry::file(path, bytes.clone()))),
    );
    members.sort_by(|a, b| a.0.cmp(b.0));
    tar_bytes(
        &members
            .into_iter()
            .map(|(_, entry)| entry)
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags_split_and_normalise_like_docker() {
        assert_eq!(split_repo_tag("demo"), ("demo", "latest"));
        assert_eq!(split_repo_tag("demo:1.0"), ("demo", "1.0"));
        assert_eq!(
            split_repo_tag("localhost:5000/team/app"),
            ("localhost:5000/team/app", "latest")
        );
        assert_eq!(
            split_repo_tag("localhost:5000/app:v2"),
            ("localhost:5000/app", "v2")
        );
        assert_eq!(full_name("demo"), "docker.io/library/demo");
        assert_eq!(full_name("team/app"), "docker.io/team/app");
        assert_eq!(full_name("ghcr.io/team/app"), "ghcr.io/team/app");
        assert_eq!(full_name("localhost/app"), "localhost/app");
    }

    #[test]
    fn tree_tar_lists_parents_before_children() {
        let tree = FileTree::from([
            ("a/b/c".to_owned(), b"x".to_vec()),
            ("z".to_owned(), Vec::new()),
        ]);
        let tar = tar_of_tree(&tree);
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect();
        assert_eq!(names, ["a/", "a/b/", "a/b/c", "z"]);
    }
}
