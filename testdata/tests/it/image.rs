use minehound_testdata::{
    BuiltImage, Compression, DEMO_DROPPER_PATH, DEMO_MONERO_ADDRESS, DEMO_POOL_URL, Entry,
    ImageSpec, Layer, MediaTypes, Platform, demo_image, media_type, tiny_elf,
};
use serde_json::json;

use crate::support::{self, sha256, tar_files, tar_members, uncompress};

#[test]
fn demo_builds_identically_twice() {
    let (a, b) = (demo_image().build(), demo_image().build());
    assert_eq!(a, b);
    let (a, b) = (
        demo_image().build_with(MediaTypes::Docker),
        demo_image().build_with(MediaTypes::Docker),
    );
    assert_eq!(a, b);
}

/// Every blob's digest is its sha256; the manifest's descriptors give each
/// blob's digest, size and media type; diff_ids hash the uncompressed tars.
fn check_blobs(image: &BuiltImage) {
    for blob in std::iter::once(&image.manifest).chain(image.blobs()) {
        assert_eq!(blob.digest, sha256(&blob.bytes));
    }
    let manifest = support::json(&image.manifest.bytes);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], image.manifest.media_type);
    assert_eq!(manifest["config"]["digest"], image.config.digest);
    assert_eq!(manifest["config"]["size"], image.config.bytes.len());
    assert_eq!(manifest["config"]["mediaType"], image.config.media_type);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), image.layers.len());
    for ((descriptor, blob), diff_id) in layers.iter().zip(&image.layers).zip(&image.diff_ids) {
        assert_eq!(descriptor["digest"], blob.digest);
        assert_eq!(descriptor["size"], blob.bytes.len());
        assert_eq!(descriptor["mediaType"], blob.media_type);
        assert_eq!(*diff_id, sha256(&uncompress(&blob.media_type, &blob.bytes)));
    }
    let config = support::json(&image.config.bytes);
    assert_eq!(
        config["rootfs"],
        json!({"diff_ids": image.diff_ids, "type": "layers"})
    );
}

#[test]
fn demo_blobs_digests_sizes_and_diff_ids_agree() {
    let image = demo_image().build();
    check_blobs(&image);
    assert_eq!(image.manifest.media_type, media_type::OCI_MANIFEST);
    assert_eq!(image.config.media_type, media_type::OCI_CONFIG);
    assert!(
        image
            .layers
            .iter()
            .all(|l| l.media_type == media_type::OCI_LAYER_GZIP)
    );
    assert!(
        image
            .layers
            .iter()
            .all(|l| l.bytes.starts_with(&[0x1f, 0x8b]))
    );
}

#[test]
fn demo_config_and_layers_hold_the_evidence() {
    let image = demo_image().build();
    let config = support::json(&image.config.bytes);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert!(config.get("variant").is_none());
    assert_eq!(config["config"]["Entrypoint"], json!(["/bin/hello"]));
    assert!(config["config"].get("Cmd").is_none());
    assert_eq!(
        config["config"]["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(
        config["history"],
        json!([
            {"created_by": "ADD rootfs.tar /"},
            {"created_by": "COPY app/ /"},
            {"created_by": "RUN rm /usr/local/bin/start.sh"},
        ])
    );

    let layers: Vec<_> = (0..3)
        .map(|i| tar_files(&image.layer_tar(i).unwrap()))
        .collect();
    assert_eq!(layers[0]["bin/hello"], tiny_elf(b"hello"));
    assert!(
        layers[0].contains_key("etc/os-release")
            && layers[0].contains_key("usr/share/doc/readme.txt")
    );

    let config_json = String::from_utf8(layers[1]["opt/app/config.json"].clone()).unwrap();
    assert!(config_json.contains(DEMO_POOL_URL) && config_json.contains(DEMO_MONERO_ADDRESS));
    let script =
        String::from_utf8(layers[1][DEMO_DROPPER_PATH.trim_start_matches('/')].clone()).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(script.contains("/tmp/.x/xmrig -o stratum+tcp://pool.supportxmr.com:3333 -u 4"));

    let cleanup = tar_members(&image.layer_tar(2).unwrap());
    let whiteout = &cleanup["usr/local/bin/.wh.start.sh"];
    assert_eq!(whiteout.0, tar::EntryType::Regular);
    assert!(whiteout.1.is_empty());
}

#[test]
fn every_compression_and_both_media_type_families() {
    let entries = vec![
        Entry::file("/a", b"alpha".to_vec()),
        Entry::Opaque { dir: "/etc".into() },
    ];
    let spec = ImageSpec {
        layers: [Compression::Gzip, Compression::Zstd, Compression::None]
            .into_iter()
            .map(|compression| Layer {
                entries: entries.clone(),
                compression,
                created_by: "x".into(),
            })
            .collect(),
        platform: Platform::linux("arm64", Some("v8")),
        cmd: Some(vec!["sh".into()]),
        ..ImageSpec::default()
    };

    let oci = spec.build();
    check_blobs(&oci);
    let types: Vec<_> = oci.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(
        types,
        [
            media_type::OCI_LAYER_GZIP,
            media_type::OCI_LAYER_ZSTD,
            media_type::OCI_LAYER_TAR
        ]
    );
    assert!(
        oci.layers[1].bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "zstd magic"
    );
    // Same tar under each compression: same diff_id.
    assert!(oci.diff_ids.iter().all(|d| *d == oci.diff_ids[0]));
    let config = support::json(&oci.config.bytes);
    assert_eq!(
        (&config["architecture"], &config["variant"]),
        (&json!("arm64"), &json!("v8"))
    );
    assert_eq!(config["config"], json!({"Cmd": ["sh"]}));

    let docker = spec.build_with(MediaTypes::Docker);
    check_blobs(&docker);
    assert_eq!(docker.manifest.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(docker.config.media_type, media_type::DOCKER_CONFIG);
    let types: Vec<_> = docker
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            media_type::DOCKER_LAYER_GZIP,
            media_type::DOCKER_LAYER_ZSTD,
            media_type::DOCKER_LAYER_TAR
        ]
    );
    assert_eq!(
        docker.config.bytes, oci.config.bytes,
        "only descriptors differ"
    );
    assert_ne!(docker.manifest.digest, oci.manifest.digest);
}

#[test]
fn an_image_with_no_layers_still_builds() {
    let image = ImageSpec::default().build();
    check_blobs(&image);
    assert!(image.layers.is_empty());
}
