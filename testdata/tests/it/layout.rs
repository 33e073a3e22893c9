use minehound_testdata::{
    Entry, ImageSpec, Layer, MediaTypes, Platform, demo_image, tiny_elf, write_oci_layout,
    write_oci_layout_multi_platform,
};
use serde_json::json;

use crate::support::{check_layout, dir_files, scratch_dir, tar_files};

#[test]
fn demo_layout_passes_the_structural_check() {
    let image = demo_image().build();
    let dir = scratch_dir("layout-demo");
    write_oci_layout(&dir, &[(&image, Some("latest"))]).unwrap();
    let files = dir_files(&dir);

    let found = check_layout(&files);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tag.as_deref(), Some("latest"));
    assert_eq!(
        found[0].platform, None,
        "a single image is listed without a platform"
    );
    assert_eq!(
        found[0].config["config"]["Entrypoint"],
        json!(["/bin/hello"])
    );
    let app = tar_files(&found[0].layer_tars[1]);
    assert!(app.contains_key("opt/app/config.json"));
    assert_eq!(
        files[&format!("blobs/sha256/{}", image.manifest.digest[7..].to_owned())],
        image.manifest.bytes
    );
    // Exactly the layout files and the five blobs, nothing else.
    assert_eq!(files.len(), 2 + 1 + 1 + 3);
    assert_eq!(
        files["index.json"],
        serde_json::to_vec(&json!({
            "manifests": [{
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
                "digest": image.manifest.digest,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": image.manifest.bytes.len(),
            }],
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "schemaVersion": 2,
        }))
        .unwrap()
    );
}

#[test]
fn writing_the_layout_twice_gives_identical_files() {
    let (a, b) = (scratch_dir("layout-twice-a"), scratch_dir("layout-twice-b"));
    write_oci_layout(&a, &[(&demo_image().build(), Some("latest"))]).unwrap();
    write_oci_layout(&b, &[(&demo_image().build(), Some("latest"))]).unwrap();
    assert_eq!(dir_files(&a), dir_files(&b));
}

#[test]
fn several_images_share_blobs_and_keep_their_tags() {
    let demo = demo_image().build();
    let mut spec = demo_image();
    spec.layers.push(Layer::gzip(
        "RUN true",
        vec![Entry::file("/extra", b"x".to_vec())],
    ));
    let bigger = spec.build();
    let dir = scratch_dir("layout-several");
    write_oci_layout(
        &dir,
        &[(&demo, Some("v1")), (&bigger, Some("v2")), (&demo, None)],
    )
    .unwrap();
    let files = dir_files(&dir);

    let found = check_layout(&files);
    let tags: Vec<_> = found.iter().map(|f| f.tag.as_deref()).collect();
    assert_eq!(tags, [Some("v1"), Some("v2"), None]);
    // 3 shared layers + 1 extra + 2 configs + 2 manifests.
    assert_eq!(files.keys().filter(|k| k.starts_with("blobs/")).count(), 8);
}

#[test]
fn multi_platform_layout_nests_an_index_with_platforms() {
    let amd64 = demo_image().build();
    let arm64 = ImageSpec {
        platform: Platform::linux("arm64", Some("v8")),
        ..demo_image()
    }
    .build();
    let dir = scratch_dir("layout-multi");
    write_oci_layout_multi_platform(&dir, &[&amd64, &arm64], Some("latest")).unwrap();
    let files = dir_files(&dir);

    let found = check_layout(&files);
    let platforms: Vec<_> = found.iter().map(|f| f.platform.clone().unwrap()).collect();
    assert_eq!(
        platforms,
        [
            json!({"architecture": "amd64", "os": "linux"}),
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
        ]
    );
    assert!(found.iter().all(|f| f.tag.as_deref() == Some("latest")));

    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}

#[test]
fn multi_platform_docker_images_nest_a_manifest_list() {
    let amd64 = demo_image().build_with(MediaTypes::Docker);
    let arm64 = ImageSpec {
        platform: Platform::linux("arm64", Some("v8")),
        ..demo_image()
    }
    .build_with(MediaTypes::Docker);
    let dir = scratch_dir("layout-multi-docker");
    write_oci_layout_multi_platform(&dir, &[&amd64, &arm64], None).unwrap();
    let files = dir_files(&dir);
    assert_eq!(check_layout(&files).len(), 2);
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert!(index["manifests"][0].get("annotations").is_none());
}

#[test]
fn a_zip_inside_a_layer_is_readable() {
    let zip = minehound_testdata::zip_bytes(&[("xmrig", &tiny_elf(b"x"))]);
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "ADD tools.zip /opt/",
            vec![Entry::file("/opt/tools.zip", zip.clone())],
        )],
        ..ImageSpec::default()
    }
    .build();
    assert_eq!(
        tar_files(&image.layer_tar(0).unwrap())["opt/tools.zip"],
        zip
    );
}

/// The demo layout committed in `testdata/demo` is exactly what the generator
/// writes, so the README's first command scans generated, reviewable bytes.
#[test]
fn committed_demo_layout_matches_the_generator() {
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
    let fresh = tempfile_dir();
    minehound_testdata::write_oci_layout(
        &fresh,
        &[(
            &minehound_testdata::demo_image().build(),
            Some(minehound_testdata::DEMO_TAG),
        )],
    )
    .unwrap();
    let list = |root: &std::path::Path| {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        files.sort();
        files
    };
    assert_eq!(
        list(&committed),
        list(&fresh),
        "regenerate with: cargo run -p minehound-testdata -- demo testdata/demo"
    );
    for file in list(&fresh) {
        assert_eq!(
            std::fs::read(committed.join(&file)).unwrap(),
            std::fs::read(fresh.join(&file)).unwrap(),
            "{} differs; regenerate with: cargo run -p minehound-testdata -- demo testdata/demo",
            file.display()
        );
    }
    std::fs::remove_dir_all(&fresh).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("minehound-demo-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
