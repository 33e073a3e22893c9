//! The service as a library: what a restart does to jobs it interrupted.
//! (`minehound serve` end to end is tested with the binary, in minehound-cli.)

use std::path::Path;
use std::time::{Duration, Instant};

use minehound::ScannerBuilder;
use minehound_server::{JobState, ServerBuilder};
use minehound_testdata::demo_image;
use minehound_testdata::registry::{Auth, RegistryProcess, push_image};
use serde_json::json;

/// A job record as the service writes it, in the state it was in when the
/// process stopped.
fn interrupted_job(state: &Path, id: &str, registry: &str, digest: &str, authorized: bool) {
    let dir = state.join("jobs-v1");
    std::fs::create_dir_all(&dir).unwrap();
    let job = json!({
        "id": id,
        "origin": if authorized { "harbor" } else { "notification" },
        "registry": registry,
        "artifact": {"repository": "team/demo", "digest": digest},
        "authorized": authorized,
        "state": "running",
        "created_at": "2026-11-27T08:00:00Z",
        "started_at": "2026-11-27T08:00:01Z",
    });
    std::fs::write(dir.join(format!("{id}.json")), job.to_string()).unwrap();
}

#[test]
fn a_restart_resumes_jobs_that_need_no_credentials_and_fails_those_that_did() {
    let dir = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(
        &dir.path().join("work"),
        &dir.path().join("storage"),
        None,
        &Auth::None,
    )
    .unwrap();
    let image = demo_image().build();
    push_image(&registry.host, "team/demo", "1", &image).unwrap();
    let state = dir.path().join("state");
    let url = format!("http://{}", registry.host);
    let digest = &image.manifest.digest;
    interrupted_job(&state, "notified", &url, digest, false);
    interrupted_job(&state, "from-harbor", &url, digest, true);
    // A damaged record costs only itself; a planted one whose id would name
    // a file outside the state directory is not taken.
    std::fs::write(state.join("jobs-v1/damaged.json"), b"{\"id\": ").unwrap();
    interrupted_job(&state, "planted", &url, digest, true);
    let planted = state.join("jobs-v1/planted.json");
    let text = std::fs::read_to_string(&planted).unwrap();
    std::fs::write(&planted, text.replace("\"planted\"", "\"../../escaped\"")).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scanner = ScannerBuilder::new().build().unwrap();
    let server = runtime
        .block_on(ServerBuilder::new(scanner, &state).start())
        .unwrap();
    let job = |id: &str| runtime.block_on(server.job(id)).unwrap();

    // The Harbor job's credentials were never written: it cannot resume.
    let harbor = job("from-harbor").unwrap();
    assert_eq!(harbor.state, JobState::Failed);
    assert!(harbor.error.unwrap().contains("restarted"));
    // The notified one is scanned again, to the demo image's verdict.
    let deadline = Instant::now() + Duration::from_secs(60);
    let notified = loop {
        let notified = job("notified").unwrap();
        if notified.state.ended() {
            break notified;
        }
        assert!(Instant::now() < deadline, "the resumed job never ended");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(notified.state, JobState::Finished, "{:?}", notified.error);
    let verdict = notified.verdict.unwrap();
    assert_eq!(verdict.verdict, "high");
    assert!(verdict.findings >= 2);
    assert!(state.join("reports-v1/notified.json").is_file());
    assert!(job("damaged").is_none());
    assert!(job("../../escaped").is_none());
    assert!(!dir.path().join("escaped.json").exists());
}

#[test]
fn a_full_queue_answers_503_and_the_service_keeps_serving() {
    use minehound_testdata::registry::http;
    let dir = tempfile::tempdir().unwrap();
    // A "registry" that accepts connections and never answers: the one
    // worker stays busy with the first job.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = format!("http://{}", silent.local_addr().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scanner = ScannerBuilder::new().build().unwrap();
    let host = runtime.block_on(async {
        let server = ServerBuilder::new(scanner, dir.path().join("state"))
            .workers(1)
            .queue_size(1)
            .start()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(server.serve(listener, std::future::pending()));
        host
    });
    let scan = |n: u32| {
        let body = json!({
            "registry": {"url": registry},
            "artifact": {"repository": "team/app", "digest": format!("sha256:{:064x}", n)},
        });
        http(
            &host,
            "POST",
            "/api/v1/scan",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(scan(1).status, 202, "taken by the worker");
    // Wait until the worker holds job 1, so the queue is empty again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http(&host, "GET", "/metrics", &[], b"")
        .map(|r| String::from_utf8_lossy(&r.body).contains("minehound_running_scans 1"))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the worker never took the job");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(scan(2).status, 202, "waits in the queue");
    let full = scan(3);
    assert_eq!(full.status, 503, "{}", String::from_utf8_lossy(&full.body));
    assert!(full.header("Retry-After").is_some());
    let ready = http(&host, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(ready.status, 503, "not ready while the queue is full");
    assert_eq!(
        http(&host, "GET", "/healthz", &[], b"").unwrap().status,
        200
    );
    drop(silent);
}
