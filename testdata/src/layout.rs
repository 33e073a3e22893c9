//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/*`) as a file
//! tree, written to a directory here and to a tar by [`crate::archive`].

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::blob::Blob;
use crate::document::{Descriptor, Index, OciLayout, to_json};
use crate::image::BuiltImage;
use crate::media_type as mt;

/// The annotation naming a manifest's tag in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Relative path -> contents. Sorted, so writing it in order is deterministic,
/// and shared blobs are stored once.
pub(crate) type FileTree = BTreeMap<String, Vec<u8>>;

/// Writes an OCI layout at `dir` whose `index.json` lists each image's
/// manifest directly, annotated with its tag when given. Creates `dir` if
/// needed; existing files are overwritten, others left alone.
pub fn write_oci_layout(dir: &Path, images: &[(&BuiltImage, Option<&str>)]) -> io::Result<()> {
    write_tree(dir, &single_platform_tree(images))
}

/// Writes an OCI layout at `dir` whose `index.json` points at one nested image
/// index with a manifest per image, each with its `platform` set: the shape of
/// a multi-platform image pulled with `skopeo copy --all` or built with buildx.
/// The nested index is a Docker manifest list when the images use Docker media
/// types.
pub fn write_oci_layout_multi_platform(
    dir: &Path,
    images: &[&BuiltImage],
    tag: Option<&str>,
) -> io::Result<()> {
    write_tree(dir, &multi_platform_tree(images, tag))
}

pub(crate) fn single_platform_tree(images: &[(&BuiltImage, Option<&str>)]) -> FileTree {
    let manifests = images
        .iter()
        .map(|(image, tag)| tagged(Descriptor::of(&image.manifest), *tag))
        .collect();
    let mut tree = tree_with_index(manifests);
    for (image, _) in images {
        add_image_blobs(&mut tree, image);
    }
    tree
}

pub(crate) fn multi_platform_tree(images: &[&BuiltImage], tag: Option<&str>) -> FileTree {
    let nested = platform_index(images);
    let mut tree = tree_with_index(vec![tagged(Descriptor::of(&nested), tag)]);
    add_blob(&mut tree, &nested);
    for image in images {
        add_image_blobs(&mut tree, image);
    }
    tree
}

/// The image index (or Docker manifest list, for Docker media types) that
/// makes `images` one multi-platform image, each manifest with its platform.
pub fn platform_index(images: &[&BuiltImage]) -> Blob {
    let docker = images
        .first()
        .is_some_and(|i| i.manifest.media_type == mt::DOCKER_MANIFEST);
    let list_type = if docker {
        mt::DOCKER_MANIFEST_LIST
    } else {
        mt::OCI_INDEX
    };
    let index = Index {
        manifests: images
            .iter()
            .map(|image| Descriptor {
                platform: Some(image.platform.clone()),
                ..Descriptor::of(&image.manifest)
            })
            .collect(),
        media_type: list_type.to_owned(),
        schema_version: 2,
    };
    Blob::new(list_type, to_json(&index))
}

/// `oci-layout` and an `index.json` listing `manifests`.
pub(crate) fn tree_with_index(manifests: Vec<Descriptor>) -> FileTree {
    let index = Index {
        manifests,
        media_type: mt::OCI_INDEX.to_owned(),
        schema_version: 2,
    };
    let layout = OciLayout {
        image_layout_version: "1.0.0",
    };
    FileTree::from([
        ("index.json".to_owned(), to_json(&index)),
        ("oci-layout".to_owned(), to_json(&layout)),
    ])
}

fn tagged(mut descriptor: Descriptor, tag: Option<&str>) -> Descriptor {
    if let Some(tag) = tag {
        descriptor
            .annotations
            .insert(REF_NAME_ANNOTATION.to_owned(), tag.to_owned());
    }
    descriptor
}

fn add_image_blobs(tree: &mut FileTree, image: &BuiltImage) {
    add_blob(tree, &image.manifest);
    for blob in image.blobs() {
        add_blob(tree, blob);
    }
}

pub(crate) fn add_blob(tree: &mut FileTree, blob: &Blob) {
    tree.insert(blob.layout_path(), blob.bytes.clone());
}

fn write_tree(dir: &Path, tree: &FileTree) -> io::Result<()> {
    for (path, bytes) in tree {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}
