//! The same images through every source format give the same findings.

use std::fs::File;
use std::io::Write;

use minehound::{PlatformChoice, Severity, Status};
use minehound_testdata::{
    DEMO_CONFIG_PATH, DEMO_DROPPER_PATH, DEMO_REPO_TAG, Entry, ImageSpec, Layer, MediaTypes,
    demo_image, gzip, tar_bytes, write_docker_archive_classic, write_docker_archive_oci,
    write_oci_archive, write_oci_layout_multi_platform, zip_bytes, zstd,
};

use crate::support::*;

const MINER_CONFIG: &str = r#"{"pools":[{"url":"stratum+tcp://pool.supportxmr.com:3333","user":"4AminehoundDemoFixtureNotARea1Wa11et18FNVcjry6DLTahpw4BJRYfnu29GPWdksz7EMUbiqx5CKSZgov3AHQXemt1","pass":"x"}],"algo":"rx/0","donate-level":1,"cpu":{"enabled":true}}"#;

#[test]
fn demo_layout_reports_config_present_and_deleted_dropper() {
    let dir = tempfile::tempdir().unwrap();
    let image = demo_image().build();
    let report = scan(&layout(dir.path(), &image)).unwrap();

    let config = findings_for(&report, DEMO_CONFIG_PATH);
    assert!(
        !config.is_empty(),
        "config not found: {:#?}",
        report.findings
    );
    assert!(
        config
            .iter()
            .all(|f| f.status == Status::Present && f.layer.index == 1)
    );
    assert!(config.iter().any(|f| f.severity >= Severity::High));

    let dropper = findings_for(&report, DEMO_DROPPER_PATH);
    assert!(
        !dropper.is_empty(),
        "dropper not found: {:#?}",
        report.findings
    );
    assert!(
        dropper.iter().all(|f| f.status == Status::Deleted),
        "{dropper:#?}"
    );
    assert!(dropper.iter().any(|f| f.severity >= Severity::High));

    let finding = dropper[0];
    assert_eq!(
        finding.layer.digest.as_deref(),
        Some(image.layers[1].digest.as_str())
    );
    assert_eq!(finding.layer.created_by.as_deref(), Some("COPY app/ /"));
    assert_eq!(finding.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(finding.sha256.as_ref().map(String::len), Some(64));

    assert!(report.fails(Severity::Medium));
    assert_eq!(report.stats.layers, 3);
    assert_eq!(report.stats.images, 1);
    assert_eq!(report.stats.elf_files, 1);
    assert_eq!(
        report.images[0].manifest_digest.as_deref(),
        Some(image.manifest.digest.as_str())
    );
    let compressed: u64 = image.layers.iter().map(|l| l.bytes.len() as u64).sum();
    assert_eq!(report.stats.bytes_compressed, compressed);
    assert!(report.stats.bytes_uncompressed > compressed);
    assert!(!report.signatures.version.is_empty());
    assert_accounting(&report);
}

#[test]
fn every_archive_format_gives_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let image = demo_image().build();
    let expected = summary(
        &scan(&layout(&dir.path().join("layout"), &image)).unwrap(),
        Severity::Info,
    );
    assert!(!expected.is_empty());

    let oci_archive = dir.path().join("oci.tar");
    write_oci_archive(
        File::create(&oci_archive).unwrap(),
        &[(&image, Some("latest"))],
    )
    .unwrap();
    let classic = dir.path().join("docker.tar");
    write_docker_archive_classic(File::create(&classic).unwrap(), &image, &[DEMO_REPO_TAG])
        .unwrap();
    let modern = dir.path().join("docker-oci.tar");
    write_docker_archive_oci(File::create(&modern).unwrap(), &image, &[DEMO_REPO_TAG]).unwrap();
    // `docker save app | gzip > app.tar.gz`: only readable as a stream.
    let gzipped = dir.path().join("docker.tar.gz");
    File::create(&gzipped)
        .unwrap()
        .write_all(&gzip(&std::fs::read(&classic).unwrap()))
        .unwrap();

    for target in [
        format!("oci-archive:{}", oci_archive.display()),
        format!("docker-archive:{}", classic.display()),
        format!("docker-archive:{}", modern.display()),
        format!("docker-archive:{}:{DEMO_REPO_TAG}", classic.display()),
        format!("docker-archive:{}:{DEMO_REPO_TAG}", modern.display()),
        oci_archive.display().to_string(),
        classic.display().to_string(),
        modern.display().to_string(),
        gzipped.display().to_string(),
    ] {
        let report = scan(&target).unwrap_or_else(|e| panic!("{target}: {e:?}"));
        assert_eq!(summary(&report, Severity::Info), expected, "{target}");
        assert_eq!(report.stats.layers, 3, "{target}");
        assert_accounting(&report);
    }
}

#[test]
fn zstd_plain_and_docker_media_types_are_read() {
    let dir = tempfile::tempdir().unwrap();
    for (name, compression, media) in [
        (
            "zstd",
            minehound_testdata::Compression::Zstd,
            MediaTypes::Oci,
        ),
        (
            "plain",
            minehound_testdata::Compression::None,
            MediaTypes::Oci,
        ),
        (
            "docker",
            minehound_testdata::Compression::Gzip,
            MediaTypes::Docker,
        ),
    ] {
        let image = ImageSpec {
            layers: vec![Layer {
                entries: vec![Entry::file("/etc/xmrig/config.json", MINER_CONFIG)],
                compression,
                created_by: "COPY config.json /etc/xmrig/".into(),
            }],
            ..ImageSpec::default()
        }
        .build_with(media);
        let report = scan(&layout(&dir.path().join(name), &image)).unwrap();
        assert!(
            !findings_for(&report, "/etc/xmrig/config.json").is_empty(),
            "{name}: {:#?}",
            report.findings
        );
    }
}

#[test]
fn nested_archives_are_walked_and_named_outer_bang_inner() {
    let dir = tempfile::tempdir().unwrap();
    let inner_tar = tar_bytes(&[Entry::file("/conf/config.json", MINER_CONFIG)]);
    let image = one_layer(vec![
        Entry::file("/opt/bundle.tar.gz", gzip(&inner_tar)),
        Entry::file("/opt/bundle.tar.zst", zstd(&inner_tar)),
        Entry::file(
            "/opt/bundle.zip",
            zip_bytes(&[("conf/config.json", MINER_CONFIG.as_bytes())]),
        ),
        Entry::file("/opt/config.json.gz", gzip(MINER_CONFIG.as_bytes())),
        // tar.gz in a zip in a tar.gz: three levels.
        Entry::file(
            "/opt/deep.tgz",
            gzip(&tar_bytes(&[Entry::file(
                "/a.zip",
                zip_bytes(&[("b.tar.gz", &gzip(&inner_tar))]),
            )])),
        ),
    ]);
    let report = scan(&layout(dir.path(), &image)).unwrap();
    for path in [
        "/opt/bundle.tar.gz!/conf/config.json",
        "/opt/bundle.tar.zst!/conf/config.json",
        "/opt/bundle.zip!/conf/config.json",
        "/opt/config.json.gz!/config.json",
        "/opt/deep.tgz!/a.zip!/b.tar.gz!/conf/config.json",
    ] {
        assert!(
            !findings_for(&report, path).is_empty(),
            "{path} missing: {:#?}",
            report.findings
        );
    }
    assert_accounting(&report);

    // One level less than needed: the innermost archive is listed, not lost.
    let shallow = minehound::ScannerBuilder::new()
        .limits(minehound::Limits {
            max_depth: 2,
            ..Default::default()
        })
        .build()
        .unwrap();
    let report = scan_with(
        &shallow,
        &layout(&dir.path().join("again"), &image),
        PlatformChoice::Host,
    )
    .unwrap();
    assert!(findings_for(&report, "/opt/deep.tgz!/a.zip!/b.tar.gz!/conf/config.json").is_empty());
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        skipped
            .iter()
            .any(|(p, r)| *p == "/opt/deep.tgz!/a.zip!/b.tar.gz" && r.contains("nested deeper")),
        "{skipped:#?}"
    );
    assert_accounting(&report);
}

#[test]
fn files_over_the_size_limit_are_listed_as_skipped_and_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = MINER_CONFIG.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b' ', 4096));
    let image = one_layer(vec![
        Entry::file("/big/config.json", big),
        Entry::file("/small.txt", "hello\n"),
    ]);
    let scanner = minehound::ScannerBuilder::new()
        .limits(minehound::Limits {
            max_file_size: 1024,
            ..Default::default()
        })
        .build()
        .unwrap();
    let report = scan_with(&scanner, &layout(dir.path(), &image), PlatformChoice::Host).unwrap();
    let skipped = report
        .skipped
        .iter()
        .find(|s| s.path == "/big/config.json")
        .expect("listed");
    assert!(skipped.reason.contains("1024"), "{}", skipped.reason);
    // The first KiB holds the whole config, so it is still caught, without a hash.
    let found = findings_for(&report, "/big/config.json");
    assert!(!found.is_empty());
    assert!(found.iter().all(|f| f.sha256.is_none()));
    assert_eq!(report.stats.files, 2);
    assert_accounting(&report);
}

#[test]
fn platforms_are_chosen_and_named_in_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, dirty) = clean_amd64_dirty_arm64();
    write_oci_layout_multi_platform(dir.path(), &[&clean, &dirty], Some("latest")).unwrap();
    let target = format!("oci:{}", dir.path().display());

    // The host (amd64 here) image is clean.
    let report = scan_with(scanner(), &target, PlatformChoice::Host).unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(
        report.images[0].platform.as_deref(),
        Some(minehound::Platform::host().to_string().as_str())
    );
    assert!(report.findings.is_empty(), "{:#?}", report.findings);

    let arm = scan_with(
        scanner(),
        &target,
        PlatformChoice::Only("linux/arm64".parse().unwrap()),
    )
    .unwrap();
    assert!(
        arm.findings
            .iter()
            .all(|f| f.platform.as_deref() == Some("linux/arm64/v8"))
    );
    assert!(!arm.findings.is_empty());

    let all = scan_with(scanner(), &target, PlatformChoice::All).unwrap();
    assert_eq!(all.images.len(), 2);
    assert_eq!(all.findings.len(), arm.findings.len());

    let err = scan_with(
        scanner(),
        &target,
        PlatformChoice::Only("linux/s390x".parse().unwrap()),
    )
    .unwrap_err();
    let text = format!("{:?}", err);
    assert!(
        text.contains("s390x") && text.contains("linux/arm64/v8"),
        "{text}"
    );
}

#[test]
fn a_platform_asked_for_must_match_a_single_platform_image() {
    let dir = tempfile::tempdir().unwrap();
    let target = layout(dir.path(), &one_layer(vec![Entry::file("/a", "a")]));
    let err = scan_with(
        scanner(),
        &target,
        PlatformChoice::Only("linux/arm64".parse().unwrap()),
    )
    .unwrap_err();
    assert!(format!("{err:?}").contains("NoMatchingPlatform"), "{err:?}");
    assert!(
        scan_with(
            scanner(),
            &target,
            PlatformChoice::Only("linux/amd64".parse().unwrap())
        )
        .is_ok()
    );
}

#[test]
fn a_layout_with_several_images_needs_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let a = one_layer(vec![Entry::file("/a", "a")]);
    let b = one_layer(vec![Entry::file("/etc/config.json", MINER_CONFIG)]);
    minehound_testdata::write_oci_layout(dir.path(), &[(&a, Some("v1")), (&b, Some("v2"))])
        .unwrap();
    let base = format!("oci:{}", dir.path().display());
    let err = scan(&base).unwrap_err();
    assert!(format!("{err:?}").contains("v1"), "{err:?}");
    assert!(scan(&format!("{base}:v1")).unwrap().findings.is_empty());
    assert!(!scan(&format!("{base}:v2")).unwrap().findings.is_empty());
    assert!(
        !scan(&format!("{base}@{}", b.manifest.digest))
            .unwrap()
            .findings
            .is_empty()
    );
    assert!(scan(&format!("{base}:v3")).is_err());
}

#[test]
fn rootfs_directories_and_single_files_are_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc/miner")).unwrap();
    std::fs::write(root.join("etc/miner/config.json"), MINER_CONFIG).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("etc/escape")).unwrap();

    let report = scan(&format!("dir:{}", root.display())).unwrap();
    assert!(
        !findings_for(&report, "/etc/miner/config.json").is_empty(),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.stats.files, 2, "the symlink is not followed");
    // What was read: the two files' bytes.
    let bytes = (MINER_CONFIG.len() + "127.0.0.1 localhost\n".len()) as u64;
    assert_eq!(report.stats.bytes_uncompressed, bytes);
    assert_accounting(&report);
    // A bare directory path is a rootfs too.
    assert_eq!(
        summary(&scan(&root.display().to_string()).unwrap(), Severity::Info).len(),
        report.findings.len()
    );

    let single = root.join("etc/miner/config.json");
    let report = scan(&single.display().to_string()).unwrap();
    assert_eq!(report.findings[0].path, single.display().to_string());
}
