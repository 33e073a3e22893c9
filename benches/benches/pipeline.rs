//! Each stage of the layer pipeline on a real ~200 MiB layer, beside the floor a
//! user can see in the same run: `gzip -dc` of the same blob.

use std::io::Write;
use std::process::{Command, Stdio};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use minehound::{Detector, FileKind, ScannerBuilder, scan_layer_blob};
use minehound_bench::{bench_mib, gzip_default, usr_lib_tar};
use minehound_unpack::{FileEntry, Limits, Visitor, walk_layer};

/// Counts files and touches nothing: the cost of inflate + tar walk alone.
struct NullVisitor(u64);
impl Visitor for NullVisitor {
    fn file(&mut self, file: FileEntry<'_>) -> Result<(), minehound_unpack::Error> {
        self.0 += file.data.len() as u64;
        Ok(())
    }
    fn skipped(&mut self, _: &str, _: u64, _: &str) {}
}

fn layer_pipeline(c: &mut Criterion) {
    let mib = bench_mib(200);
    let tar = usr_lib_tar(mib << 20);
    let blob = gzip_default(&tar);
    let blob_file = tempfile_with(&blob);
    let scanner = ScannerBuilder::new().jobs(1).build().expect("signatures");
    let limits = Limits::default();

    let mut group = c.benchmark_group("layer");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(tar.len() as u64));
    group.bench_function("baseline: gzip -dc", |b| {
        b.iter(|| {
            let status = Command::new("gzip")
                .arg("-dc")
                .arg(&blob_file)
                .stdout(Stdio::null())
                .status()
                .expect("run gzip");
            assert!(status.success());
        })
    });
    group.bench_function("inflate + tar walk", |b| {
        b.iter(|| {
            let mut v = NullVisitor(0);
            walk_layer(&blob[..], &limits, &mut v).unwrap();
            v.0
        })
    });
    // Inflate alone: flate2 on one thread, and minehound's inflater from
    // several offsets with one worker thread (what a thread decodes at,
    // markers and joining included) and with one per core.
    group.bench_function("inflate, flate2", |b| {
        b.iter(|| {
            let mut inflated = flate2::read::MultiGzDecoder::new(&blob[..]);
            std::io::copy(&mut inflated, &mut std::io::sink()).unwrap()
        })
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, cores] {
        group.bench_function(format!("inflate, from offsets, {threads} threads"), |b| {
            b.iter(|| parallel_inflate(&blob, threads))
        });
    }
    group.bench_function("full pipeline (verify, classify, hash, YARA)", |b| {
        let mut detector = Detector::new(scanner.signatures());
        b.iter(|| {
            scan_layer_blob(&blob[..], &mut detector, &limits)
                .unwrap()
                .files
        })
    });
    group.finish();

    // Stages on the ELF files alone.
    let elves: Vec<Vec<u8>> = {
        let mut archive = tar::Archive::new(&tar[..]);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if data.starts_with(b"\x7fELF") {
                out.push(data);
            }
        }
        out
    };
    let elf_bytes: u64 = elves.iter().map(|e| e.len() as u64).sum();
    let mut group = c.benchmark_group("elf");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(elf_bytes));
    group.bench_function("classify", |b| {
        b.iter(|| {
            elves
                .iter()
                .filter(|e| minehound::FileKind::Elf == minehound::classify(e))
                .count()
        })
    });
    group.bench_function("sha256", |b| {
        b.iter(|| {
            elves
                .iter()
                .map(|e| minehound::sha256(e)[0] as u64)
                .sum::<u64>()
        })
    });
    group.bench_function("detectors (hash list, goblin, YARA)", |b| {
        let mut detector = Detector::new(scanner.signatures());
        b.iter(|| {
            elves
                .iter()
                .map(|e| detector.check(FileKind::Elf, e).unwrap().len())
                .sum::<usize>()
        })
    });
    group.finish();
}

/// The blob through `pump_decompressed_at` on `threads` threads, into nothing.
fn parallel_inflate(blob: &[u8], threads: usize) -> u64 {
    let at: std::sync::Arc<dyn minehound_unpack::ReadAt> = std::sync::Arc::new(blob.to_vec());
    let (pump, mut inflated) = minehound_unpack::read_ahead();
    std::thread::scope(|scope| {
        let pumping = scope.spawn(move || {
            minehound_unpack::pump_decompressed_at(blob, at, threads, u64::MAX, 0, &pump)
        });
        let n = std::io::copy(&mut inflated, &mut std::io::sink()).unwrap();
        assert!(pumping.join().unwrap().complete);
        n
    })
}

fn tempfile_with(bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("minehound-bench-{}.tar.gz", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

criterion_group!(benches, layer_pipeline);
criterion_main!(benches);
