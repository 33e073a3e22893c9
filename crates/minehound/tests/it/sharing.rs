//! A layer's files checked by every idle worker, and a layer inflated by
//! several threads, give the report one worker gives, byte for byte:
//! findings, skipped files and their order, counts, and errors.

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
    mixed_spec().build()
}

fn mixed_spec() -> ImageSpec {
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

/// Four workers, and `inflaters` threads inflating a gzip layer file that
/// is read ahead (by default none on four workers).
pub(crate) fn inflating_scanner(inflaters: usize) -> Scanner {
    ScannerBuilder::new()
        .jobs(4)
        .gzip_inflaters(inflaters)
        .limits(Limits {
            max_file_size: 64 * 1024,
            ..Limits::default()
        })
        .build()
        .unwrap()
}

/// `image` as a gzip-compressed oci-archive at `path`: a target read once,
/// front to back, as a piped archive is (each layer spooled to a file, then
/// scanned from there while the stream goes on).
fn streamed(path: &std::path::Path, image: &BuiltImage) -> String {
    let file = std::fs::File::create(path).unwrap();
    let mut compressed = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    minehound_testdata::write_oci_archive(&mut compressed, &[(image, Some("latest"))]).unwrap();
    compressed.finish().unwrap();
    format!("oci-archive:{}", path.display())
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
        (
            "zstd-bomb",
            zeros_image(minehound_testdata::Compression::Zstd, 1 << 30).unwrap(),
        ),
    ];
    let (one, four) = (scanner(1), scanner(4));
    // Four workers, a gzip layer read ahead inflated by three threads
    // besides. These layers are small (a block or a few each): their
    // inflating thread decodes them alone, through the same decoder the
    // threads use (the large layer below has them take chunks).
    let inflating = inflating_scanner(3);
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
        let inflated = outcome(&inflating, &target);
        assert!(
            inflated == alone,
            "{name}: reports differ\n--- one worker\n{alone}\n--- inflating side by side\n{inflated}"
        );
        // Piped: one worker reads the stream and its layers alone; more
        // spool each layer and read it as from a layout.
        let stream = streamed(&dir.path().join(format!("{name}.tar.gz")), image);
        let alone = outcome(&one, &stream);
        for scanner in [&four, &inflating] {
            let spooled = outcome(scanner, &stream);
            assert!(
                spooled == alone,
                "{name} piped: reports differ\n--- one worker\n{alone}\n--- spooled\n{spooled}"
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

    // One layer inflated ahead: its reader only walks, and hands every file
    // it need not open itself (archives) to the helpers.
    let walker = scanner(4);
    let target = layout(&dir.path().join("mixed"), &mixed_layer());
    scan_with(&walker, &target, PlatformChoice::Host).unwrap();
    let files: Vec<String> = mixed_spec().layers[0]
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::File { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let archives = files.iter().filter(|p| p.ends_with(".tar.gz")).count();
    assert!(archives > 0);
    assert_eq!(
        walker.files_shared(),
        (files.len() - archives) as u64,
        "every file but the archives went to a helper"
    );
    assert!(
        four.files_shared() > 100,
        "the large layers' files were spread: {}",
        four.files_shared()
    );
}

/// A copy of the OCI layout at `from` written by skopeo with its layers
/// recompressed as `format` (`zstd:chunked`: many zstd frames, skopeo's table
/// of contents in skippable frames).
fn skopeo_copy(from: &std::path::Path, to: &std::path::Path, format: &str) -> String {
    let output = std::process::Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet", "--dest-compress"])
        .args(["--dest-compress-format", format])
        .arg(format!("oci:{}:latest", from.display()))
        .arg(format!("oci:{}:latest", to.display()))
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(
        output.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!("oci:{}", to.display())
}

/// [`skopeo_copy`], then 64 bytes in the middle of its largest layer blob
/// flipped.
fn damaged_copy(from: &std::path::Path, to: &std::path::Path, format: &str) -> String {
    let target = skopeo_copy(from, to, format);
    let path = &layer_blobs(to)[0];
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0x55;
    }
    std::fs::write(path, bytes).unwrap();
    target
}

/// The layer blobs of a layout, largest first.
fn layer_blobs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut blobs: Vec<_> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort_by_key(|b| std::cmp::Reverse(std::fs::metadata(b).unwrap().len()));
    blobs
}

/// Findings as a user reads them, whatever the layer's compression.
fn judged(report: &minehound::Report) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| format!("{} {:?} {} {:?}", f.rule, f.severity, f.path, f.sha256))
        .collect()
}

#[test]
fn zstd_chunked_frames_decoded_side_by_side_give_the_report_one_worker_gives() {
    let dir = tempfile::tempdir().unwrap();
    let gzip_dir = dir.path().join("gzip");
    let gzip_target = layout(&gzip_dir, &mixed_layer());
    let chunked_dir = dir.path().join("zstd-chunked");
    let chunked = skopeo_copy(&gzip_dir, &chunked_dir, "zstd:chunked");
    let blob = std::fs::read(&layer_blobs(&chunked_dir)[0]).unwrap();
    let frames = blob
        .windows(4)
        .filter(|w| w == &[0x28, 0xb5, 0x2f, 0xfd])
        .count();
    assert!(frames > 100, "skopeo wrote {frames} frames");

    let (one, four) = (scanner(1), scanner(4));
    let alone = outcome(&one, &chunked);
    for run in 0..2 {
        let shared = outcome(&four, &chunked);
        assert!(
            shared == alone,
            "run {run}: reports differ\n--- one worker\n{alone}\n--- four\n{shared}"
        );
    }
    assert_eq!(one.zstd_frames_decoded(), 0, "one worker: one stream");
    // Every frame, twice; the magic also shows inside skopeo's table of
    // contents (itself zstd, in a skippable frame), so count at most that.
    let decoded = four.zstd_frames_decoded();
    assert!(
        decoded > 200 && decoded <= 2 * frames as u64 && decoded >= 2 * (frames as u64 - 2),
        "decoded frame by frame: {decoded} of {frames} frames, twice"
    );
    // Judged as the gzip image it was copied from, every file scanned.
    let from_gzip = scan_with(&one, &gzip_target, PlatformChoice::Host).unwrap();
    let from_zstd = scan_with(&four, &chunked, PlatformChoice::Host).unwrap();
    assert_accounting(&from_zstd);
    assert!(!from_zstd.findings.is_empty());
    assert_eq!(judged(&from_zstd), judged(&from_gzip));
    assert_eq!(from_zstd.stats.files_scanned, from_gzip.stats.files_scanned);
    assert_eq!(
        from_zstd.stats.bytes_uncompressed,
        from_gzip.stats.bytes_uncompressed
    );

    // Damaged inside a frame, in the middle of the stream: the same error,
    // at the same entry, either way. (libzstd's own words depend on the
    // buffers it decodes into: "Data corruption detected" or "Destination
    // buffer is too small" for the same bytes.)
    let damaged = damaged_copy(&gzip_dir, &dir.path().join("damaged"), "zstd:chunked");
    let alone = outcome(&one, &damaged);
    let side_by_side = outcome(&four, &damaged);
    let ours = |outcome: &str| outcome.rsplit_once(": ").unwrap().0.to_string();
    assert!(ours(&alone).starts_with("error: layer 0"), "{alone}");
    assert!(
        ours(&alone).contains("corrupt or truncated layer data after"),
        "{alone}"
    );
    assert_eq!(ours(&side_by_side), ours(&alone), "{side_by_side}");
}

/// The mixed layer with some MiB of text-like files, so that its gzip stream
/// spans several of the chunks threads inflate side by side.
pub(crate) fn large_mixed_layer() -> BuiltImage {
    let mut spec = mixed_spec();
    let mut state = 0x2545f4914f6cdd1du64;
    let words: Vec<String> = (0..2000)
        .map(|i| format!("w{:x}", (i as u64).wrapping_mul(0x9e3779b97f4a7c15) >> 40))
        .collect();
    for i in 0..16 {
        let mut text = String::new();
        while text.len() < 512 * 1024 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(&words[(state % words.len() as u64) as usize]);
            text.push(if state.is_multiple_of(11) { '\n' } else { ' ' });
        }
        spec.layers[0]
            .entries
            .push(Entry::file(&format!("/srv/text/{i}.txt"), text));
    }
    spec.build()
}

#[test]
fn one_gzip_layer_inflated_by_several_threads_gives_the_report_one_thread_gives() {
    let dir = tempfile::tempdir().unwrap();
    let ours_dir = dir.path().join("flate2");
    let ours = layout(&ours_dir, &large_mixed_layer());
    // Also as skopeo's own gzip writer compresses it.
    let skopeo = skopeo_copy(&ours_dir, &dir.path().join("skopeo"), "gzip");
    let one = scanner(1);
    let (three, none) = (inflating_scanner(3), inflating_scanner(0));
    for target in [&ours, &skopeo] {
        let alone = outcome(&one, target);
        assert!(!alone.starts_with("error"), "{alone}");
        for run in 0..2 {
            let side_by_side = outcome(&three, target);
            assert!(
                side_by_side == alone,
                "{target}, run {run}: reports differ\n--- one thread\n{alone}\n--- three inflating\n{side_by_side}"
            );
        }
        assert_eq!(outcome(&none, target), alone);
        let report = scan_with(&three, target, PlatformChoice::Host).unwrap();
        assert_accounting(&report);
        assert!(!report.findings.is_empty());
    }
    assert_eq!(one.gzip_chunks_inflated(), 0, "one worker: one thread");
    assert_eq!(none.gzip_chunks_inflated(), 0, "no inflaters asked for");
    // Two layouts, three scans each, each layer over 2 MiB compressed: every
    // scan took chunks from the inflaters.
    for layout in ["flate2", "skopeo"] {
        let blob = &layer_blobs(&dir.path().join(layout))[0];
        assert!(std::fs::metadata(blob).unwrap().len() > 2 << 20);
    }
    let taken = three.gzip_chunks_inflated();
    assert!(taken >= 6, "chunks taken from the inflaters: {taken}");

    // Piped, its one layer spooled: inflated from several offsets too, and
    // its files checked by the idle workers, the report still one thread's.
    let stream = streamed(&dir.path().join("piped.tar.gz"), &large_mixed_layer());
    let alone = outcome(&one, &stream);
    assert!(!alone.starts_with("error"), "{alone}");
    let shared_before = three.files_shared();
    assert_eq!(outcome(&three, &stream), alone);
    assert!(
        three.gzip_chunks_inflated() > taken,
        "the spooled layer's chunks were inflated side by side"
    );
    assert!(
        three.files_shared() > shared_before,
        "the spooled layer's files were checked by helpers"
    );

    // Damaged in the middle of the stream: the same error at the same entry.
    let damaged = damaged_copy(&ours_dir, &dir.path().join("damaged"), "gzip");
    let alone = outcome(&one, &damaged);
    assert!(
        alone.contains("corrupt or truncated layer data after"),
        "{alone}"
    );
    assert_eq!(outcome(&three, &damaged), alone);
}
