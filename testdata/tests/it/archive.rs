use std::collections::BTreeMap;

use minehound_testdata::{
    Compression, DEMO_REPO_TAG, ImageSpec, MediaTypes, Platform, demo_image,
    write_docker_archive_classic, write_docker_archive_oci, write_oci_archive,
    write_oci_archive_multi_platform, write_oci_layout,
};
use serde_json::json;

use crate::support::{check_layout, dir_files, json, scratch_dir, sha256, tar_files, tar_members};

fn written(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out).unwrap();
    out
}

#[test]
fn oci_archive_is_the_layout_as_a_tar() {
    let image = demo_image().build();
    let tar = written(|w| write_oci_archive(w, &[(&image, Some("latest"))]));
    assert_eq!(
        tar,
        written(|w| write_oci_archive(w, &[(&demo_image().build(), Some("latest"))]))
    );

    let members = tar_members(&tar);
    assert_eq!(members["blobs/"].0, tar::EntryType::Directory);
    assert_eq!(members["blobs/sha256/"].0, tar::EntryType::Directory);
    let files = tar_files(&tar);
    assert_eq!(check_layout(&files)[0].tag.as_deref(), Some("latest"));

    let dir = scratch_dir("oci-archive-vs-dir");
    write_oci_layout(&dir, &[(&image, Some("latest"))]).unwrap();
    assert_eq!(files, dir_files(&dir));
}

#[test]
fn multi_platform_oci_archive_passes_the_layout_check() {
    let amd64 = demo_image().build();
    let arm = ImageSpec {
        platform: Platform::linux("arm", Some("v7")),
        ..demo_image()
    }
    .build();
    let tar = written(|w| write_oci_archive_multi_platform(w, &[&amd64, &arm], Some("1.0")));
    let found = check_layout(&tar_files(&tar));
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[1].platform,
        Some(json!({"architecture": "arm", "os": "linux", "variant": "v7"}))
    );
}

/// Reads a docker archive's `manifest.json` and checks what it points at:
/// the config file, and each layer file hashing to the config's diff_id.
fn check_docker_manifest(
    files: &BTreeMap<String, Vec<u8>>,
    repo_tags: serde_json::Value,
) -> serde_json::Value {
    let manifest = json(&files["manifest.json"]);
    assert!(files["manifest.json"].ends_with(b"\n"));
    let items = manifest.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["RepoTags"], repo_tags);
    let config_bytes = &files[item["Config"].as_str().unwrap()];
    let config = json(config_bytes);
    let diff_ids: Vec<String> = item["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| {
            let tar = &files[path.as_str().unwrap()];
            tar::Archive::new(tar.as_slice())
                .entries()
                .unwrap()
                .for_each(|e| drop(e.unwrap()));
            sha256(tar)
        })
        .collect();
    assert_eq!(config["rootfs"]["diff_ids"], json!(diff_ids));
    item.clone()
}

#[test]
fn classic_docker_archive_has_ids_layer_tars_and_repositories() {
    let image = demo_image().build();
    let tar = written(|w| write_docker_archive_classic(w, &image, &[DEMO_REPO_TAG, "demo"]));
    assert_eq!(
        tar,
        written(|w| write_docker_archive_classic(
            w,
            &demo_image().build(),
            &[DEMO_REPO_TAG, "demo"]
        ))
    );
    let files = tar_files(&tar);

    let item = check_docker_manifest(&files, json!(["minehound-demo:latest", "demo:latest"]));
    assert_eq!(
        item["Config"],
        format!("{}.json", &image.config.digest[7..])
    );
    assert_eq!(files[item["Config"].as_str().unwrap()], image.config.bytes);

    let layers: Vec<&str> = item["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let ids: Vec<&str> = layers
        .iter()
        .map(|l| l.strip_suffix("/layer.tar").expect("<id>/layer.tar"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(id.len(), 64);
        assert_eq!(files[&format!("{id}/VERSION")], b"1.0");
        let legacy = json(&files[&format!("{id}/json")]);
        assert_eq!(legacy["id"], *id);
        let parent = if i == 0 {
            None
        } else {
            Some(json!(ids[i - 1]))
        };
        assert_eq!(legacy.get("parent").cloned(), parent);
        // Layers are stored uncompressed.
        assert_eq!(sha256(&files[layers[i]]), image.diff_ids[i]);
    }
    let top = ids.last().unwrap();
    assert_eq!(
        json(&files["repositories"]),
        json!({"demo": {"latest": top}, "minehound-demo": {"latest": top}})
    );
}

#[test]
fn docker_25_archive_is_an_oci_layout_plus_manifest_json() {
    let image = demo_image().build();
    let tar = written(|w| write_docker_archive_oci(w, &image, &[DEMO_REPO_TAG]));
    assert_eq!(
        tar,
        written(|w| write_docker_archive_oci(w, &demo_image().build(), &[DEMO_REPO_TAG]))
    );
    let files = tar_files(&tar);

    let found = check_layout(&files);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tag.as_deref(), Some("latest"));
    assert_eq!(
        found[0].platform,
        Some(json!({"architecture": "amd64", "os": "linux"}))
    );
    let layers = found[0].manifest["layers"].as_array().unwrap();
    for (layer, diff_id) in layers.iter().zip(&image.diff_ids) {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(
            layer["digest"], *diff_id,
            "uncompressed: layer digest is the diff_id"
        );
    }

    let index = json(&files["index.json"]);
    assert_eq!(
        index["manifests"][0]["annotations"],
        json!({
            "io.containerd.image.name": "docker.io/library/minehound-demo:latest",
            "org.opencontainers.image.ref.name": "latest",
        })
    );

    let item = check_docker_manifest(&files, json!(["minehound-demo:latest"]));
    assert_eq!(
        item["Config"],
        format!("blobs/sha256/{}", &image.config.digest[7..])
    );
    assert!(
        item["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("blobs/sha256/"))
    );
    let top = &image.diff_ids.last().unwrap()[7..];
    assert_eq!(
        json(&files["repositories"]),
        json!({"minehound-demo": {"latest": top}})
    );
}

#[test]
fn docker_archives_uncompress_zstd_and_docker_typed_layers() {
    let mut spec = demo_image();
    spec.layers[1].compression = Compression::Zstd;
    spec.layers[2].compression = Compression::None;
    let image = spec.build_with(MediaTypes::Docker);
    for tar in [
        written(|w| write_docker_archive_classic(w, &image, &[])),
        written(|w| write_docker_archive_oci(w, &image, &[])),
    ] {
        let files = tar_files(&tar);
        check_docker_manifest(&files, json!([]));
        assert!(
            !files.contains_key("repositories"),
            "untagged: no repositories file"
        );
    }
    let files = tar_files(&written(|w| write_docker_archive_oci(w, &image, &[])));
    assert!(
        json(&files["index.json"])["manifests"][0]
            .get("annotations")
            .is_none()
    );
}
