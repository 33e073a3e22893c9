//! `minehound scan-storage` over the storage tree a real registry wrote.

use minehound_testdata::registry::{Auth, RegistryProcess, push_blob, push_image, push_manifest};
use minehound_testdata::sha256_hex;

use super::*;

/// Six tagged images over one shared base, the demo image among them, and
/// one image pushed by digest only.
fn storage_with_images(dir: &Path) -> RegistryProcess {
    let registry =
        RegistryProcess::start(&dir.join("work"), &dir.join("storage"), None, &Auth::None)
            .expect("start docker-registry");
    let base = Layer::gzip(
        "ADD os /",
        vec![Entry::file("/etc/os-release", "ID=example\n".repeat(50))],
    );
    for n in 0..5 {
        let image = ImageSpec {
            layers: vec![
                base.clone(),
                Layer::gzip(
                    "COPY app /",
                    vec![Entry::file("/app/run.py", format!("print({n})\n"))],
                ),
            ],
            ..ImageSpec::default()
        }
        .build();
        push_image(&registry.host, "team/app", &format!("{n}"), &image).unwrap();
    }
    push_image(&registry.host, "team/demo", "latest", &demo_image().build()).unwrap();
    let loose = ImageSpec {
        layers: vec![base],
        ..ImageSpec::default()
    }
    .build();
    for blob in loose.blobs() {
        push_blob(&registry.host, "team/loose", blob).unwrap();
    }
    push_manifest(
        &registry.host,
        "team/loose",
        &loose.manifest.digest,
        &loose.manifest,
    )
    .unwrap();
    registry
}

#[test]
fn scan_storage_reports_every_image_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let _registry = storage_with_images(dir.path());
    let storage = dir.path().join("storage");
    let report = scan_json(
        &[
            "scan-storage",
            "--format",
            "json",
            storage.to_str().unwrap(),
        ],
        None,
        1,
    );
    let summary = &report["summary"];
    assert_eq!(summary["repositories"], 3);
    assert_eq!(summary["images"], 6);
    assert_eq!(summary["images_failed"], 0);
    assert_eq!(summary["layer_references"], 10 + 3);
    assert_eq!(summary["unique_layers"], 6 + 3);
    assert_eq!(summary["layers_scanned"], summary["unique_layers"]);
    assert!(summary["findings"]["high"].as_u64().unwrap() > 0);
    let images = report["images"].as_array().unwrap();
    let demo = images
        .iter()
        .find(|i| i["repository"] == "team/demo")
        .unwrap();
    assert_eq!(demo["tag"], "latest");
    assert_eq!(demo["report"]["target"], "team/demo:latest");
    assert!(!demo["report"]["findings"].as_array().unwrap().is_empty());

    // --untagged adds the image pushed by digest, whose only layer is
    // shared: one more image, no more layer scans.
    let all = scan_json(
        &[
            "scan-storage",
            "--untagged",
            "--format",
            "json",
            storage.to_str().unwrap(),
        ],
        None,
        1,
    );
    assert_eq!(all["summary"]["images"], 7);
    assert_eq!(all["summary"]["layers_scanned"], 9);
    let loose = &all["images"].as_array().unwrap()[6];
    assert_eq!(loose["repository"], "team/loose");
    assert!(loose.get("tag").is_none());
    assert!(loose["report"]["findings"].as_array().unwrap().is_empty());

    // The table names each image and ends with the summary; the v2
    // directory itself works as PATH too.
    let v2 = storage.join("docker/registry/v2");
    let out = minehound()
        .args(["scan-storage", "--format", "table", "--fail-on", "critical"])
        .arg(&v2)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    for needle in [
        "team/app:0",
        "team/demo:latest",
        "13 layer references, 9 unique layers",
    ] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
}

#[test]
fn an_image_with_a_missing_blob_fails_alone_with_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    let _registry = storage_with_images(dir.path());
    let storage = dir.path().join("storage");
    // Garbage collection removed the demo's top layer.
    let demo = demo_image().build();
    let hex = demo.layers[2]
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(hex, sha256_hex(&demo.layers[2].bytes));
    std::fs::remove_file(storage.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    )))
    .unwrap();
    let out = minehound()
        .args(["scan-storage", "--format", "json"])
        .arg(&storage)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "team/demo:latest could not be scanned",
        ))
        .get_output()
        .stdout
        .clone();
    let report = json_of(&out);
    assert_eq!(report["summary"]["images_failed"], 1);
    assert_eq!(report["summary"]["images"], 6);
    let failed = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repository"] == "team/demo")
        .unwrap();
    assert!(failed["error"].as_str().unwrap().contains(&hex), "{failed}");

    minehound()
        .args(["scan-storage"])
        .arg(dir.path().join("work"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not a Distribution storage directory",
        ));
}
