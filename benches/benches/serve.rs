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
//! - the service's peak RSS (`minehound serve` runs as its own process);
//! - replicas sharing one PostgreSQL database (a cluster the bench starts,
//!   as the tests do): one replica, then three, `--workers 2` each, cold, on
//!   a fresh database each; the three get the scan requests round-robin and
//!   each report is polled from another replica than the one that took the
//!   request. Then the layers the replicas read against the image set's
//!   unique layers (equal when the shared layer cache works), the database's
//!   own counters per job (`pg_stat_database`), and the CPU time of the
//!   replicas and of PostgreSQL against the file store's.
//!
//! The machine's core count is printed first: several replicas on few cores
//! oversubscribe them, and the numbers say so rather than hide it.
//!
//! `cargo bench -p minehound-bench --bench serve`

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minehound::{ScanRequest, ScannerBuilder};
use minehound_bench::collect;
use minehound_testdata::postgres::PostgresServer;
use minehound_testdata::registry::{Auth, RegistryProcess, http, push_image};
use minehound_testdata::{Entry, ImageSpec, Layer};

/// A base layer's size and an app layer's size, in bytes of files.
const BASE_BYTES: u64 = 48 << 20;
const APP_BYTES: u64 = 4 << 20;
const BASES: usize = 3;
/// How long PostgreSQL may hold a busy backend's counters before it adds them
/// to `pg_stat_database` (`PGSTAT_IDLE_INTERVAL`, 10 s), and a margin.
const STATS_SETTLE: Duration = Duration::from_secs(11);
/// The metric line of the layers a service read and scanned itself.
const LAYERS_SCANNED: &str = "minehound_layers_total{result=\"scanned\"}";

fn main() {
    let count: usize = std::env::var("MINEHOUND_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    println!(
        "machine: {} cores (nproc), load average {} at start",
        nproc(),
        load_average()
    );
    let work = tempfile::tempdir().expect("temp dir");
    // Started first so that a machine without PostgreSQL fails now, not
    // after the file-store runs; idle, it costs nothing they would see.
    // A short directory: the server's Unix socket path has a length limit.
    let postgres_dir = tempfile::Builder::new()
        .prefix("mh-pg")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let postgres = PostgresServer::start(postgres_dir.path()).expect("start PostgreSQL");
    let registry = RegistryProcess::start(
        &work.path().join("registry"),
        &work.path().join("storage"),
        None,
        &Auth::None,
    )
    .expect("start docker-registry");
    let started = Instant::now();
    let (images, unique_layers, unique_bytes, referenced_bytes) =
        push_image_set(&registry.host, count);
    println!(
        "image set: {count} images over {BASES} shared base layers; {unique_layers} unique layers, {} MiB of unique files, {} MiB referenced (pushed in {:.0?})",
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
    let ticks = clock_ticks();
    // The file store, `--workers 2`, cold: what the replicas are held against.
    let mut file_cold = Duration::ZERO;
    let mut file_cpu = Duration::ZERO;
    for workers in [2, 4] {
        let state = tempfile::tempdir().expect("temp dir");
        let mut service = Service::start(&binary, state.path(), workers, &[]);
        let hosts = [service.host.clone()];
        let (cold, _) = drive(&hosts, &url, &images);
        row(
            &format!("service, cold, {workers} workers"),
            cold,
            count,
            baseline,
        );
        // Read before the warm run, so that it is the cold run's (and the
        // start's) alone, as the replicas' below.
        let cpu = service.cpu(ticks);
        let scanned = metric(&service.host, LAYERS_SCANNED);
        if workers == 2 {
            file_cold = cold;
            file_cpu = cpu;
        }
        let (warm, _) = drive(&hosts, &url, &images);
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
        println!(
            "{:<44} {:>8.2} s {:>8.0} ms per scan",
            format!("service CPU, cold run, {workers} workers"),
            cpu.as_secs_f64(),
            per_job_ms(cpu, count)
        );
        println!(
            "{:<44} {:>8} of {unique_layers} unique layers",
            format!("layers scanned, cold, {workers} workers"),
            scanned
        );
        service.stop();
    }

    // Replicas sharing one PostgreSQL database, `--workers 2` each, cold: a
    // fresh database and fresh cache directories for each run.
    let mut one_replica = Duration::ZERO;
    for replicas in [1, 3] {
        let database = format!("serve_{replicas}_replicas");
        let database_url = postgres.create_database(&database).expect("database");
        let dirs = tempfile::tempdir().expect("temp dir");
        let before_start = DatabaseCounters::read(&postgres, &database);
        let mut fleet: Vec<Service> = (0..replicas)
            .map(|r| {
                Service::start(
                    &binary,
                    &dirs.path().join(format!("replica-{r}")),
                    2,
                    &["--database", &database_url],
                )
            })
            .collect();
        // Counters of the start (schema, replica rows) reach
        // pg_stat_database late: let them, so that the run's are its own.
        std::thread::sleep(STATS_SETTLE);
        let before = DatabaseCounters::read(&postgres, &database);
        let postgres_cpu_before = postgres_cpu(postgres_dir.path(), ticks);
        let hosts: Vec<String> = fleet.iter().map(|s| s.host.clone()).collect();
        let (took, polls) = drive(&hosts, &url, &images);
        let name = format!(
            "PostgreSQL, {replicas} replica{}, cold, 2 workers each",
            if replicas == 1 { "" } else { "s" }
        );
        row(&name, took, count, baseline);
        let scanned: u64 = hosts.iter().map(|h| metric(h, LAYERS_SCANNED)).sum();
        let cpu: Duration = fleet.iter().map(|s| s.cpu(ticks)).sum();
        let peak_rss = fleet.iter().map(Service::peak_rss_kib).max().unwrap_or(0);
        for service in &mut fleet {
            service.stop();
        }
        // Backends write their last counters as they exit.
        wait_disconnected(&postgres, &database);
        // (The psql sessions that asked cost PostgreSQL a few ms.)
        let postgres_cpu_after = postgres_cpu(postgres_dir.path(), ticks);
        let after = DatabaseCounters::read(&postgres, &database);
        if replicas == 1 {
            one_replica = took;
            ratio("  vs. the file store, cold, 2 workers", file_cold, took);
        } else {
            ratio("  vs. 1 replica on PostgreSQL", one_replica, took);
            ratio("  vs. the file store, cold, 2 workers", file_cold, took);
        }
        println!(
            "{:<44} {:>8} of {unique_layers} unique layers",
            format!("layers scanned, all {replicas} replica(s)"),
            scanned
        );
        println!(
            "{:<44} {:>8.2} s {:>8.0} ms per scan (file store: {:.2} s, {:.0} ms per scan)",
            format!("replicas' CPU, {replicas} replica(s)"),
            cpu.as_secs_f64(),
            per_job_ms(cpu, count),
            file_cpu.as_secs_f64(),
            per_job_ms(file_cpu, count)
        );
        println!(
            "{:<44} {:>6} MiB",
            format!("replica peak RSS (largest of {replicas})"),
            peak_rss >> 10
        );
        let postgres_cpu = postgres_cpu_after.saturating_sub(postgres_cpu_before);
        println!(
            "{:<44} {:>8.2} s {:>8.0} ms per scan",
            format!("PostgreSQL's CPU, {replicas} replica(s)"),
            postgres_cpu.as_secs_f64(),
            per_job_ms(postgres_cpu, count)
        );
        println!(
            "{:<44} {:>8.1} per job ({polls} in the run: one report at a time, every 20 ms until there)",
            format!("report requests, {replicas} replica(s)"),
            polls as f64 / count as f64,
        );
        let run = after.since(&before);
        let start = before.since(&before_start);
        for (what, value, total, at_start) in [
            ("commits", run.commits, after.commits, start.commits),
            (
                "tuples written",
                run.tuples_written,
                after.tuples_written,
                start.tuples_written,
            ),
            ("blocks touched", run.blocks, after.blocks, start.blocks),
        ] {
            println!(
                "{:<44} {:>8.1} per job ({value} in the run, {at_start} at start, {total} in all)",
                format!("database {what}, {replicas} replica(s)"),
                value as f64 / count as f64,
            );
        }
    }
    println!("machine: load average {} at the end", load_average());
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
    fn start(binary: &Path, dir: &Path, workers: usize, args: &[&str]) -> Service {
        let mut child = Command::new(binary)
            .args(["serve", "--no-config", "--listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--workers", &workers.to_string()])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(args)
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

    /// The CPU time the service used so far, all its threads.
    fn cpu(&self, ticks: u64) -> Duration {
        let fields = stat_fields(self.child.id()).expect("the service runs");
        ticks_to_duration(fields.utime + fields.stime, ticks)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bench that panics (or whose output pipe closes) leaves no service
/// running.
impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
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
/// storm, request `i` to `hosts[i % n]`, then polls every report until all
/// are there, report `i` from the next host (so with several replicas, never
/// from the one that took the request); returns the time and how many
/// report requests it made (each one is read from the store).
fn drive(hosts: &[String], registry: &str, images: &[(String, String)]) -> (Duration, u64) {
    let t = Instant::now();
    let mut polls = 0;
    let ids: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, (repo, digest))| {
            let body = serde_json::json!({
                "registry": {"url": registry},
                "artifact": {"repository": repo, "digest": digest},
            });
            let r = http(
                &hosts[i % hosts.len()],
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
    for (i, id) in ids.iter().enumerate() {
        let host = &hosts[(i + 1) % hosts.len()];
        loop {
            polls += 1;
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
    (t.elapsed(), polls)
}

/// Prints how much faster (or slower, below 1) `took` is than `other`.
fn ratio(name: &str, other: Duration, took: Duration) {
    println!(
        "{name:<44} {:>8.2}x throughput",
        other.as_secs_f64() / took.as_secs_f64()
    );
}

fn per_job_ms(cpu: Duration, jobs: usize) -> f64 {
    cpu.as_secs_f64() * 1000.0 / jobs as f64
}

/// The sum of the values of the service's metric lines that start with
/// `name` (0 when none).
fn metric(host: &str, name: &str) -> u64 {
    let r = http(host, "GET", "/metrics", &[], b"").expect("GET /metrics");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `nproc`: the cores this process may run on.
fn nproc() -> String {
    Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or("?".into(), |n| n.get().to_string())
        })
}

/// `/proc/loadavg`'s 1-minute average: whatever else runs on the machine
/// shares its cores with the bench.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s times.
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// The fields of `/proc/PID/stat` the bench reads, in clock ticks.
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    /// Of children waited for.
    cutime: u64,
    cstime: u64,
}

fn stat_fields(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // its last ')', with the state (field 3).
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// The CPU time of the PostgreSQL server in `dir` so far: the postmaster,
/// its children that exited (backends of closed connections) and those that
/// run (background processes, open connections).
fn postgres_cpu(dir: &Path, ticks: u64) -> Duration {
    let postmaster: u32 = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .expect("postmaster.pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the postmaster's pid");
    let own = stat_fields(postmaster).expect("the postmaster runs");
    let mut total = own.utime + own.stime + own.cutime + own.cstime;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(child) = stat_fields(pid)
            && child.ppid == postmaster
        {
            total += child.utime + child.stime;
        }
    }
    ticks_to_duration(total, ticks)
}

/// A database's own counters, from `pg_stat_database`.
struct DatabaseCounters {
    /// `xact_commit`.
    commits: u64,
    /// `tup_inserted + tup_updated + tup_deleted`.
    tuples_written: u64,
    /// `blks_hit + blks_read`.
    blocks: u64,
}

impl DatabaseCounters {
    /// Read from the database `postgres`, so that reading them adds no
    /// transaction to `database`'s.
    fn read(server: &PostgresServer, database: &str) -> DatabaseCounters {
        let row = server
            .psql(
                "postgres",
                &format!(
                    "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, blks_hit + blks_read
                     FROM pg_stat_database WHERE datname = '{database}'"
                ),
            )
            .expect("pg_stat_database");
        let values: Vec<u64> = row
            .split('|')
            .map(|v| v.parse().expect("a counter"))
            .collect();
        let [commits, tuples_written, blocks] = values[..] else {
            panic!("pg_stat_database for {database}: {row:?}");
        };
        DatabaseCounters {
            commits,
            tuples_written,
            blocks,
        }
    }

    fn since(&self, before: &DatabaseCounters) -> DatabaseCounters {
        DatabaseCounters {
            commits: self.commits.saturating_sub(before.commits),
            tuples_written: self.tuples_written.saturating_sub(before.tuples_written),
            blocks: self.blocks.saturating_sub(before.blocks),
        }
    }
}

/// Waits until no connection to `database` is left (their backends have
/// written their counters then).
fn wait_disconnected(server: &PostgresServer, database: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let query = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'");
    while server.psql("postgres", &query).expect("pg_stat_activity") != "0" {
        assert!(
            Instant::now() < deadline,
            "connections to {database} outlive the replicas"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pushes `count` images: base layer `i % BASES` plus an app layer of their
/// own, all of this machine's files. Returns (repository, digest) pairs, the
/// number of distinct layers, the bytes of unique files and the bytes all
/// images reference.
fn push_image_set(host: &str, count: usize) -> (Vec<(String, String)>, usize, u64, u64) {
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
    let mut layers = HashSet::new();
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
        layers.extend(image.layers.iter().map(|l| l.digest.clone()));
        let repo = format!("bench/app{i}");
        push_image(host, &repo, "1", &image).expect("push");
        images.push((repo, image.manifest.digest.clone()));
    }
    (images, layers.len(), unique, referenced)
}
