//! Admission review latency on loopback: `minehound serve` over HTTPS (a CA
//! made at run time), called as the Kubernetes API server calls a validating
//! webhook (`POST /k8s/admission?timeout=10s`, the recorded Pod
//! `AdmissionReview` with its image filled in), judging images that sit in a
//! real registry process (Debian's `docker-registry`). In the same run:
//!
//! - known verdicts: four small images (one carries XMRig) scanned once, then
//!   `MINEHOUND_BENCH_REVIEWS` reviews (default 400) sent 20 at a time over
//!   kept-alive connections: half pinned by digest (no registry look-up), half
//!   by tag (the service resolves the tag through the registry on every
//!   review), each kind on its own, then both interleaved; every answer is
//!   checked (the miner denied, the others allowed);
//! - the floors beside them: `GET /healthz` over the same HTTPS connections,
//!   and the registry's own manifest `GET` by tag (what a look-up must cost);
//! - the service's own time per review, from its log (`ms` of each
//!   `admission review` line): the rest is TLS, HTTP and the client;
//! - a cold image: `MINEHOUND_BENCH_MIB` (default 300) MiB of this machine's
//!   ELF files in four gzip layers (built once under
//!   `target/minehound-bench/`), never scanned: one review with the default
//!   8 s budget and the default pending policy (deny), then the scan time (from
//!   the service's log) and a second review once the verdict is in.
//!
//! `cargo bench -p minehound-bench --bench admission`

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minehound_bench::{Shape, bench_mib, large_image};
use minehound_testdata::registry::{
    Auth, RegistryProcess, generate_tls, push_blob, push_image, push_manifest,
};
use minehound_testdata::{Blob, Entry, ImageSpec, Layer, samples, tiny_elf};
use serde_json::Value;

/// The recorded Pod review with one container whose image is `{{IMAGE}}`.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/minehound-cli/tests/fixtures/admission/pod-image.json"
);
/// Requests in flight at once, as many API server replicas and webhook
/// calls would keep open.
const CONCURRENCY: usize = 20;
/// Layers of the cold image.
const COLD_LAYERS: usize = 4;
/// The API server's own timeout for the webhook (its default, 10 s).
const REVIEW_PATH: &str = "/k8s/admission?timeout=10s";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reviews: usize = std::env::var("MINEHOUND_BENCH_REVIEWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mib = bench_mib(300);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");

    let started = Instant::now();
    let cold = large_image(
        &root.join(format!("target/minehound-bench/admission-{mib}")),
        mib << 20,
        COLD_LAYERS,
        Shape::Binaries,
    )
    .expect("build the cold image");
    let cold_blob_bytes: u64 = cold
        .blobs
        .iter()
        .map(|b| std::fs::metadata(b).map_or(0, |m| m.len()))
        .sum();
    println!(
        "cold image: {} ELF files, {} MiB in {} gzip layers ({} MiB compressed), ready in {:.0?}",
        cold.files,
        cold.file_bytes >> 20,
        cold.blobs.len(),
        cold_blob_bytes >> 20,
        started.elapsed()
    );

    let work = tempfile::tempdir().expect("temp dir");
    let registry = RegistryProcess::start(
        &work.path().join("registry"),
        &work.path().join("storage"),
        None,
        &Auth::None,
    )
    .expect("start docker-registry");
    let started = Instant::now();
    let known = push_known_images(&registry.host);
    let cold_digest = push_layout(&registry.host, "bench/cold", &cold.layout);
    println!(
        "pushed {} small images and the cold image in {:.0?}",
        known.len(),
        started.elapsed()
    );

    let tls = generate_tls(&work.path().join("tls")).expect("make a CA with openssl");
    let binary = service_binary();
    let mut service = Service::start(&binary, work.path(), &tls.cert, &tls.key);
    let client = Client::new(&service.host, &tls.ca_cert);
    let mut table = Table::default();

    // Every small image scanned once: its first review, then its verdict.
    let started = Instant::now();
    for image in &known {
        client.review(&review_body(&image.by_tag, "b0000000-0000-4000-8000-0"));
        client.wait_for_verdict(&image.digest);
        assert_eq!(
            client
                .review(&review_body(&image.by_tag, "b0000000-0000-4000-8000-1"))
                .allowed,
            !image.miner,
            "{}",
            image.by_tag
        );
    }
    println!(
        "{} small images judged (first reviews) in {:.0?}",
        known.len(),
        started.elapsed()
    );

    // Open the connections (TLS handshakes) before anything is timed.
    let warm: Vec<Call> = (0..CONCURRENCY * 2).map(|_| Call::health()).collect();
    client.storm(&warm);

    let health: Vec<Call> = (0..reviews / 2).map(|_| Call::health()).collect();
    let (took, wall) = client.storm(&health);
    table.push("HTTPS GET /healthz (transport floor)", &took, wall, None);

    let registry_calls: Vec<Call> = (0..reviews / 2)
        .map(|i| Call::manifest(&registry.host, &known[i % known.len()]))
        .collect();
    let (took, wall) = client.storm(&registry_calls);
    table.push(
        "registry manifest GET by tag (look-up floor)",
        &took,
        wall,
        None,
    );

    let by_digest = calls(&known, reviews / 2, 1, |_| false);
    let (took, wall) = client.storm(&by_digest);
    let server = service.review_ms(&by_digest);
    table.push("reviews pinned by digest", &took, wall, Some(server));

    let log_start = log_len(&registry.log);
    let by_tag = calls(&known, reviews / 2, 2, |_| true);
    let (took, wall) = client.storm(&by_tag);
    let server = service.review_ms(&by_tag);
    table.push("reviews by tag", &took, wall, Some(server));
    let lookups = registry_requests(&registry.log, log_start);

    let mixed = calls(&known, reviews, 3, |i| i % 2 == 0);
    let (took, wall) = client.storm(&mixed);
    for (name, tag) in [("mixed: pinned by digest", false), ("mixed: by tag", true)] {
        let (subset, durations): (Vec<Call>, Vec<Duration>) = mixed
            .iter()
            .zip(&took)
            .filter(|(call, _)| call.by_tag == tag)
            .map(|(call, d)| (call.clone(), *d))
            .unzip();
        let server = service.review_ms(&subset);
        table.push(name, &durations, wall, Some(server));
    }

    // The cold image, named by tag as a Deployment names it.
    let cold_ref = format!("{}/bench/cold:1", registry.host);
    let body = review_body(&cold_ref, "c0000000-0000-4000-8000-0");
    let first = client.review(&body);
    let decision = if first.allowed {
        "allowed (judged within the budget)".to_string()
    } else if first.message.contains("no verdict yet") {
        "denied as pending".to_string()
    } else {
        format!("denied: {}", first.message)
    };
    table.single(
        &format!(
            "cold image, {} MiB / {} layers: first review, {decision}",
            cold.file_bytes >> 20,
            cold.blobs.len()
        ),
        first.took,
    );
    let waited = Instant::now();
    client.wait_for_verdict(&cold_digest);
    let scan = service
        .scan_seconds(&cold_digest)
        .map_or_else(|| first.took + waited.elapsed(), Duration::from_secs_f64);
    table.single("cold image: scan (service log)", scan);
    table.single(
        "cold image: review to verdict (polled)",
        first.took + waited.elapsed(),
    );
    let second = client.review(&review_body(&cold_ref, "c0000000-0000-4000-8000-1"));
    table.single(
        &format!(
            "cold image: second review, {}",
            if second.allowed { "allowed" } else { "denied" }
        ),
        second.took,
    );
    service.stop();

    println!();
    table.print();
    println!();
    println!(
        "registry requests during the {} tag reviews: {} ({:.1} per review)",
        by_tag.len(),
        lookups
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        lookups.values().sum::<usize>() as f64 / by_tag.len() as f64
    );
}

/// A small image in the registry, and how reviews name it.
struct Known {
    by_tag: String,
    by_digest: String,
    digest: String,
    miner: bool,
}

/// Pushes one image with XMRig and three clean ones over a shared base layer.
fn push_known_images(host: &str) -> Vec<Known> {
    let base = Layer::gzip(
        "ADD rootfs /",
        vec![
            Entry::file("/etc/os-release", b"ID=bench\n".to_vec()),
            Entry::executable("/bin/true", tiny_elf(b"base tools")),
        ],
    );
    let xmrig = samples::xmrig().expect("fetch XMRig 6.23.0 from PyPI (db4e==0.20.0)");
    let mut images = vec![(
        "bench/miner",
        true,
        Layer::gzip(
            "COPY xmrig /usr/local/bin/",
            vec![Entry::executable("/usr/local/bin/xmrig", xmrig)],
        ),
    )];
    for (repo, marker) in [
        ("bench/app0", "0"),
        ("bench/app1", "1"),
        ("bench/app2", "2"),
    ] {
        images.push((
            repo,
            false,
            Layer::gzip(
                "COPY app /srv/",
                vec![Entry::file(
                    "/srv/app.txt",
                    format!("app {marker}\n").into_bytes(),
                )],
            ),
        ));
    }
    images
        .into_iter()
        .map(|(repo, miner, layer)| {
            let image = ImageSpec {
                layers: vec![base.clone(), layer],
                ..ImageSpec::default()
            }
            .build();
            push_image(host, repo, "1", &image).expect("push");
            let digest = image.manifest.digest.clone();
            Known {
                by_tag: format!("{host}/{repo}:1"),
                by_digest: format!("{host}/{repo}@{digest}"),
                digest,
                miner,
            }
        })
        .collect()
}

/// Pushes the single image of an OCI layout to `repo:1`; returns its digest.
fn push_layout(host: &str, repo: &str, layout: &Path) -> String {
    let blob = |digest: &str, media_type: &str| Blob {
        digest: digest.to_string(),
        media_type: media_type.to_string(),
        bytes: std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("read a layout blob"),
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("read index.json"))
            .expect("index.json is JSON");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest")
        .to_string();
    let manifest = blob(&digest, OCI_MANIFEST);
    let parsed: Value = serde_json::from_slice(&manifest.bytes).expect("manifest is JSON");
    let layers = parsed["layers"].as_array().expect("layers");
    for descriptor in std::iter::once(&parsed["config"]).chain(layers) {
        let (d, m) = (
            descriptor["digest"].as_str().expect("digest"),
            descriptor["mediaType"].as_str().expect("media type"),
        );
        push_blob(host, repo, &blob(d, m)).expect("push a blob");
    }
    push_manifest(host, repo, "1", &manifest).expect("push the manifest");
    digest
}

/// The recorded Pod review naming `image`, with its own `uid`.
fn review_body(image: &str, uid: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(FIXTURE).expect("the fixture exists");
    let mut review: Value =
        serde_json::from_str(&text.replace("{{IMAGE}}", image)).expect("the fixture is JSON");
    review["request"]["uid"] = Value::String(uid.to_string());
    serde_json::to_vec(&review).expect("JSON")
}

/// `count` reviews cycling over the known images; `by_tag(i)` picks how the
/// i-th names its image. Uids are unique per run (`phase` and index).
fn calls(known: &[Known], count: usize, phase: usize, by_tag: impl Fn(usize) -> bool) -> Vec<Call> {
    (0..count)
        .map(|i| {
            let image = &known[(i / 2) % known.len()];
            let tag = by_tag(i);
            let uid = format!("b0000000-0000-4000-8{phase:03x}-{i:012x}");
            let reference = if tag { &image.by_tag } else { &image.by_digest };
            Call {
                url: Target::Review,
                body: review_body(reference, &uid),
                uid,
                by_tag: tag,
                allowed: Some(!image.miner),
            }
        })
        .collect()
}

#[derive(Clone)]
enum Target {
    Review,
    Health,
    /// A full URL.
    Url(String),
}

/// One request of a storm, and what its answer must say.
#[derive(Clone)]
struct Call {
    url: Target,
    body: Vec<u8>,
    uid: String,
    by_tag: bool,
    /// For reviews: whether the answer must allow.
    allowed: Option<bool>,
}

impl Call {
    fn health() -> Call {
        Call {
            url: Target::Health,
            body: Vec::new(),
            uid: String::new(),
            by_tag: false,
            allowed: None,
        }
    }

    /// The manifest GET a tag look-up makes, straight to the registry.
    fn manifest(registry: &str, image: &Known) -> Call {
        let (name, tag) = image
            .by_tag
            .strip_prefix(&format!("{registry}/"))
            .and_then(|r| r.rsplit_once(':'))
            .expect("host/repo:tag");
        Call {
            url: Target::Url(format!("http://{registry}/v2/{name}/manifests/{tag}")),
            ..Call::health()
        }
    }
}

/// One review's answer.
struct Answer {
    allowed: bool,
    message: String,
    took: Duration,
}

/// An HTTPS client that keeps its connections, on a small runtime of its
/// own (two threads: the machine's cores are the service's too).
struct Client {
    http: reqwest::Client,
    base: String,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    fn new(host: &str, ca: &Path) -> Client {
        let pem = std::fs::read(ca).expect("read the CA");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("a PEM CA")])
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTPS client");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        Client {
            http,
            base: format!("https://{host}"),
            runtime,
        }
    }

    /// One review, timed.
    fn review(&self, body: &[u8]) -> Answer {
        let started = Instant::now();
        let (status, bytes) =
            self.runtime
                .block_on(send(&self.http, &self.base, &Target::Review, body.to_vec()));
        let took = started.elapsed();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{v}");
        Answer {
            allowed: v["response"]["allowed"] == true,
            message: v["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            took,
        }
    }

    /// Polls the verdict API until `digest`'s scan has ended.
    fn wait_for_verdict(&self, digest: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        let url = Target::Url(format!("{}/api/v1/images/{digest}", self.base));
        loop {
            let (status, bytes) =
                self.runtime
                    .block_on(send(&self.http, &self.base, &url, Vec::new()));
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            match (status, v["status"].as_str()) {
                (200, Some("finished")) => return,
                (200, Some("failed")) => panic!("the scan of {digest} failed: {v}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "no verdict for {digest}: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `calls`, `CONCURRENCY` at a time, each task taking the next call
    /// when its last one is answered; checks every answer. Returns each
    /// call's latency (in `calls` order) and the wall time.
    fn storm(&self, calls: &[Call]) -> (Vec<Duration>, Duration) {
        let calls = Arc::new(calls.to_vec());
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut took: Vec<(usize, Duration)> = self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..CONCURRENCY {
                let (calls, next, http, base) = (
                    Arc::clone(&calls),
                    Arc::clone(&next),
                    self.http.clone(),
                    self.base.clone(),
                );
                tasks.spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(call) = calls.get(i) else {
                            return mine;
                        };
                        let body = call.body.clone();
                        let t = Instant::now();
                        let (status, bytes) = send(&http, &base, &call.url, body).await;
                        mine.push((i, t.elapsed()));
                        check(call, status, &bytes);
                    }
                });
            }
            let mut all = Vec::new();
            while let Some(done) = tasks.join_next().await {
                all.extend(done.expect("a client task"));
            }
            all
        });
        let wall = started.elapsed();
        took.sort_by_key(|(i, _)| *i);
        (took.into_iter().map(|(_, d)| d).collect(), wall)
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    target: &Target,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let request = match target {
        Target::Review => http
            .post(format!("{base}{REVIEW_PATH}"))
            .header("Content-Type", "application/json")
            .body(body),
        Target::Health => http.get(format!("{base}/healthz")),
        Target::Url(url) => http.get(url).header(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        ),
    };
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    (status, bytes.to_vec())
}

fn check(call: &Call, status: u16, bytes: &[u8]) {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(bytes));
    let Some(allowed) = call.allowed else {
        return;
    };
    let v: Value = serde_json::from_slice(bytes).expect("an AdmissionReview");
    assert_eq!(v["response"]["uid"], call.uid.as_str(), "the uid is echoed");
    assert_eq!(
        v["response"]["allowed"], allowed,
        "review {}: {v}",
        call.uid
    );
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

/// What the service's log said, by review uid and by scanned digest.
#[derive(Default)]
struct ServiceLog {
    review_ms: HashMap<String, f64>,
    scan_seconds: HashMap<String, f64>,
}

/// `minehound serve` over HTTPS as its own process, with the default
/// admission budget (8 s) and pending policy (deny).
struct Service {
    child: Child,
    host: String,
    log: Arc<Mutex<ServiceLog>>,
}

impl Service {
    fn start(binary: &Path, dir: &Path, cert: &Path, key: &Path) -> Service {
        let mut child = Command::new(binary)
            .args(["serve", "--no-config", "--listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .env_remove("MINEHOUND_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start minehound serve");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let log = Arc::new(Mutex::new(ServiceLog::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let fields = &event["fields"];
                let text = |k: &str| fields[k].as_str().unwrap_or("").to_string();
                match fields["message"].as_str() {
                    Some("minehound serving") => {
                        let _ = tx.send(text("address"));
                    }
                    Some("admission review") => {
                        if let Some(ms) = fields["ms"].as_f64() {
                            let mut log = thread_log.lock().expect("log");
                            log.review_ms.insert(text("uid"), ms);
                        }
                    }
                    Some("scan finished") => {
                        if let Some(seconds) = fields["seconds"].as_f64() {
                            let mut log = thread_log.lock().expect("log");
                            log.scan_seconds.insert(text("digest"), seconds);
                        }
                    }
                    _ => {}
                }
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the service starts");
        Service { child, host, log }
    }

    /// The service's own milliseconds for each of `calls` (waiting briefly
    /// for log lines still in the pipe).
    fn review_ms(&self, calls: &[Call]) -> Vec<f64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log.lock().expect("log");
            let ms: Vec<f64> = calls
                .iter()
                .filter_map(|c| log.review_ms.get(&c.uid).copied())
                .collect();
            if ms.len() == calls.len() || Instant::now() > deadline {
                return ms;
            }
            drop(log);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn scan_seconds(&self, digest: &str) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(s) = self.log.lock().expect("log").scan_seconds.get(digest) {
                return Some(*s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The registry's requests logged after byte `from` of its log, by method
/// and kind (`/v2/` probe, manifests, blobs).
fn registry_requests(path: &Path, from: u64) -> BTreeMap<String, usize> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("response completed")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let uri = field("http.request.uri=");
        let kind = if uri.contains("/manifests/") {
            "manifests"
        } else if uri.contains("/blobs/") {
            "blobs"
        } else {
            uri.as_str()
        };
        *counts
            .entry(format!("{} {kind}", field("http.request.method=")))
            .or_insert(0) += 1;
    }
    counts
}

/// The rows printed at the end, as a Markdown table.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 8]>,
}

impl Table {
    /// A storm's row: client latencies, requests per second of wall time
    /// (for a kind within a mixed storm, its count over the whole storm's
    /// wall time) and the service's own median.
    fn push(&mut self, name: &str, took: &[Duration], wall: Duration, server: Option<Vec<f64>>) {
        let mut ms: Vec<f64> = took.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let server = server.map_or_else(
            || "-".to_string(),
            |mut s| {
                s.sort_by(f64::total_cmp);
                format!("{:.1} / {:.1}", percentile(&s, 0.5), percentile(&s, 0.99))
            },
        );
        self.rows.push([
            name.to_string(),
            took.len().to_string(),
            format!("{:.0}", took.len() as f64 / wall.as_secs_f64()),
            format!("{:.1}", percentile(&ms, 0.5)),
            format!("{:.1}", percentile(&ms, 0.9)),
            format!("{:.1}", percentile(&ms, 0.99)),
            format!("{:.1}", ms.last().copied().unwrap_or(0.0)),
            server,
        ]);
    }

    /// A single measurement, in the median column.
    fn single(&mut self, name: &str, took: Duration) {
        let mut row: [String; 8] = Default::default();
        row[0] = name.to_string();
        row[1] = "1".into();
        row[3] = format!("{:.1}", took.as_secs_f64() * 1000.0);
        for cell in &mut row[2..] {
            if cell.is_empty() {
                *cell = "-".into();
            }
        }
        self.rows.push(row);
    }

    fn print(&self) {
        let header = [
            "run (20 in flight)",
            "n",
            "per s",
            "median ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "service median / p99 ms",
        ];
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].len())
                    .chain([header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| match i {
                    0 => format!("{cell:<w$}"),
                    _ => format!("{cell:>w$}"),
                })
                .collect();
            println!("| {} |", padded.join(" | "));
        };
        line(header.to_vec());
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| match i {
                0 => "-".repeat(*w),
                _ => format!("{}:", "-".repeat(w - 1)),
            })
            .collect();
        line(rule.iter().map(String::as_str).collect());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
    }
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}
