//! Load test of the service on loopback: a real registry process holding an
//! image set of this machine's ELF files (`MINEHOUND_BENCH_IMAGES` images,
//! default 24, each one of three shared base layers plus its own app layer),
//! and the service driven the way Harbor drives it: every scan requested at
//! once, then each report polled until it is there. In the same run:
//!
//! - baseline: the same images scanned one after another, each by a scanner
//!   of its own without a cache (what a script calling `minehound scan` per
//!   pushed image does);
//! - the service, cold (empty layer cache and state), with `--workers 2`
//!   and `--workers 4`;
//! - the service again on the same images (warm layer cache);
//! - the service's peak RSS (`minehound serve` runs as its own process).
//!
//! `cargo bench -p minehound-bench --bench serve`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minehound::{ScanRequest, ScannerBuilder};
use minehound_bench::collect;
use minehound_testdata::registry::{Auth, RegistryProcess, http, push_image};
use minehound_testdata::{Entry, ImageSpec, Layer};

/// A base layer's size and an app layer's size, in bytes of files.
const BASE_BYTES: u64 = 48 << 20;
const APP_BYTES: u64 = 4 << 20;
const BASES: usize = 3;

fn main() {
    let count: usize = std::env::var("MINEHOUND_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let work = tempfile::tempdir().expect("temp dir");
    let registry = RegistryProcess::start(
        &work.path().join("registry"),
        &work.path().join("storage"),
        None,
        &Auth::None,
    )
    .expect("start docker-registry");
    let started = Instant::now();
    let (images, unique_bytes, referenced_bytes) = push_image_set(&registry.host, count);
    println!(
        "image set: {count} images over {BASES} shared base layers; {} MiB of unique files, {} MiB referenced (pushed in {:.0?})",
        unique_bytes >> 20,
        referenced_bytes >> 20,
        started.elapsed()
    );
    let url = format!("http://{}", registry.host);

    // Baseline: one scan after another, nothing shared between them.
    let t = Instant::now();
    for (repo, digest) in &images {
        let target = format!("{}/{repo}@{digest}", registry.host);
        let scanner = ScannerBuilder::new().build().expect("scanner");
        let request = ScanRequest::new(target.parse().expect("target"), target.clone());
        scanner.scan(&request).expect("scan");
    }
    let baseline = t.elapsed();
    row(
        "one scan after another (baseline)",
        baseline,
        count,
        baseline,
    );

    let binary = service_binary();
    for workers in [2, 4] {
        let state = tempfile::tempdir().expect("temp dir");
        let mut service = Service::start(&binary, state.path(), workers);
        let host = service.host.clone();
        let cold = drive(&host, &url, &images);
        row(
            &format!("service, cold, {workers} workers"),
            cold,
            count,
            baseline,
        );
        let warm = drive(&host, &url, &images);
        row(
            &format!("service, warm cache, {workers} workers"),
            warm,
            count,
            baseline,
        );
        println!(
            "{:<44} {:>6} MiB (idle after start: {} MiB)",
            format!("service peak RSS, {workers} workers"),
            service.peak_rss_kib() >> 10,
            service.idle_rss_kib >> 10
        );
        service.stop();
    }
}

/// `target/release/minehound`, built now (cargo bench does not build other
/// packages' binaries).
fn service_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "minehound-cli"])
        .current_dir(&root)
        .status()
        .expect("cargo build");
    assert!(status.success(), "cannot build minehound");
    root.join("target/release/minehound")
}

/// `minehound serve` as its own process, so its memory is its own.
struct Service {
    child: Child,
    host: String,
    idle_rss_kib: u64,
}

impl Service {
    fn start(binary: &Path, dir: &Path, workers: usize) -> Service {
        let mut child = Command::new(binary)
            .args(["serve", "--no-config", "--listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--workers", &workers.to_string()])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start minehound serve");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(address) = event["fields"]["address"].as_str()
                {
                    let _ = tx.send(address.to_string());
                }
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the service starts");
        let mut service = Service {
            child,
            host,
            idle_rss_kib: 0,
        };
        service.idle_rss_kib = service.peak_rss_kib();
        service
    }

    fn peak_rss_kib(&self) -> u64 {
        minehound_bench::process_peak_rss_kib(&self.child.id().to_string())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn row(name: &str, took: Duration, scans: usize, baseline: Duration) {
    let per_minute = scans as f64 / took.as_secs_f64() * 60.0;
    println!(
        "{name:<44} {:>8.2} s {:>8.0} scans/min {:>6.2}x baseline throughput",
        took.as_secs_f64(),
        per_minute,
        baseline.as_secs_f64() / took.as_secs_f64()
    );
}

/// Requests a scan of every image at once, as Harbor does after a push
/// storm, then polls every report until all are there; returns the time.
fn drive(host: &str, registry: &str, images: &[(String, String)]) -> Duration {
    let t = Instant::now();
    let ids: Vec<String> = images
        .iter()
        .map(|(repo, digest)| {
            let body = serde_json::json!({
                "registry": {"url": registry},
                "artifact": {"repository": repo, "digest": digest},
            });
            let r = http(
                host,
                "POST",
                "/api/v1/scan",
                &[(
                    "Content-Type",
                    "application/vnd.scanner.adapter.scan.request+json; version=1.1",
                )],
                body.to_string().as_bytes(),
            )
            .expect("POST /api/v1/scan");
            assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    for id in &ids {
        loop {
            let r = http(host, "GET", &format!("/api/v1/scan/{id}/report"), &[], b"")
                .expect("GET report");
            match r.status {
                302 => std::thread::sleep(Duration::from_millis(20)),
                200 => break,
                other => panic!(
                    "scan {id}: HTTP {other}: {}",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
    }
    t.elapsed()
}

/// Pushes `count` images: base layer `i % BASES` plus an app layer of their
/// own, all of this machine's files. Returns (repository, digest) pairs, the
/// bytes of unique files and the bytes all images reference.
fn push_image_set(host: &str, count: usize) -> (Vec<(String, String)>, u64, u64) {
    let mut files = Vec::new();
    collect(Path::new("/usr/lib"), &mut files);
    files.sort();
    let mut files = files.into_iter().filter_map(|p| {
        let data = std::fs::read(&p).ok()?;
        Some(Entry::file(&p.display().to_string(), data))
    });
    let mut take = |bytes: u64| {
        let mut entries = Vec::new();
        let mut total = 0u64;
        while total < bytes {
            let Some(entry) = files.next() else { break };
            if let Entry::File { data, .. } = &entry {
                total += data.len() as u64;
            }
            entries.push(entry);
        }
        (entries, total)
    };
    let bases: Vec<(Layer, u64)> = (0..BASES)
        .map(|b| {
            let (entries, total) = take(BASE_BYTES);
            (Layer::gzip(&format!("ADD base-{b}.tar /"), entries), total)
        })
        .collect();
    let mut unique = bases.iter().map(|(_, n)| n).sum::<u64>();
    let mut referenced = 0;
    let mut images = Vec::new();
    for i in 0..count {
        let (entries, total) = take(APP_BYTES);
        unique += total;
        let (base, base_total) = &bases[i % BASES];
        referenced += base_total + total;
        let image = ImageSpec {
            layers: vec![base.clone(), Layer::gzip("COPY app /srv/", entries)],
            ..ImageSpec::default()
        }
        .build();
        let repo = format!("bench/app{i}");
        push_image(host, &repo, "1", &image).expect("push");
        images.push((repo, image.manifest.digest.clone()));
    }
    (images, unique, referenced)
}
