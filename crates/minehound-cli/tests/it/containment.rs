//! A hostile file never takes the scanner down: the test binary carries the
//! fault switch (`minehound_detect::fault`), so files can make any component
//! panic or stall, through the real binary, CLI and service alike.

use std::path::Path;
use std::time::{Duration, Instant};

use minehound_testdata::faults::{
    PANICKING_COMPONENTS, SLOW_RULE, config_panic_image, fault_marker, layer_panic_image,
    one_file_image, panicking_image, panicking_path, stalling_image,
};
use minehound_testdata::hostile::{self, NameRecord};
use minehound_testdata::registry::{generate_tls, push_image};
use minehound_testdata::{
    BuiltImage, Compression, DEMO_DROPPER_PATH, write_docker_archive_classic,
};
use serde_json::Value;

use super::admission::Client;
use super::serve::{Service, base_layer, clean_image, miner_image, plain_registry};
use super::{json_of, minehound};

fn layout_of(dir: &Path, image: &BuiltImage) -> String {
    minehound_testdata::write_oci_layout(dir, &[(image, Some("latest"))]).unwrap();
    format!("oci:{}", dir.display())
}

/// The report lists every panicking file as failed, naming its component,
/// and still holds what the other files of the image hold.
fn assert_contained(case: &str, report: &Value) {
    let skipped = report["skipped"].as_array().unwrap();
    for (component, name) in PANICKING_COMPONENTS {
        let path = panicking_path(component);
        let entry = skipped
            .iter()
            .find(|s| s["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{case}: {path} not listed: {skipped:#?}"));
        assert_eq!(entry["failed"], true, "{case}: {entry}");
        let reason = entry["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(&format!("internal error in the {name}: fault injected")),
            "{case}: {reason}"
        );
        assert!(
            reason.ends_with("the file was not checked"),
            "{case}: {reason}"
        );
    }
    let stats = &report["stats"];
    assert_eq!(stats["files_failed"], PANICKING_COMPONENTS.len(), "{case}");
    assert_eq!(
        stats["files"].as_u64().unwrap(),
        stats["files_scanned"].as_u64().unwrap() + stats["files_skipped"].as_u64().unwrap(),
        "{case}: the accounting adds up"
    );
    // The demo's dropper, in a lower layer, is still found, and the file
    // after the panics in the same layer was checked.
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["path"] == DEMO_DROPPER_PATH),
        "{case}: {findings:#?}"
    );
    assert!(
        !skipped
            .iter()
            .any(|s| s["path"] == "/opt/faults/zz-after.txt"),
        "{case}"
    );
}

/// `minehound scan --no-config --format json ARGS…`, to run.
fn json_scan(args: &[&str]) -> assert_cmd::Command {
    let mut command = minehound();
    command
        .args(["scan", "--no-config", "--format", "json"])
        .args(args);
    command
}

/// Runs `command`, asserts exit code 2 (an incomplete scan or an error).
fn exits_2(command: &mut assert_cmd::Command) -> std::process::Output {
    command.assert().code(2).get_output().clone()
}

#[test]
fn a_panic_in_any_component_fails_only_that_file_and_the_scan_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let image = panicking_image();
    let target = layout_of(&dir.path().join("layout"), &image);
    let cache = dir.path().join("cache");
    // Twice with one cache: a failed layer is never cached as a verdict.
    for run in ["first", "cached"] {
        let output = exits_2(
            json_scan(&["--jobs", "2"])
                .env_remove("MINEHOUND_NO_CACHE")
                .arg("--cache-dir")
                .arg(&cache)
                .arg(&target),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "the scan is incomplete: the scanner failed on {} file(s)",
                PANICKING_COMPONENTS.len()
            )),
            "{run}: {stderr}"
        );
        assert_contained(run, &json_of(&output.stdout));
    }

    // Files spread over idle workers (the faults' layer is the last one
    // read): the report one worker writes, the failed files included.
    let alone = exits_2(json_scan(&["--jobs", "1"]).arg(&target));
    let spread = exits_2(json_scan(&["--jobs", "4"]).arg(&target));
    assert_eq!(
        json_of(&spread.stdout),
        json_of(&alone.stdout),
        "four workers, one worker"
    );

    // A piped archive goes through the spooling workers: the same.
    let mut archive = Vec::new();
    write_docker_archive_classic(&mut archive, &image, &["faults:latest"]).unwrap();
    let output = exits_2(json_scan(&["--jobs", "2", "-"]).write_stdin(archive));
    assert_contained("stdin", &json_of(&output.stdout));

    // SARIF says the run did not succeed, with an error per failed file.
    let output = exits_2(minehound().args(["scan", "--no-config", "--format", "sarif", &target]));
    let sarif = json_of(&output.stdout);
    let invocation = &sarif["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let errors = invocation["toolExecutionNotifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["level"] == "error")
        .count();
    assert_eq!(errors, PANICKING_COMPONENTS.len());

    // The table says it first.
    let output = exits_2(minehound().args(["scan", "--no-config", "--format", "table", &target]));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains(&format!(
            "INCOMPLETE: the scanner failed on {} file(s)",
            PANICKING_COMPONENTS.len()
        )),
        "{table}"
    );
    assert!(table.contains("FAILED layer #"), "{table}");
}

#[test]
fn a_panic_outside_any_file_fails_the_scan_with_its_reason() {
    for (case, image, words) in [
        (
            "layer reader",
            layer_panic_image(),
            "internal error in the layer reader: fault injected into the layer reader",
        ),
        (
            "image config",
            config_panic_image(),
            "internal error in the rules engine while checking the image config: fault injected into the rules engine",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let target = layout_of(dir.path(), &image);
        let output = exits_2(minehound().args(["scan", "--no-config", "--jobs", "2", &target]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(words), "{case}: {stderr}");
    }
}

#[test]
fn a_file_that_keeps_the_rules_busy_stops_at_the_file_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("slow.yar");
    std::fs::write(&rules, SLOW_RULE).unwrap();
    // 256 KiB: the rule would need 2^36 steps, minutes; the limit is 1 s.
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let target = layout_of(
        &dir.path().join("layout"),
        &one_file_image("/srv/data.bin", data),
    );
    let started = Instant::now();
    let output = exits_2(
        json_scan(&["--file-timeout", "1s"])
            .arg("--rules")
            .arg(&rules)
            .arg(&target),
    );
    let took = started.elapsed();
    let report = json_of(&output.stdout);
    let skipped = &report["skipped"][0];
    assert_eq!(skipped["path"], "/srv/data.bin", "{report:#}");
    assert_eq!(skipped["failed"], true);
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("the rules ran past their time limit of 1 s"),
        "{skipped}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// What one admission review of one image answered, and how long it took.
struct Reviewed {
    name: &'static str,
    decision: Value,
    took: Duration,
}

#[test]
fn a_hostile_storm_never_takes_the_service_down() {
    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    let base = base_layer("storm");
    // (repository, image, what its record must end as: `finished` with a
    // verdict, or `failed` with words of its reason).
    let images: Vec<(&'static str, BuiltImage, &'static str, &'static str)> = vec![
        ("normal/miner", miner_image(&base), "finished", "critical"),
        (
            "normal/app-1",
            clean_image(&base, "storm 1"),
            "finished",
            "clean",
        ),
        (
            "normal/app-2",
            clean_image(&base, "storm 2"),
            "finished",
            "clean",
        ),
        (
            "normal/app-3",
            clean_image(&base, "storm 3"),
            "finished",
            "clean",
        ),
        (
            "hostile/panics",
            panicking_image(),
            "failed",
            "the scan is incomplete",
        ),
        (
            "hostile/reader-panics",
            layer_panic_image(),
            "failed",
            "internal error in the layer reader",
        ),
        (
            "hostile/config-panics",
            config_panic_image(),
            "failed",
            "while checking the image config",
        ),
        (
            "hostile/stalls",
            stalling_image(),
            "failed",
            "job time limit",
        ),
        (
            "hostile/long-name",
            hostile::huge_name_record_image(NameRecord::GnuLongName, 300 << 20).unwrap(),
            "failed",
            "exceeds the 1048576-byte limit",
        ),
        (
            "hostile/pax-name",
            hostile::huge_name_record_image(NameRecord::Pax, 300 << 20).unwrap(),
            "failed",
            "exceeds the 1048576-byte limit",
        ),
        (
            "hostile/zeros",
            hostile::zeros_image(Compression::Zstd, 1 << 30).unwrap(),
            "finished",
            "clean",
        ),
        (
            "hostile/many-files",
            hostile::many_files_image(100_000).unwrap(),
            "finished",
            "clean",
        ),
        (
            "hostile/zip-bomb",
            hostile::overlapping_zip_image(10_000, 64 << 20).unwrap(),
            "finished",
            "clean",
        ),
        (
            "hostile/nested",
            hostile::nested_archives_image(50),
            "finished",
            "clean",
        ),
        (
            "hostile/sparse",
            hostile::sparse_image(1000, 1 << 60).unwrap(),
            "finished",
            "clean",
        ),
    ];
    for (repo, image, _, _) in &images {
        push_image(&registry.host, repo, "1", image).unwrap();
    }

    let tls = generate_tls(&dir.path().join("tls")).unwrap();
    let service = Service::start(
        dir.path(),
        &[
            "--tls-cert",
            tls.cert.to_str().unwrap(),
            "--tls-key",
            tls.key.to_str().unwrap(),
            "--admission-budget",
            "3s",
            "--job-timeout",
            // Under the stalling file's 35 s, and ten times what the
            // slowest hostile image needs here alone.
            "30s",
            "--workers",
            "4",
            "--memory-budget",
            "128MiB",
        ],
        // Even so, a contained panic costs no backtrace (see the peak below).
        &[("RUST_BACKTRACE", "1")],
    );
    let client = Client {
        host: service.host.clone(),
        ca: tls.ca_cert.clone(),
    };

    // Health is polled throughout; every image is reviewed at once, as a
    // burst of pods would be.
    let storm_over = std::sync::atomic::AtomicBool::new(false);
    let (health, reviews) = std::thread::scope(|scope| {
        let health = scope.spawn(|| {
            let mut slowest = Duration::ZERO;
            let mut polls = 0;
            while !storm_over.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = client.call("GET", "/healthz", b"");
                assert_eq!(answer.status, 200, "{}", answer.text);
                slowest = slowest.max(answer.took);
                polls += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (polls, slowest)
        });
        let reviews: Vec<_> = images
            .iter()
            .map(|(repo, _, _, _)| {
                let reference = format!("{}/{repo}:1", registry.host);
                let client = &client;
                scope.spawn(move || {
                    let answer = client.review("pod-image", &[("{{IMAGE}}", &reference)]);
                    Reviewed {
                        name: repo,
                        decision: answer.body["response"]["allowed"].clone(),
                        took: answer.took,
                    }
                })
            })
            .collect();
        let reviews: Vec<Reviewed> = reviews.into_iter().map(|r| r.join().unwrap()).collect();
        // Every job ends: finished, or failed with its reason.
        for (_, image, _, _) in &images {
            wait_for_end(&client, &image.manifest.digest);
        }
        storm_over.store(true, std::sync::atomic::Ordering::Relaxed);
        (health.join().unwrap(), reviews)
    });

    // Counted before the checks below review the failed images again.
    let metrics = client.call("GET", "/metrics", b"").text;
    // The whole table first, with when each record last changed, so a
    // failure below shows which image ended when.
    let records: Vec<Value> = images
        .iter()
        .map(|(_, image, _, _)| record_of(&client, &image.manifest.digest))
        .collect();
    eprintln!("storm | image | first review | took | ended | final");
    for ((repo, _, _, _), (review, record)) in images.iter().zip(reviews.iter().zip(&records)) {
        eprintln!(
            "storm | {repo} | allowed {} | {:.2} s | {} | {} {}",
            review.decision,
            review.took.as_secs_f64(),
            record["updated_at"],
            record["status"],
            if record["status"] == "failed" {
                record["error"].clone()
            } else {
                record["verdict"]["verdict"].clone()
            }
        );
    }
    assert!(
        metrics.contains(&format!(
            "minehound_scanner_failures_total{{cause=\"file\"}} {}",
            PANICKING_COMPONENTS.len()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("minehound_scanner_failures_total{cause=\"deadline\"} 1"),
        "{metrics}"
    );
    // The layer reader's and the config check's panics.
    assert!(
        metrics.contains("minehound_scanner_failures_total{cause=\"engine\"} 2"),
        "{metrics}"
    );
    // The service still takes work after the storm, the stalled file still
    // holding its thread: a fresh image is judged within the budget (before
    // the reviews below queue the failed images' scans again).
    let after = clean_image(&base, "after the storm");
    push_image(&registry.host, "normal/after", "1", &after).unwrap();
    let answer = client.review(
        "pod-image",
        &[("{{IMAGE}}", &format!("{}/normal/after:1", registry.host))],
    );
    assert_eq!(answer.body["response"]["allowed"], true, "{}", answer.text);
    for ((repo, _, status, what), (review, record)) in
        images.iter().zip(reviews.iter().zip(&records))
    {
        assert_eq!(*repo, review.name);
        // Within the budget (3 s) and the time a curl needs.
        assert!(
            review.took < Duration::from_secs(6),
            "{repo}: {:?}",
            review.took
        );
        assert_eq!(record["status"], *status, "{repo}: {record:#}");
        if *status == "failed" {
            let error = record["error"].as_str().unwrap();
            assert!(error.contains(what), "{repo}: {error}");
            // A failed scan never passes admission.
            let again = client.review(
                "pod-image",
                &[("{{IMAGE}}", &format!("{}/{repo}:1", registry.host))],
            );
            assert_eq!(
                again.body["response"]["allowed"], false,
                "{repo}: {}",
                again.text
            );
        } else {
            assert_eq!(record["verdict"]["verdict"], *what, "{repo}: {record:#}");
        }
    }
    let (polls, slowest) = health;
    eprintln!("storm | /healthz polled {polls} times, slowest {slowest:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "slowest /healthz {slowest:?}"
    );
    let peak = peak_rss_mib(service.pid());
    eprintln!("storm | service peak RSS {peak} MiB");
    // The file buffers' budget plus what the process needs besides them
    // (rules, threads, the runtime, read-ahead): 128 MiB stated.
    assert!(peak < 128 + 128, "peak RSS {peak} MiB");
    // A pod whose command makes the launch check panic is denied, saying so.
    let mut review: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission/pod-image.json"),
        )
        .unwrap()
        .replace("{{IMAGE}}", &format!("{}/normal/after:1", registry.host)),
    )
    .unwrap();
    let marker = String::from_utf8(fault_marker("panic", "rules-engine")).unwrap();
    review["request"]["object"]["spec"]["containers"][0]["command"] =
        serde_json::json!(["sh", "-c", marker]);
    let answer = client.call(
        "POST",
        "/k8s/admission?timeout=10s",
        review.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let response = &answer.body["response"];
    assert_eq!(response["allowed"], false, "{}", answer.text);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("internal error in the rules engine"),
        "{}",
        answer.text
    );
}

/// The service's record of an image over HTTPS.
fn record_of(client: &Client, digest: &str) -> Value {
    let answer = client.call("GET", &format!("/api/v1/images/{digest}"), b"");
    assert_eq!(answer.status, 200, "{digest}: {}", answer.text);
    answer.body
}

/// Waits until the image's latest job has ended.
fn wait_for_end(client: &Client, digest: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let answer = client.call("GET", &format!("/api/v1/images/{digest}"), b"");
        if answer.status == 200
            && matches!(answer.body["status"].as_str(), Some("finished" | "failed"))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{digest} never ended: {}",
            answer.text
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The peak resident memory of process `pid` so far, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("Linux reports VmHWM");
    line.trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .unwrap()
        / 1024
}
