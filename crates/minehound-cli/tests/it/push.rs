//! `minehound push`: the pre-push gate against a real registry process.

use std::path::Path;

use minehound_testdata::registry::{Auth, RegistryProcess, generate_tls, htpasswd_file};
use minehound_testdata::{BuiltImage, Platform, write_oci_layout_multi_platform};

use super::*;

fn clean_image(arch: &str) -> BuiltImage {
    ImageSpec {
        layers: vec![
            Layer::gzip(
                "ADD rootfs.tar /",
                vec![Entry::file("/etc/os-release", "ID=clean\n")],
            ),
            Layer::gzip(
                "COPY app /app",
                vec![Entry::file(
                    "/app/run.sh",
                    format!("#!/bin/sh\necho {arch}\n"),
                )],
            ),
        ],
        platform: Platform::linux(arch, None),
        ..ImageSpec::default()
    }
    .build()
}

fn registry(dir: &Path) -> RegistryProcess {
    RegistryProcess::start(&dir.join("work"), &dir.join("storage"), None, &Auth::None).unwrap()
}

/// Whether the registry's storage holds anything for `repo`: a refused push
/// must not even start an upload.
fn repository_exists(dir: &Path, repo: &str) -> bool {
    dir.join("storage/docker/registry/v2/repositories")
        .join(repo)
        .exists()
}

fn scan_registry(reference: &str, extra: &[&str]) -> Value {
    let mut args = vec!["scan", "-q", "-f", "json"];
    args.extend_from_slice(extra);
    args.push(reference);
    scan_json(&args, None, 0)
}

#[test]
fn a_miner_image_is_refused_and_nothing_is_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let source = demo_layout(&dir.path().join("demo"));
    let destination = format!("{}/team/app:1.0", registry.host);
    let out = minehound()
        .args(["push", "-f", "json", &source, &destination])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "not pushing {destination}"
        )))
        .get_output()
        .clone();
    let report = json_of(&out.stdout);
    assert!(!report["findings"].as_array().unwrap().is_empty());
    assert!(!repository_exists(dir.path(), "team/app"));
    minehound()
        .args(["scan", "-q", &destination])
        .assert()
        .code(2);
}

#[test]
fn clean_images_are_pushed_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());

    // One platform: the manifest keeps its digest.
    let image = clean_image("amd64");
    let layout = dir.path().join("single");
    write_oci_layout(&layout, &[(&image, Some("1.0"))]).unwrap();
    let destination = format!("{}/team/clean:1.0", registry.host);
    minehound()
        .args([
            "push",
            "-q",
            &format!("oci:{}", layout.display()),
            &destination,
        ])
        .assert()
        .code(0);
    let pulled = scan_registry(&destination, &[]);
    assert_eq!(
        pulled["images"][0]["manifest_digest"],
        image.manifest.digest
    );

    // Again, to another tag: every blob is already there.
    minehound()
        .args([
            "push",
            &format!("oci:{}", layout.display()),
            &format!("{}/team/clean:again", registry.host),
        ])
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "0 blobs uploaded, 3 already there",
        ));

    // Several platforms: each manifest by digest, listed by a new index.
    let (amd64, arm64) = (clean_image("amd64"), clean_image("arm64"));
    let multi = dir.path().join("multi");
    write_oci_layout_multi_platform(&multi, &[&amd64, &arm64], Some("2.0")).unwrap();
    let destination = format!("{}/team/multi:2.0", registry.host);
    minehound()
        .args([
            "push",
            "-q",
            &format!("oci:{}", multi.display()),
            &destination,
        ])
        .assert()
        .code(0);
    let pulled = scan_registry(&destination, &["--all-platforms"]);
    let mut digests: Vec<&str> = pulled["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["manifest_digest"].as_str().unwrap())
        .collect();
    digests.sort();
    let mut expected = vec![
        amd64.manifest.digest.as_str(),
        arm64.manifest.digest.as_str(),
    ];
    expected.sort();
    assert_eq!(digests, expected);

    // docker save output has no manifest: one is written for it.
    let archive = dir.path().join("saved.tar");
    write_docker_archive_classic(File::create(&archive).unwrap(), &image, &["clean:1.0"]).unwrap();
    let destination = format!("{}/team/saved:1.0", registry.host);
    minehound()
        .args([
            "push",
            "-q",
            &format!("docker-archive:{}", archive.display()),
            &destination,
        ])
        .assert()
        .code(0);
    let pulled = scan_registry(&destination, &[]);
    assert_eq!(pulled["images"][0]["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        pulled["images"][0]["layers"][1]["diff_id"],
        image.diff_ids[1]
    );
}

#[test]
fn push_authenticates_over_tls_and_fails_cleanly_on_bad_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let tls = generate_tls(&dir.path().join("tls")).unwrap();
    let htpasswd = htpasswd_file(dir.path(), "ci", "s3cret-push").unwrap();
    let registry = RegistryProcess::start(
        &dir.path().join("work"),
        &dir.path().join("storage"),
        Some(&tls),
        &Auth::Htpasswd(htpasswd),
    )
    .unwrap();
    let layout = dir.path().join("image");
    write_oci_layout(&layout, &[(&clean_image("amd64"), None)]).unwrap();
    let source = format!("oci:{}", layout.display());
    let destination = format!("{}/team/secure:1.0", registry.host);
    let config_dir = dir.path().join("docker-config");
    let push = |password: &str| {
        let mut cmd = minehound();
        cmd.args(["push", "-q", "--username", "ci", "--ca-file"])
            .arg(&tls.ca_cert)
            .args([&source, &destination])
            .env("MINEHOUND_PASSWORD", password)
            .env("DOCKER_CONFIG", &config_dir)
            .env_remove("REGISTRY_AUTH_FILE");
        cmd
    };
    let out = push("wrong").assert().code(2).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("push of"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password is never printed: {stderr}"
    );
    assert!(!repository_exists(dir.path(), "team/secure"));

    push("s3cret-push").assert().code(0);
    assert!(repository_exists(dir.path(), "team/secure"));
}
