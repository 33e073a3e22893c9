//! End to end: a large image of this machine's ELF files (default 1.5 GiB in
//! six gzip layers; `MINEHOUND_BENCH_MIB` and `MINEHOUND_BENCH_LAYERS` change
//! them, `MINEHOUND_BENCH_SHAPE=ml` makes it the mix of shared objects,
//! Python sources and weight-like data of an ML image), scanned from an OCI
//! layout, beside what a user sees and what a user would script today, all in
//! one run so the ratios hold on a shared machine:
//!
//! - `gzip -dc` and `pigz -dc` of every layer blob, one after the other, and
//!   `rapidgzip -d` (PyPI's `rapidgzip`) on all cores: the reference parallel
//!   decoder of one gzip stream;
//! - with one layer, the same files in six layers scanned in turn with the
//!   one-layer image, best of two each: is one layer as fast as many?
//! - with one layer and `skopeo` installed, the same image recompressed by
//!   skopeo as `zstd:chunked` (a zstd frame per file or chunk): `zstd -dc`,
//!   minehound's zstd decoding on one thread and frame by frame on all
//!   cores (no scan), and its scan;
//! - extract every layer with `tar` into a temp directory, then `yara -r` with
//!   the same bundled rules (Debian's `yara`);
//! - the inflate floor: every layer through minehound's inflater (flate2 on
//!   zlib-rs) into nothing, layers spread over all cores: no scan can beat it;
//!   and each layer inflated in turn by minehound's parallel inflater (one
//!   stream, several threads from several offsets), on all cores;
//! - with one layer, the scan again with that layer inflated by all cores
//!   (`gzip_inflaters`: by default only from six workers up);
//! - minehound cold (no cache) on one worker (`--jobs 1`: no read-ahead
//!   thread either) and on all cores, and again with a warm layer cache;
//! - minehound's peak RSS;
//! - a new scanner on the warm cache (its compiled rules loaded from there)
//!   and its scan: what a whole process costs but for starting up;
//! - whole `minehound scan` processes of each binary named in
//!   `MINEHOUND_BENCH_BINARIES=A:B` (the release and the dist build, say;
//!   default `target/release/minehound` when built), cold and on a warm
//!   cache, best of three, alternating, start-up included, and cold again
//!   with the layout piped in as a tar (`tar -c | minehound scan -`).
//!
//! `cargo bench -p minehound-bench --bench e2e`

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use minehound::{LayerCache, ScanRequest, ScannerBuilder};
use minehound_bench::{Shape, bench_mib, large_image, peak_rss_kib, reset_peak_rss};
use minehound_unpack::{FileRange, ReadAt};

fn main() {
    // As the binary does, so the in-process RSS rows are what users see.
    let _ = minehound_alloc::tune_for_scanning();
    let mib = bench_mib(1536);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layers: usize = std::env::var("MINEHOUND_BENCH_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let shape = Shape::from_env();
    let dir = |layers: usize| {
        let shape = match shape {
            Shape::Binaries => "",
            Shape::MachineLearning => "-ml",
        };
        let name = match layers {
            6 => format!("e2e{shape}-{mib}"),
            _ => format!("e2e{shape}-{mib}-{layers}"),
        };
        root.join("target/minehound-bench").join(name)
    };
    let started = Instant::now();
    let image = large_image(&dir(layers), mib << 20, layers, shape).expect("build the bench image");
    // The same files in six layers, to compare with one in this run.
    let six_layers = (layers == 1)
        .then(|| large_image(&dir(6), mib << 20, 6, shape).expect("build the six-layer image"));
    let blob_bytes: u64 = image
        .blobs
        .iter()
        .map(|b| fs::metadata(b).map_or(0, |m| m.len()))
        .sum();
    println!(
        "image: {} {}, {} MiB in {} gzip layers ({} MiB compressed), at {} (ready in {:.0?})",
        image.files,
        shape.tag(),
        image.file_bytes >> 20,
        image.blobs.len(),
        blob_bytes >> 20,
        image.layout.display(),
        started.elapsed()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cores: {cores}");

    let gzip = time_each(&image.blobs, |blob| {
        sh(&format!("gzip -dc '{}' > /dev/null", blob.display()))
    });
    let pigz = has("pigz").then(|| {
        time_each(&image.blobs, |blob| {
            sh(&format!("pigz -dc '{}' > /dev/null", blob.display()))
        })
    });

    let rapidgzip = has_as("rapidgzip", "pip install rapidgzip").then(|| {
        time_each(&image.blobs, |blob| {
            sh(&format!(
                "rapidgzip -d -c -P {cores} '{}' > /dev/null",
                blob.display()
            ))
        })
    });

    let floor = inflate_floor(&image.blobs, cores);

    let target = format!("oci:{}", image.layout.display());
    let request = ScanRequest::new(target.parse().expect("oci target"), target.clone());
    let one_worker = ScannerBuilder::new().jobs(1).build().expect("scanner");
    let t = Instant::now();
    one_worker.scan(&request).expect("scan");
    let cold_one = t.elapsed();

    // Before idle workers helped with a layer's files (and the baseline
    // the sharing is measured against): each layer's files checked by the
    // worker reading it, a thread inflating ahead while a worker is idle.
    let unshared = ScannerBuilder::new()
        .share_files(false)
        .build()
        .expect("scanner");
    reset_peak_rss();
    let t = Instant::now();
    unshared.scan(&request).expect("scan");
    let cold_unshared = t.elapsed();
    let unshared_rss = peak_rss_kib();

    let scanner = ScannerBuilder::new().build().expect("scanner");
    reset_peak_rss();
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let report = scanner.scan(&request).expect("scan");
    let cold = t.elapsed();
    let cold_rss = peak_rss_kib();
    // After the scans whose peak RSS is reported: its threads' heaps stay.
    let (parallel_floor, chunks) = parallel_inflate(&image.blobs, cores);
    println!(
        "minehound: {} files ({} ELF), {} findings, {} skipped",
        report.stats.files,
        report.stats.elf_files,
        report.findings.len(),
        report.skipped.len()
    );

    // One layer against six, in turns, best of two: the machine's noise
    // strikes both alike.
    let against_six = six_layers.as_ref().map(|six| {
        let target = format!("oci:{}", six.layout.display());
        let six_request = ScanRequest::new(target.parse().expect("oci target"), target.clone());
        let (mut one_best, mut six_best) = (cold, Duration::MAX);
        for _ in 0..2 {
            let t = Instant::now();
            scanner.scan(&six_request).expect("scan");
            six_best = six_best.min(t.elapsed());
            let t = Instant::now();
            scanner.scan(&request).expect("scan");
            one_best = one_best.min(t.elapsed());
        }
        (one_best, six_best)
    });

    // The one layer inflated by every core beside the checks, in turns with
    // the default (which on fewer than four workers inflates on one thread).
    let inflating = (layers == 1).then(|| {
        let inflating = ScannerBuilder::new()
            .gzip_inflaters(cores)
            .build()
            .expect("scanner");
        let (mut best, mut default_best) = (Duration::MAX, Duration::MAX);
        for _ in 0..2 {
            let t = Instant::now();
            let inflated = inflating.scan(&request).expect("scan");
            best = best.min(t.elapsed());
            assert_eq!(inflated.findings, report.findings, "the same verdict");
            let t = Instant::now();
            scanner.scan(&request).expect("scan");
            default_best = default_best.min(t.elapsed());
        }
        (best, default_best, inflating.gzip_chunks_inflated())
    });

    let zstd_chunked = (layers == 1 && has("skopeo"))
        .then(|| zstd_chunked_rows(&image.layout, &dir(1).with_extension("zstd-chunked"), cores));

    let cache_dir = tempfile::tempdir().expect("temp dir");
    let cached = ScannerBuilder::new()
        .cache(LayerCache::open(cache_dir.path()).expect("cache"))
        .build()
        .expect("scanner");
    let t = Instant::now();
    cached.scan(&request).expect("scan");
    let filling = t.elapsed();
    let t = Instant::now();
    let again = cached.scan(&request).expect("scan");
    let warm = t.elapsed();
    // What a new process does on a warm cache: build a scanner (its rules
    // come from the cache), then scan.
    let t = Instant::now();
    let fresh = ScannerBuilder::new()
        .cache(LayerCache::open(cache_dir.path()).expect("cache"))
        .build()
        .expect("scanner");
    let fresh_built = t.elapsed();
    fresh.scan(&request).expect("scan");
    let fresh_warm = t.elapsed();
    let t = Instant::now();
    ScannerBuilder::new().build().expect("scanner");
    let compiled = t.elapsed();
    assert_eq!(again.stats.layers_cached, image.blobs.len() as u64);
    assert_eq!(
        again.findings, report.findings,
        "the cache gives the same verdict"
    );

    let yara =
        has("yara").then(|| extract_then_yara(&image.blobs, &root.join("signatures/yara"), cores));

    let base = gzip.as_secs_f64();
    let mib_s = |d: Duration| (image.file_bytes as f64 / (1 << 20) as f64) / d.as_secs_f64();
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<46} {:>8.2} s {:>8.0} MiB/s {:>7.2}x gzip -dc time",
            d.as_secs_f64(),
            mib_s(d),
            d.as_secs_f64() / base
        )
    };
    println!();
    row("gzip -dc of every layer (baseline)", gzip);
    if let Some(p) = pigz {
        row("pigz -dc of every layer", p);
    }
    if let Some(r) = rapidgzip {
        row(&format!("rapidgzip -d -P {cores} of every layer"), r);
    }
    row("inflate floor (flate2, all cores, no scan)", floor);
    row(
        &format!("parallel inflate, {cores} threads a stream (no scan)"),
        parallel_floor,
    );
    println!(
        "{:<46} {:>8} chunks joined",
        "  chunks inflated side by side", chunks
    );
    if let Some((extract, scan)) = yara {
        row("tar -xzf every layer", extract);
        row("yara -r on the extracted tree", scan);
        row("extract + yara -r (what users script)", extract + scan);
        println!(
            "{:<46} {:>8.1}x faster than extract + yara -r",
            "minehound cold vs extract + yara -r",
            (extract + scan).as_secs_f64() / cold.as_secs_f64()
        );
        println!(
            "{:<46} {:>8.1}x faster than extract + yara -r",
            "inflate floor vs extract + yara -r",
            (extract + scan).as_secs_f64() / floor.as_secs_f64()
        );
    }
    row("minehound, cold, one worker (--jobs 1)", cold_one);
    row("minehound, cold, files not shared", cold_unshared);
    row("minehound, cold (no cache)", cold);
    println!(
        "{:<46} {:>8.2}x the time with files not shared ({} files shared)",
        "  sharing files / not",
        cold.as_secs_f64() / cold_unshared.as_secs_f64(),
        scanner.files_shared()
    );
    if let Some((one, six)) = against_six {
        row("minehound, cold, one layer (best of 3)", one);
        row("minehound, cold, same files in six layers", six);
        println!(
            "{:<46} {:>8.2}x the time of six layers",
            "  one layer / six layers",
            one.as_secs_f64() / six.as_secs_f64()
        );
    }
    if let Some((inflating, default, chunks)) = inflating {
        row(
            &format!("minehound, cold, one layer, {cores} inflating"),
            inflating,
        );
        println!(
            "{:<46} {:>8.2}x the default's time, best of 2 each ({chunks} chunks joined)",
            "  inflating side by side / default",
            inflating.as_secs_f64() / default.as_secs_f64()
        );
    }
    if let Some(zstd) = &zstd_chunked {
        row(
            &format!(
                "zstd -dc of the zstd:chunked layer ({} frames)",
                zstd.frames
            ),
            zstd.zstd_cli,
        );
        row("zstd decoding, one thread (no scan)", zstd.one_thread);
        row(
            &format!("zstd decoding, frames on {cores} threads"),
            zstd.side_by_side,
        );
        row("minehound, cold, zstd:chunked layer", zstd.scan);
        println!(
            "{:<46} {:>8.2}x the time of the gzip layer ({} frames decoded side by side)",
            "  zstd:chunked / gzip",
            zstd.scan.as_secs_f64() / against_six.map_or(cold, |(one, _)| one).as_secs_f64(),
            zstd.frames_decoded
        );
    }
    row("minehound, filling a layer cache", filling);
    row("minehound, warm layer cache", warm);
    println!(
        "{:<46} {:>7.2} % of the cold scan ({:.1} ms)",
        "warm / cold",
        100.0 * warm.as_secs_f64() / cold.as_secs_f64(),
        warm.as_secs_f64() * 1000.0
    );
    row("minehound, new scanner + warm scan", fresh_warm);
    println!(
        "{:<46} {:>7.2} % of the cold scan (scanner built in {:.1} ms; compiling the rules takes {:.1} ms)",
        "new scanner + warm / cold",
        100.0 * fresh_warm.as_secs_f64() / cold.as_secs_f64(),
        fresh_built.as_secs_f64() * 1000.0,
        compiled.as_secs_f64() * 1000.0
    );
    println!(
        "{:<46} {:>8} MiB (process before the scan: {} MiB)",
        "minehound peak RSS, cold scan",
        cold_rss / 1024,
        rss_before / 1024
    );
    println!(
        "{:<46} {:>8} MiB",
        "minehound peak RSS, files not shared",
        unshared_rss / 1024
    );

    let release = root.join("target/release/minehound");
    let binaries = std::env::var("MINEHOUND_BENCH_BINARIES")
        .ok()
        .or_else(|| release.exists().then(|| release.display().to_string()))
        .unwrap_or_default();
    let binaries: Vec<&str> = binaries.split(':').filter(|b| !b.is_empty()).collect();
    let process_cache = tempfile::tempdir().expect("temp dir");
    let from_layout = Input::Target(&target);
    let cold_processes = time_binaries(&binaries, &from_layout, None);
    let piped_processes = time_binaries(&binaries, &Input::Piped(&image.layout), None);
    // Each binary fills its cache once (they differ in build), then the best
    // of three warm runs.
    for binary in &binaries {
        time_binaries(&[binary], &from_layout, Some(process_cache.path()));
    }
    let warm_processes = time_binaries(&binaries, &from_layout, Some(process_cache.path()));
    for (((binary, cold_process), piped_process), warm_process) in binaries
        .iter()
        .zip(cold_processes)
        .zip(piped_processes)
        .zip(warm_processes)
    {
        // target/PROFILE/minehound: named by its profile.
        let path = Path::new(binary);
        let profile = path.parent().and_then(Path::file_name).unwrap_or_default();
        let size = fs::metadata(path).map_or(0, |m| m.len());
        let name = format!("minehound scan, {} ({} MiB)", profile.display(), size >> 20);
        row(&format!("{name}, cold"), cold_process);
        row(&format!("{name}, piped, cold"), piped_process);
        println!(
            "{:<46} {:>7.2}x",
            "  piped / from the layout",
            piped_process.as_secs_f64() / cold_process.as_secs_f64()
        );
        row(&format!("{name}, warm"), warm_process);
        println!(
            "{:<46} {:>7.2} % of the cold process ({:.1} ms)",
            "  warm process / cold process",
            100.0 * warm_process.as_secs_f64() / cold_process.as_secs_f64(),
            warm_process.as_secs_f64() * 1000.0
        );
    }
}

/// The zstd:chunked rows: see the module's documentation.
struct ZstdChunked {
    frames: u64,
    zstd_cli: Duration,
    one_thread: Duration,
    side_by_side: Duration,
    scan: Duration,
    frames_decoded: u64,
}

/// Copies the image at `layout` to `copy` (once) with skopeo, its layer
/// recompressed as zstd:chunked, and times decoding and scanning it.
fn zstd_chunked_rows(layout: &Path, copy: &Path, cores: usize) -> ZstdChunked {
    if !copy.join("index.json").exists() {
        let _ = fs::remove_dir_all(copy);
        sh(&format!(
            "skopeo --insecure-policy copy --quiet --dest-compress --dest-compress-format zstd:chunked oci:'{}' oci:'{}:latest'",
            layout.display(),
            copy.display()
        ));
    }
    let blob = fs::read_dir(copy.join("blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("blob").path())
        .max_by_key(|p| fs::metadata(p).map_or(0, |m| m.len()))
        .expect("a layer blob");
    let zstd_cli = time_each(std::slice::from_ref(&blob), |blob| {
        sh(&format!("zstd -dc '{}' > /dev/null", blob.display()))
    });
    let decode = |decoders: usize| {
        let file = io::BufReader::new(fs::File::open(&blob).expect("blob"));
        let t = Instant::now();
        let (pump, mut reader) = minehound_unpack::read_ahead();
        let pumped = std::thread::scope(|scope| {
            let pumping = scope.spawn(move || {
                minehound_unpack::pump_decompressed(file, u64::MAX, decoders, &pump)
            });
            io::copy(&mut reader, &mut io::sink()).expect("decode");
            pumping.join().expect("pump")
        });
        assert!(pumped.complete);
        (t.elapsed(), pumped.frames)
    };
    let (one_thread, _) = decode(0);
    let (side_by_side, frames) = decode(cores);
    let target = format!("oci:{}", copy.display());
    let request = ScanRequest::new(target.parse().expect("oci target"), target.clone());
    let scanner = ScannerBuilder::new().build().expect("scanner");
    let t = Instant::now();
    scanner.scan(&request).expect("scan");
    ZstdChunked {
        frames,
        zstd_cli,
        one_thread,
        side_by_side,
        scan: t.elapsed(),
        frames_decoded: scanner.zstd_frames_decoded(),
    }
}

/// The best of three `BINARY scan TARGET` runs of each binary, taking turns so
/// that a change in the machine's load falls on all of them alike.
/// With `cache`, on the layer cache there (`--cache-dir`), else with none.
/// What a timed `minehound scan` process reads.
enum Input<'a> {
    /// A target on its command line.
    Target(&'a str),
    /// A tar of this OCI layout on its stdin (`tar -c | minehound scan -`):
    /// read once, front to back, each layer spooled to a file.
    Piped(&'a Path),
}

fn time_binaries(binaries: &[&str], input: &Input, cache: Option<&Path>) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; binaries.len()];
    for _ in 0..3 {
        for (binary, best) in binaries.iter().zip(&mut best) {
            let mut command = Command::new(binary);
            command.args(["scan", "--no-config", "--no-progress", "--quiet"]);
            match cache {
                Some(dir) => command.arg("--cache-dir").arg(dir),
                None => command.arg("--no-cache"),
            };
            command.args(["--format", "json", "--output", "/dev/null"]);
            let t = Instant::now();
            let mut tar = match input {
                Input::Target(target) => {
                    command.arg(target);
                    None
                }
                Input::Piped(layout) => {
                    let mut tar = Command::new("tar")
                        .arg("-C")
                        .arg(layout)
                        .args(["-cf", "-", "."])
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("tar");
                    command
                        .arg("-")
                        .stdin(tar.stdout.take().expect("tar's stdout"));
                    Some(tar)
                }
            };
            let status = command.status().unwrap_or_else(|e| panic!("{binary}: {e}"));
            // The command keeps the pipe's read end: closed here, a scan that
            // stopped reading early ends tar (SIGPIPE) instead of blocking it.
            drop(command);
            let tar_status = tar.as_mut().map(|tar| tar.wait().expect("tar"));
            let took = t.elapsed();
            // 0 clean, 1 findings; 2 is a failed scan.
            assert!(
                matches!(status.code(), Some(0 | 1)),
                "{binary} scan: {status}"
            );
            if let Some(tar_status) = tar_status {
                assert!(tar_status.success(), "tar: {tar_status}");
            }
            *best = (*best).min(took);
        }
    }
    best
}

fn sh(script: &str) {
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(status.success(), "{script} failed");
}

fn has(tool: &str) -> bool {
    has_as(tool, &format!("apt-get install {tool}"))
}

fn has_as(tool: &str, install: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("({tool} not installed: {install})");
    }
    found
}

fn time_each(blobs: &[PathBuf], mut run: impl FnMut(&Path)) -> Duration {
    let t = Instant::now();
    for blob in blobs {
        run(blob);
    }
    t.elapsed()
}

/// Inflates every layer blob into nothing, `threads` layers at a time.
fn inflate_floor(blobs: &[PathBuf], threads: usize) -> Duration {
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(blob) = blobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let file = io::BufReader::new(fs::File::open(blob).expect("blob"));
                    io::copy(&mut MultiGzDecoder::new(file), &mut io::sink()).expect("inflate");
                }
            });
        }
    });
    t.elapsed()
}

/// Inflates each layer blob in turn with minehound's parallel inflater on
/// `threads` threads, into nothing; the chunks its threads inflated.
fn parallel_inflate(blobs: &[PathBuf], threads: usize) -> (Duration, u64) {
    let mut chunks = 0;
    let t = Instant::now();
    for blob in blobs {
        let file = fs::File::open(blob).expect("blob");
        let len = file.metadata().expect("blob").len();
        let at: std::sync::Arc<dyn ReadAt> = std::sync::Arc::new(FileRange::new(file, 0, len));
        let stream = fs::File::open(blob).expect("blob");
        let (pump, mut inflated) = minehound_unpack::read_ahead();
        std::thread::scope(|scope| {
            let pumping = scope.spawn(move || {
                minehound_unpack::pump_decompressed_at(stream, at, threads, u64::MAX, 0, &pump)
            });
            io::copy(&mut inflated, &mut io::sink()).expect("inflate");
            let pumped = pumping.join().expect("inflater");
            assert!(pumped.complete);
            chunks += pumped.gzip_chunks;
        });
    }
    (t.elapsed(), chunks)
}

/// Extract every layer into one temp tree, then `yara -r` over it.
fn extract_then_yara(blobs: &[PathBuf], rules: &Path, threads: usize) -> (Duration, Duration) {
    let tree = tempfile::tempdir().expect("temp dir");
    let extract = time_each(blobs, |blob| {
        sh(&format!(
            "tar -xzf '{}' -C '{}'",
            blob.display(),
            tree.path().display()
        ))
    });
    let mut rule_files: Vec<PathBuf> = fs::read_dir(rules)
        .expect("rules dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yar"))
        .collect();
    rule_files.sort();
    let t = Instant::now();
    let status = Command::new("yara")
        .args(["-r", "-w", "-p", &threads.to_string()])
        .args(&rule_files)
        .arg(tree.path())
        .stdout(Stdio::null())
        .status()
        .expect("yara");
    assert!(status.success(), "yara failed");
    (extract, t.elapsed())
}
