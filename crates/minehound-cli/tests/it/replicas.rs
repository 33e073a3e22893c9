//! Replicas of `minehound serve` sharing one PostgreSQL database: the real
//! binary, a real PostgreSQL cluster started by the tests (as an unprivileged
//! user) and a real registry. One queue, one verdict per digest, one layer
//! cache across replicas, and jobs that survive a replica's death and the
//! database's restart.

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use minehound_testdata::BuiltImage;
use minehound_testdata::postgres::PostgresServer;
use minehound_testdata::registry::{Fault, FaultProxy, push_image};
use serde_json::Value;

use super::serve::{
    REPORT_V11, Service, base_layer, clean_image, json_of, miner_image, plain_registry, text,
};

/// One PostgreSQL server for the tests of this binary; each test has a
/// database of its own.
static POSTGRES_DIR: LazyLock<tempfile::TempDir> = LazyLock::new(postgres_dir);
static POSTGRES: LazyLock<PostgresServer> =
    LazyLock::new(|| PostgresServer::start(POSTGRES_DIR.path()).expect("start PostgreSQL"));

/// A directory for a PostgreSQL cluster: under /tmp, whose path is short
/// enough for the server's Unix socket and open to its unprivileged user.
fn postgres_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mh-pg")
        .tempdir_in("/tmp")
        .unwrap()
}

/// A fresh database on this binary's PostgreSQL server, for tests elsewhere
/// that run the same behaviour on both stores.
pub(super) fn database(name: &str) -> String {
    POSTGRES.create_database(name).unwrap()
}

/// Everything the service stored in the database at `url` (one of this
/// binary's), as text: jobs, verdicts and reports.
pub(super) fn database_text(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap();
    POSTGRES
        .psql(
            name,
            "SELECT record::text FROM minehound_jobs UNION ALL \
             SELECT record::text FROM minehound_images UNION ALL \
             SELECT convert_from(report, 'UTF8') FROM minehound_reports",
        )
        .unwrap()
}

/// A replica of the service on the database at `url`, with its own state and
/// cache directories (so whatever it shares, it shares through the database).
fn replica(dir: &Path, name: &str, url: &str, args: &[&str]) -> Service {
    let mut all = vec!["--database", url, "--job-lease", "3s"];
    all.extend_from_slice(args);
    Service::start(&dir.join(name), &all, &[])
}

/// The sum of the metric lines that start with `name` (0 when none).
fn metric(service: &Service, name: &str) -> u64 {
    let metrics = text(&service.get("/metrics", &[]));
    metrics
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn sum(replicas: &[&Service], name: &str) -> u64 {
    replicas.iter().map(|r| metric(r, name)).sum()
}

/// The image's verdict as any replica answers it, once its scan ended.
fn finished_verdict(service: &Service, digest: &str) -> Value {
    service.verdict(digest, &[])
}

#[test]
fn replicas_share_one_queue_one_verdict_per_digest_and_one_layer_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = POSTGRES.create_database("storm").unwrap();
    let a = replica(dir.path(), "a", &url, &["--workers", "2"]);
    let b = replica(dir.path(), "b", &url, &["--workers", "2"]);
    let c = replica(dir.path(), "c", &url, &["--workers", "2"]);
    let registry = minehound_testdata::registry::RegistryProcess::start_notifying(
        &dir.path().join("registry"),
        &dir.path().join("storage"),
        &minehound_testdata::registry::Auth::None,
        &format!("http://{}/api/v1/notifications", a.host),
        &[],
    )
    .unwrap();
    // A push storm over two shared bases: 2 bases + 10 tops = 12 unique layers.
    let bases = [base_layer("storm-1"), base_layer("storm-2")];
    let mut images: Vec<(String, BuiltImage)> = Vec::new();
    for i in 0..8 {
        images.push((
            format!("team/app{i}"),
            clean_image(&bases[i % 2], &format!("app {i}")),
        ));
    }
    images.push(("team/miner1".into(), miner_image(&bases[0])));
    images.push(("team/miner2".into(), miner_image(&bases[1])));
    for (repo, image) in &images {
        push_image(&registry.host, repo, "1", image).unwrap();
    }
    // Every verdict, read from every replica (the registry told only `a`).
    for (repo, image) in &images {
        for replica in [&a, &b, &c] {
            let v = finished_verdict(replica, &image.manifest.digest);
            let expected = if repo.contains("miner") {
                "critical"
            } else {
                "clean"
            };
            assert_eq!(v["verdict"]["verdict"], expected, "{repo}: {v:#}");
        }
    }
    // No job ran twice, and no layer was read twice across the fleet:
    // the two miner images share their XMRig layer too (same bytes).
    let replicas = [&a, &b, &c];
    let scans = sum(&replicas, "minehound_scans_total{origin=\"notification\"");
    let scanned = sum(&replicas, "minehound_layers_total{result=\"scanned\"}");
    let cached = sum(&replicas, "minehound_layers_total{result=\"cached\"}");
    assert_eq!(scans, images.len() as u64, "one scan per pushed image");
    assert_eq!(
        POSTGRES
            .psql("storm", "SELECT max(attempts) FROM minehound_jobs")
            .unwrap(),
        "1",
        "no job was started twice"
    );
    assert_eq!(
        POSTGRES
            .psql(
                "storm",
                "SELECT count(*) FROM minehound_jobs WHERE state <> 'finished'"
            )
            .unwrap(),
        "0"
    );
    let unique_layers = 2 + 8 + 1;
    assert_eq!(
        scanned, unique_layers,
        "layer scans across replicas (cached {cached})"
    );
    assert_eq!(scanned + cached, 2 * scans);
    // Harbor's scan accepted by one replica, its report polled from another.
    let (repo, image) = &images[8];
    let id = b.scan(
        &format!("http://{}", registry.host),
        None,
        repo,
        &image.manifest.digest,
    );
    let report = c.report(&id, REPORT_V11);
    assert_eq!(report.status, 200, "{}", text(&report));
    let body = json_of(&report);
    assert!(
        body["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "MH-XMRIG-ELF"),
        "{body:#}"
    );
    // A replica whose one worker is busy leaves the next job to the others.
    let slow = FaultProxy::with_fault(
        &registry.host,
        Fault::Trickle {
            interval: Duration::from_millis(4),
        },
    )
    .unwrap();
    let slow_image = clean_image(&base_layer("slow"), "slow");
    let quick_image = clean_image(&base_layer("quick"), "quick");
    push_image(&registry.host, "team/slow", "1", &slow_image).unwrap();
    push_image(&registry.host, "team/quick", "1", &quick_image).unwrap();
    // Their pushes' own scans end before `busy` starts.
    finished_verdict(&a, &slow_image.manifest.digest);
    finished_verdict(&a, &quick_image.manifest.digest);
    let busy = replica(dir.path(), "busy", &url, &["--workers", "1"]);
    let harbor = "minehound_scans_total{origin=\"harbor\"";
    let others_before = sum(&[&a, &b, &c], harbor);
    let slow_url = format!("http://{}", slow.host);
    let slow_id = busy.scan(&slow_url, None, "team/slow", &slow_image.manifest.digest);
    let deadline = Instant::now() + Duration::from_secs(60);
    while POSTGRES
        .psql(
            "storm",
            &format!("SELECT lease_owner IS NOT NULL FROM minehound_jobs WHERE id = '{slow_id}'"),
        )
        .unwrap()
        != "t"
    {
        assert!(Instant::now() < deadline, "the slow job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let quick_id = busy.scan(
        &format!("http://{}", registry.host),
        None,
        "team/quick",
        &quick_image.manifest.digest,
    );
    assert_eq!(busy.report(&quick_id, REPORT_V11).status, 200);
    assert_eq!(busy.report(&slow_id, REPORT_V11).status, 200);
    // Both ran, one on `busy` and the quick one elsewhere, while it was busy.
    assert_eq!(metric(&busy, "minehound_scans_total"), 1);
    assert_eq!(sum(&[&a, &b, &c], harbor), others_before + 1);

    // One push delivered to two replicas at once (a load balancer's retry)
    // queues one scan.
    let dedupe = clean_image(&base_layer("dedupe"), "dedupe");
    push_image(&registry.host, "team/dedupe", "1", &dedupe).unwrap();
    finished_verdict(&a, &dedupe.manifest.digest);
    let envelope = serde_json::json!({"events": [{
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": dedupe.manifest.digest,
            "repository": "team/dedupe",
            "url": format!("http://{}/v2/team/dedupe/manifests/{}", slow.host, dedupe.manifest.digest),
        },
    }]})
    .to_string();
    let deliveries: Vec<_> = [&b, &c]
        .into_iter()
        .map(|replica| {
            let (host, body) = (replica.host.clone(), envelope.clone());
            std::thread::spawn(move || {
                let r = minehound_testdata::registry::http(
                    &host,
                    "POST",
                    "/api/v1/notifications",
                    &[(
                        "Content-Type",
                        "application/vnd.docker.distribution.events.v1+json",
                    )],
                    body.as_bytes(),
                )
                .unwrap();
                assert_eq!(r.status, 200, "{}", text(&r));
                json_of(&r)
            })
        })
        .collect();
    let answers: Vec<Value> = deliveries.into_iter().map(|t| t.join().unwrap()).collect();
    let queued: usize = answers
        .iter()
        .map(|a| a["queued"].as_array().unwrap().len())
        .sum();
    let already: u64 = answers
        .iter()
        .map(|a| a["already_queued"].as_u64().unwrap())
        .sum();
    assert_eq!((queued, already), (1, 1), "{answers:?}");

    // The database's URL is in no log with its password.
    for replica in replicas {
        assert!(
            !replica.log().contains(POSTGRES.password()),
            "a log shows the database password"
        );
    }
}

#[test]
fn a_replica_killed_mid_scan_leaves_its_job_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let url = POSTGRES.create_database("killed").unwrap();
    let (_registry, slow, image) = slow_registry(dir.path(), "killed");
    let mut first = replica(dir.path(), "first", &url, &["--workers", "1"]);
    let id = first.scan(
        &format!("http://{}", slow.host),
        None,
        "team/app",
        &image.manifest.digest,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while POSTGRES
        .psql(
            "killed",
            &format!("SELECT state FROM minehound_jobs WHERE id = '{id}'"),
        )
        .unwrap()
        != "running"
    {
        assert!(
            Instant::now() < deadline,
            "the job never started: {}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    first.wait_exit();
    // A replica started afterwards takes the job over once the lease ran out.
    let second = replica(dir.path(), "second", &url, &["--workers", "1"]);
    let report = second.report(&id, REPORT_V11);
    assert_eq!(report.status, 200, "{}", text(&report));
    let v = finished_verdict(&second, &image.manifest.digest);
    assert_eq!(v["verdict"]["verdict"], "clean", "{v:#}");
    assert_eq!(v["verdict"]["layers"], 2, "{v:#}");
    assert_eq!(
        POSTGRES
            .psql(
                "killed",
                &format!("SELECT attempts FROM minehound_jobs WHERE id = '{id}'")
            )
            .unwrap(),
        "2"
    );
    assert!(
        second.log().contains("taking over a job"),
        "{}",
        second.log()
    );
}

#[test]
fn replicas_starting_together_make_one_schema_and_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = POSTGRES.create_database("together").unwrap();
    let starting: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let (dir, url) = (dir.path().to_path_buf(), url.clone());
            std::thread::spawn(move || replica(&dir, name, &url, &[]))
        })
        .collect();
    let replicas: Vec<Service> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        POSTGRES
            .psql(
                "together",
                "SELECT string_agg(version::text, ',') FROM minehound_schema"
            )
            .unwrap(),
        "1"
    );
    assert_eq!(
        POSTGRES
            .psql("together", "SELECT count(*) FROM minehound_replicas")
            .unwrap(),
        "3"
    );
    for r in &replicas {
        assert_eq!(r.get("/readyz", &[]).status, 200);
    }
    // A database a newer minehound migrated is refused with the reason.
    POSTGRES
        .psql(
            "together",
            "INSERT INTO minehound_schema (version) VALUES (99)",
        )
        .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("minehound"))
        .args([
            "serve",
            "--no-config",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &url,
        ])
        .arg("--state-dir")
        .arg(dir.path().join("late"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("newer minehound"), "{stderr}");
    assert!(!stderr.contains(POSTGRES.password()), "{stderr}");
    assert!(stderr.contains(":***@127.0.0.1"), "{stderr}");
}

#[test]
fn jobs_finish_when_the_database_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    // Dropped after the server (declared before it): nothing stays behind.
    let postgres_dir = postgres_dir();
    let mut postgres = PostgresServer::start(postgres_dir.path()).unwrap();
    let url = postgres.create_database("outage").unwrap();
    let registry = plain_registry(&dir.path().join("upstream"));
    let base = base_layer("outage");
    let images: Vec<BuiltImage> = (0..4)
        .map(|i| clean_image(&base, &format!("outage {i}")))
        .collect();
    for (i, image) in images.iter().enumerate() {
        push_image(&registry.host, &format!("team/app{i}"), "1", image).unwrap();
    }
    let slow = FaultProxy::with_fault(
        &registry.host,
        Fault::Trickle {
            interval: Duration::from_micros(300),
        },
    )
    .unwrap();
    let a = replica(dir.path(), "a", &url, &["--workers", "1"]);
    let b = replica(dir.path(), "b", &url, &["--workers", "1"]);
    let registry_url = format!("http://{}", slow.host);
    let ids: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let replica = if i % 2 == 0 { &a } else { &b };
            replica.scan(
                &registry_url,
                None,
                &format!("team/app{i}"),
                &image.manifest.digest,
            )
        })
        .collect();
    // Scans are under way when the database goes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while postgres
        .psql(
            "outage",
            "SELECT count(*) FROM minehound_jobs WHERE state = 'running'",
        )
        .unwrap()
        == "0"
    {
        assert!(Instant::now() < deadline, "no scan started");
        std::thread::sleep(Duration::from_millis(20));
    }
    postgres.stop();
    // Not ready while the database is away; the API says when to come back.
    let ready = a.get("/readyz", &[]);
    assert_eq!(ready.status, 503, "{}", text(&ready));
    let poll = b.get(
        &format!("/api/v1/scan/{}/report", ids[0]),
        &[("Accept", REPORT_V11)],
    );
    assert_eq!(poll.status, 503, "{}", text(&poll));
    assert!(poll.header("Retry-After").is_some());
    std::thread::sleep(Duration::from_secs(4));
    postgres.start_again().unwrap();
    for id in &ids {
        let report = a.report(id, REPORT_V11);
        assert_eq!(report.status, 200, "{}\n{}", text(&report), a.log());
    }
    for image in &images {
        assert_eq!(
            finished_verdict(&b, &image.manifest.digest)["verdict"]["verdict"],
            "clean"
        );
    }
    assert_eq!(a.get("/readyz", &[]).status, 200);
    // Away longer than a lease: each replica gave up the jobs it held
    // (a scan still running stopped; one already done was recorded only
    // because nobody had taken the job meanwhile).
    assert!(
        sum(&[&a, &b], "minehound_job_leases_lost_total") >= 1,
        "{}",
        a.log()
    );
    assert_eq!(
        postgres
            .psql(
                "outage",
                "SELECT count(*) FROM minehound_jobs WHERE state = 'finished'"
            )
            .unwrap(),
        "4"
    );
}

#[test]
fn ci_runners_share_layer_results_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = POSTGRES.create_database("runners").unwrap();
    let image = miner_image(&base_layer("runners"));
    let layout = dir.path().join("layout");
    minehound_testdata::write_oci_layout(&layout, &[(&image, None)]).unwrap();
    let scan = |runner: &str| -> Value {
        let out = Command::new(assert_cmd::cargo::cargo_bin("minehound"))
            .args([
                "scan",
                "--no-config",
                "--format",
                "json",
                "--cache-url",
                &url,
            ])
            .arg("--cache-dir")
            .arg(dir.path().join(runner))
            .arg(format!("oci:{}", layout.display()))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = scan("runner-1");
    assert_eq!(first["stats"]["layers_cached"], 0);
    // Another runner, its own (empty) cache directory: every layer from the database.
    let second = scan("runner-2");
    assert_eq!(
        second["stats"]["layers_cached"], second["stats"]["layers"],
        "{second:#}"
    );
    assert_eq!(second["findings"], first["findings"]);
    assert_eq!(
        POSTGRES
            .psql("runners", "SELECT count(*) FROM minehound_layers")
            .unwrap(),
        "2"
    );
}

#[test]
fn the_database_is_reached_over_tls_as_libpq_users_configure_it() {
    let dir = tempfile::tempdir().unwrap();
    // Dropped after the server (declared before it): nothing stays behind.
    let postgres_dir = postgres_dir();
    let mut postgres = PostgresServer::start(postgres_dir.path()).unwrap();
    let tls = minehound_testdata::registry::generate_tls(&dir.path().join("tls")).unwrap();
    let other_ca = minehound_testdata::registry::generate_tls(&dir.path().join("other")).unwrap();
    postgres.require_tls(&tls).unwrap();
    let url = postgres.create_database("tls").unwrap();
    let with = |query: String| format!("{url}?{query}");
    // A replica that cannot start says why, and never shows the password.
    let refused = |url: &str| -> String {
        let out = Command::new(assert_cmd::cargo::cargo_bin("minehound"))
            .args([
                "serve",
                "--no-config",
                "--listen",
                "127.0.0.1:0",
                "--database",
                url,
            ])
            .arg("--state-dir")
            .arg(dir.path().join("refused"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains(postgres.password()), "{stderr}");
        stderr
    };
    // The server takes TLS only: sent in the clear, the connection is refused.
    let clear = refused(&with("sslmode=disable".into()));
    assert!(clear.contains("no encryption"), "{clear}");
    // A server certificate from a CA not trusted: refused before a password goes out.
    let other = format!(
        "sslmode=verify-full&sslrootcert={}",
        other_ca.ca_cert.display()
    );
    let untrusted = refused(&with(other));
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    // verify-full needs a CA to check against.
    let no_ca = refused(&with("sslmode=verify-full".into()));
    assert!(no_ca.contains("sslrootcert"), "{no_ca}");
    // Checked against the right CA, and encrypted without a check: both work.
    let verified = with(format!(
        "sslmode=verify-full&sslrootcert={}",
        tls.ca_cert.display()
    ));
    let service = replica(dir.path(), "verified", &verified, &[]);
    assert_eq!(service.get("/readyz", &[]).status, 200);
    let service = replica(dir.path(), "required", &with("sslmode=require".into()), &[]);
    assert_eq!(service.get("/readyz", &[]).status, 200);
    assert_eq!(
        postgres
            .psql("tls", "SELECT count(*) FROM minehound_replicas")
            .unwrap(),
        "2"
    );
}

/// A registry holding one small clean image (`team/app`), and a proxy in
/// front of it whose blobs trickle: scans through it take a few seconds, so a
/// test can act while one runs.
fn slow_registry(
    dir: &Path,
    tag: &str,
) -> (
    minehound_testdata::registry::RegistryProcess,
    FaultProxy,
    BuiltImage,
) {
    let registry = plain_registry(&dir.join("upstream"));
    let image = clean_image(&base_layer(tag), tag);
    push_image(&registry.host, "team/app", "1", &image).unwrap();
    let slow = FaultProxy::with_fault(
        &registry.host,
        Fault::Trickle {
            interval: Duration::from_millis(4),
        },
    )
    .unwrap();
    (registry, slow, image)
}

/// Waits until job `id` in database `db` is running on some replica.
fn wait_running(db: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while POSTGRES
        .psql(
            db,
            &format!("SELECT state FROM minehound_jobs WHERE id = '{id}'"),
        )
        .unwrap()
        != "running"
    {
        assert!(Instant::now() < deadline, "job {id} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_job_whose_replicas_keep_dying_ends_failed_and_a_lost_lease_stops_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let url = POSTGRES.create_database("exhausted").unwrap();
    let (_registry, slow, image) = slow_registry(dir.path(), "exhausted");
    let service = replica(dir.path(), "only", &url, &["--workers", "1"]);
    let id = service.scan(
        &format!("http://{}", slow.host),
        None,
        "team/app",
        &image.manifest.digest,
    );
    wait_running("exhausted", &id);
    // As if three replicas had taken it and died, the last one's lease over.
    POSTGRES
        .psql(
            "exhausted",
            &format!(
                "UPDATE minehound_jobs SET lease_owner = 'gone', attempts = 3, \
                 lease_until = now() - interval '1 second' WHERE id = '{id}'"
            ),
        )
        .unwrap();
    let report = service.report(&id, REPORT_V11);
    assert_eq!(report.status, 500, "{}", text(&report));
    assert!(
        text(&report).contains("started 3 times"),
        "{}",
        text(&report)
    );
    // The replica saw the job was no longer its own and stopped scanning it.
    assert_eq!(metric(&service, "minehound_job_leases_lost_total"), 1);
    let v = service.get(&format!("/api/v1/images/{}", image.manifest.digest), &[]);
    assert_eq!(json_of(&v)["status"], "failed", "{}", text(&v));
}

#[test]
fn a_harbor_job_ends_with_scan_again_when_the_replica_holding_its_authorization_dies() {
    let dir = tempfile::tempdir().unwrap();
    let url = POSTGRES.create_database("pinned").unwrap();
    let (_registry, slow, image) = slow_registry(dir.path(), "pinned");
    let mut accepting = replica(dir.path(), "accepting", &url, &["--workers", "1"]);
    let other = replica(dir.path(), "other", &url, &["--workers", "1"]);
    // Harbor's pull authorization: held by `accepting` alone, never written.
    let id = accepting.scan(
        &format!("http://{}", slow.host),
        Some("Basic cm9ib3Q6c2VjcmV0"),
        "team/app",
        &image.manifest.digest,
    );
    wait_running("pinned", &id);
    assert_eq!(
        POSTGRES
            .psql("pinned", &format!("SELECT count(*) FROM minehound_jobs WHERE id = '{id}' AND pinned_to IS NOT NULL"))
            .unwrap(),
        "1"
    );
    let killed = Command::new("kill")
        .args(["-KILL", &accepting.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    accepting.wait_exit();
    let report = other.report(&id, REPORT_V11);
    assert_eq!(report.status, 500, "{}", text(&report));
    assert!(text(&report).contains("scan again"), "{}", text(&report));
    assert!(!database_text(&url).contains("cm9ib3Q6c2VjcmV0"));
}
