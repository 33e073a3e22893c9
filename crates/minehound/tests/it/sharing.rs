//! A layer's files checked by every idle worker give the report one worker
//! gives, byte for byte: findings, skipped files and their order, counts,
//! and errors.

use minehound::{Limits, PlatformChoice, Scanner, ScannerBuilder};
use minehound_testdata::hostile::{
    many_files_image, nested_archives_image, overlapping_zip_image, sparse_image, zeros_image,
};
use minehound_testdata::{
    BuiltImage, Entry, ImageSpec, Layer, demo_image, gzip, tar_bytes, tiny_elf,
};

use crate::support::*;

/// One large layer of the kinds of files images hold, miners' traces among
/// them: text, scripts, ELF files, archives with a finding inside, files over
/// the size limit.
fn mixed_layer() -> BuiltImage {
    let demo = demo_image();
    let demo_files: Vec<Entry> = demo
        .layers
        .iter()
        .flat_map(|layer| layer.entries.iter().cloned())
        .filter(|entry| matches!(entry, Entry::File { .. }))
        .collect();
    let mut entries = Vec::new();
    for i in 0..1200 {
        let path = format!("/srv/d{}/f{i}", i / 100);
        let entry = match i % 10 {
            0 => Entry::executable(
                &format!("{path}.bin"),
                tiny_elf(format!("tool {i}").as_bytes()),
            ),
            1 => Entry::file(&format!("{path}.sh"), format!("#!/bin/sh\necho {i}\n")),
            // Over the size limit below: checked in part, listed as skipped.
            2 if i % 100 == 2 => Entry::file(&format!("{path}.big"), vec![b'a'; 70_000]),
            3 if i % 300 == 3 => Entry::file(
                &format!("{path}.tar.gz"),
                gzip(&tar_bytes(&demo_files[i % demo_files.len()..])),
            ),
            _ => Entry::file(
                &format!("{path}.txt"),
                format!("line {i}\n").repeat(i % 40 + 1),
            ),
        };
        entries.push(entry);
        if i % 150 == 7 {
            let mut file = demo_files[i % demo_files.len()].clone();
            if let Entry::File { path, .. } = &mut file {
                *path = format!("/srv/copies/{i}{path}");
            }
            entries.push(file);
        }
    }
    ImageSpec {
        layers: vec![Layer::gzip("COPY srv /srv", entries)],
        ..ImageSpec::default()
    }
    .build()
}

fn scanner(jobs: usize) -> Scanner {
    ScannerBuilder::new()
        .jobs(jobs)
        .limits(Limits {
            max_file_size: 64 * 1024,
            ..Limits::default()
        })
        .build()
        .unwrap()
}

/// The report (or the error) as JSON text.
fn outcome(scanner: &Scanner, target: &str) -> String {
    match scan_with(scanner, target, PlatformChoice::Host) {
        Ok(report) => serde_json::to_string_pretty(&report).unwrap(),
        Err(err) => format!("error: {}", minehound::ErrorChain(&err)),
    }
}

#[test]
fn files_spread_over_workers_give_the_report_one_worker_gives() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures: Vec<(&str, BuiltImage)> = vec![
        ("mixed", mixed_layer()),
        ("demo", demo_image().build()),
        ("many-files", many_files_image(5000).unwrap()),
        ("nested", nested_archives_image(12)),
        ("zip-bomb", overlapping_zip_image(200, 1 << 20).unwrap()),
        ("sparse", sparse_image(50, 1 << 40).unwrap()),
        (
            "gzip-bomb",
            zeros_image(minehound_testdata::Compression::Gzip, 1 << 30).unwrap(),
        ),
    ];
    let (one, four) = (scanner(1), scanner(4));
    for (name, image) in &fixtures {
        let target = layout(&dir.path().join(name), image);
        let alone = outcome(&one, &target);
        // Each twice: which worker takes which file changes from run to run.
        for run in 0..2 {
            let shared = outcome(&four, &target);
            assert!(
                shared == alone,
                "{name}, run {run}: reports differ\n--- one worker\n{alone}\n--- four\n{shared}"
            );
        }
        if *name == "mixed" {
            let report = scan_with(&one, &target, PlatformChoice::Host).unwrap();
            assert_accounting(&report);
            assert!(report.stats.files > 1200, "{:?}", report.stats);
            assert!(
                !report.skipped.is_empty(),
                "files over the limit are listed"
            );
            assert!(
                report.findings.iter().any(|f| f.path.contains(".tar.gz!")),
                "a finding inside an archive"
            );
        }
    }
    assert_eq!(one.files_shared(), 0, "one worker shares nothing");
    assert!(
        four.files_shared() > 100,
        "the large layers' files were spread: {}",
        four.files_shared()
    );
}
