use std::process::Command;

use minehound_testdata::{
    DEMO_REPO_TAG, demo_image, write_docker_archive_classic, write_docker_archive_oci,
    write_oci_archive,
};

use crate::support::{check_layout, dir_files, scratch_dir};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_minehound-testdata"))
}

#[test]
fn binary_writes_the_demo_in_every_format() {
    let dir = scratch_dir("cli");
    let run = |args: &[&str]| {
        let status = bin().args(args).status().unwrap();
        assert!(status.success(), "{args:?}: {status}");
    };
    let layout = dir.join("layout");
    run(&["demo", layout.to_str().unwrap()]);
    assert_eq!(
        check_layout(&dir_files(&layout))[0].tag.as_deref(),
        Some("latest")
    );

    let image = demo_image().build();
    let mut oci_archive = Vec::new();
    write_oci_archive(&mut oci_archive, &[(&image, Some("latest"))]).unwrap();
    let mut classic = Vec::new();
    write_docker_archive_classic(&mut classic, &image, &[DEMO_REPO_TAG]).unwrap();
    let mut docker_oci = Vec::new();
    write_docker_archive_oci(&mut docker_oci, &image, &[DEMO_REPO_TAG]).unwrap();
    for (command, expected) in [
        ("demo-oci-archive", &oci_archive),
        ("demo-docker-archive", &classic),
        ("demo-docker-archive-oci", &docker_oci),
    ] {
        let file = dir.join(command);
        run(&[command, file.to_str().unwrap()]);
        assert_eq!(&std::fs::read(&file).unwrap(), expected, "{command}");
    }

    let stdout = bin().args(["demo-docker-archive", "-"]).output().unwrap();
    assert!(stdout.status.success());
    assert_eq!(stdout.stdout, classic);
}

#[test]
fn binary_rejects_bad_usage_with_exit_code_2() {
    for args in [
        &[][..],
        &["demo"],
        &["frobnicate", "x"],
        &["demo", "a", "b"],
    ] {
        let output = bin().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage: minehound-testdata"));
    }
}
