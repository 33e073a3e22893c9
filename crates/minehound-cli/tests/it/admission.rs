//! `minehound serve` as a Kubernetes admission webhook: the real binary over
//! HTTPS (a CA made at test time), called exactly as the API server calls a
//! webhook (POST, `?timeout=10s`, `Content-Type: application/json`, recorded
//! `AdmissionReview` and `ImageReview` bodies), judging images that sit in a
//! real Distribution registry.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minehound_testdata::registry::{Fault, FaultProxy, generate_tls, push_image};
use minehound_testdata::{Entry, ImageSpec, Layer};
use serde_json::Value;

use super::serve::{Service, base_layer, clean_image, has_metric, miner_image, plain_registry};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/admission");

/// An HTTPS client as the API server is one: the service's CA, JSON bodies.
pub(super) struct Client {
    pub(super) host: String,
    pub(super) ca: PathBuf,
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) text: String,
    pub(super) took: Duration,
}

impl Client {
    pub(super) fn call(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        let started = Instant::now();
        let mut child = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-X", method, "--cacert"])
            .arg(&self.ca)
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
            ])
            .args(["-o", "-", "-w", "\n%{http_code}"])
            .arg(format!("https://{}{path}", self.host))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl runs");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        Answer {
            status: status.trim().parse().unwrap(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
            text: body.to_string(),
            took,
        }
    }

    /// Sends a recorded review with its placeholders filled in.
    pub(super) fn review(&self, fixture: &str, images: &[(&str, &str)]) -> Answer {
        let mut text = std::fs::read_to_string(Path::new(FIXTURES).join(format!("{fixture}.json")))
            .expect("the fixture exists");
        for (placeholder, image) in images {
            text = text.replace(placeholder, image);
        }
        let endpoint = if fixture.starts_with("imagereview") {
            "/k8s/imagereview"
        } else {
            "/k8s/admission"
        };
        let answer = self.call("POST", &format!("{endpoint}?timeout=10s"), text.as_bytes());
        assert_eq!(answer.status, 200, "{fixture}: {}", answer.text);
        if endpoint == "/k8s/admission" {
            let sent: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer.body["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(answer.body["kind"], "AdmissionReview");
            assert_eq!(
                answer.body["response"]["uid"], sent["request"]["uid"],
                "{fixture}: the uid is echoed"
            );
        }
        answer
    }
}

/// The response of an AdmissionReview answer, checked to deny with 403;
/// returns the message.
fn denied(answer: &Answer) -> String {
    let response = &answer.body["response"];
    assert_eq!(response["allowed"], false, "{}", answer.text);
    assert_eq!(response["status"]["code"], 403, "{}", answer.text);
    assert_eq!(response["status"]["reason"], "Forbidden");
    assert_eq!(response["auditAnnotations"]["decision"], "denied");
    response["status"]["message"].as_str().unwrap().to_string()
}

fn allowed(answer: &Answer) -> &Value {
    let response = &answer.body["response"];
    assert_eq!(response["allowed"], true, "{}", answer.text);
    assert_eq!(response["auditAnnotations"]["decision"], "allowed");
    response
}

fn assert_has(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

#[test]
fn admission_reviews_judge_pods_and_workloads_by_image_and_launch() {
    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    let base = base_layer("admission");
    let miner = miner_image(&base);
    let (clean, fresh) = (
        clean_image(&base, "admission clean"),
        clean_image(&base, "admission fresh"),
    );
    // 12 KB that do not compress: about 13 s through the trickling proxy,
    // past the budget, yet never stalled (16 KiB per 30 s is the floor).
    let mut noise = Vec::with_capacity(12_000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..12_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push((x >> 24) as u8);
    }
    let slow = ImageSpec {
        layers: vec![
            base.clone(),
            Layer::gzip("COPY data /srv/", vec![Entry::file("/srv/data.bin", noise)]),
        ],
        ..ImageSpec::default()
    }
    .build();
    // A script that hides a program in /dev/shm: low, under the gate.
    let warned = ImageSpec {
        layers: vec![
            base.clone(),
            Layer::gzip(
                "COPY start.sh /srv/",
                vec![Entry::executable(
                    "/srv/start.sh",
                    b"#!/bin/sh\ncp /srv/agent /dev/shm/agent\nchmod +x /dev/shm/agent\nnohup /dev/shm/agent &\n".to_vec(),
                )],
            ),
        ],
        ..ImageSpec::default()
    }
    .build();
    for (repo, image) in [
        ("team/warned", &warned),
        ("team/miner", &miner),
        ("team/app", &clean),
        ("team/fresh", &fresh),
        ("team/slow", &slow),
    ] {
        push_image(&registry.host, repo, "1", image).unwrap();
    }
    // Blobs one byte per millisecond: a scan that outlasts the budget.
    let trickle = FaultProxy::with_fault(
        &registry.host,
        Fault::Trickle {
            interval: Duration::from_millis(1),
        },
    )
    .unwrap();
    // A registry host that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();

    let tls = generate_tls(&dir.path().join("tls")).unwrap();
    let (cert, key) = (dir.path().join("served.pem"), dir.path().join("served.key"));
    std::fs::copy(&tls.cert, &cert).unwrap();
    std::fs::copy(&tls.key, &key).unwrap();
    let budget = 5.0;
    let service = Service::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--admission-budget",
            "5s",
            "--admission-exempt-namespace",
            "minehound",
        ],
        &[],
    );
    let client = Client {
        host: service.host.clone(),
        ca: tls.ca_cert.clone(),
    };
    let miner_ref = format!("{}/team/miner:1", registry.host);
    let clean_ref = format!("{}/team/app:1", registry.host);
    let images = [
        ("{{MINER}}", miner_ref.as_str()),
        ("{{CLEAN}}", clean_ref.as_str()),
    ];

    // An image never scanned is scanned within the budget: a small clean
    // image is judged on the first review.
    let answer = client.review("pod-clean", &images);
    let response = allowed(&answer);
    assert_has(
        response["auditAnnotations"]["images"].as_str().unwrap(),
        &[&format!(
            "{}/team/app@{}=clean",
            registry.host, clean.manifest.digest
        )],
    );
    assert!(response.get("warnings").is_none(), "{}", answer.text);

    // The miner image, first seen on a Pod: scanned, then denied, naming the
    // image, its digest, the file, the rule and the layer. The verdict is
    // waited for if the first scan takes longer than the budget.
    let first = client.review("pod-miner", &images);
    if first.body["response"]["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("no verdict yet"))
    {
        wait_for_verdict(&client, &miner.manifest.digest);
    }
    let message = denied(&client.review("pod-miner", &images));
    assert_has(
        &message,
        &[
            "container \"trainer\"",
            &miner_ref,
            &miner.manifest.digest,
            "critical MH-",
            "/usr/local/bin/xmrig",
            "in layer 1 (sha256:",
        ],
    );

    // Every kind that carries a pod template: the error reaches whoever
    // applied the workload. A known verdict answers fast.
    let mut table = Vec::new();
    for (fixture, container) in [
        ("deployment-miner", "container \"trainer\""),
        ("replicaset-miner", "container \"trainer\""),
        ("statefulset-miner", "container \"trainer\""),
        ("daemonset-miner", "container \"trainer\""),
        ("job-miner", "container \"benchmark\""),
        ("cronjob-miner", "container \"nightly\""),
        ("replicationcontroller-miner", "container \"legacy\""),
        ("notebook-miner", "container \"my-notebook\""),
        (
            "pod-ephemeral-miner",
            "ephemeral container \"debugger-x7k2p\"",
        ),
    ] {
        let answer = client.review(fixture, &images);
        let message = denied(&answer);
        assert_has(
            &message,
            &[container, &miner.manifest.digest, "/usr/local/bin/xmrig"],
        );
        assert!(
            answer.took < Duration::from_secs(3),
            "{fixture}: a known verdict took {:?}",
            answer.took
        );
        table.push(format!("{fixture}: denied in {:?}: {message}", answer.took));
    }

    // The attack's shape: a clean image launched as a miner.
    let message = denied(&client.review("pod-launched-as-miner", &images));
    assert_has(
        &message,
        &["container \"worker\" command", "MH-LAUNCH-MINER"],
    );
    assert!(!message.contains("carries a miner"), "{message}");

    // Findings under the gate admit, with a warning that names them.
    let warned_ref = format!("{}/team/warned:1", registry.host);
    let mut answer = client.review("pod-image", &[("{{IMAGE}}", warned_ref.as_str())]);
    if answer.text.contains("no verdict yet") {
        wait_for_verdict(&client, &warned.manifest.digest);
        answer = client.review("pod-image", &[("{{IMAGE}}", warned_ref.as_str())]);
    }
    let warnings: Vec<&str> = allowed(&answer)["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let warnings = warnings.join("\n");
    assert_has(
        &warnings,
        &[
            "container \"app\"",
            "low MH-HIDING-PLACE /srv/start.sh",
            &warned.manifest.digest,
        ],
    );
    table.push(format!(
        "pod-image (low finding): allowed, warnings {warnings}"
    ));

    // An update is judged for what it changes: a scale-down passes.
    let answer = client.review("deployment-scale-down", &images);
    let response = allowed(&answer);
    assert!(
        response["auditAnnotations"].get("images").is_none(),
        "{}",
        answer.text
    );

    // Exempt namespaces pass unjudged.
    let response = allowed(&client.review("pod-kube-system", &images)).clone();
    assert_has(
        response["auditAnnotations"]["exemptions"].as_str().unwrap(),
        &["namespace kube-system is exempt"],
    );

    // A dry run is answered but queues nothing.
    let fresh_ref = format!("{}/team/fresh:1", registry.host);
    let message = denied(&client.review("pod-dry-run", &[("{{FRESH}}", fresh_ref.as_str())]));
    assert_has(
        &message,
        &["dry run queues no scan", &fresh.manifest.digest],
    );
    let record = client.call(
        "GET",
        &format!("/api/v1/images/{}", fresh.manifest.digest),
        b"",
    );
    assert_eq!(
        record.status, 404,
        "a dry run queued a scan: {}",
        record.text
    );

    // A scan that outlasts the budget: denied as pending within the budget,
    // allowed on a retry once the verdict is in.
    let slow_ref = format!("{}/team/slow:1", trickle.host);
    let answer = client.review("pod-image", &[("{{IMAGE}}", slow_ref.as_str())]);
    assert_has(
        &denied(&answer),
        &["has no verdict yet", "try again shortly"],
    );
    assert!(
        answer.took.as_secs_f64() < budget + 1.5,
        "pending answered in {:?}",
        answer.took
    );
    wait_for_verdict(&client, &slow.manifest.digest);
    allowed(&client.review("pod-image", &[("{{IMAGE}}", slow_ref.as_str())]));

    // A registry that never answers: the unresolved policy, within the budget.
    let silent_ref = format!("{silent_host}/team/app:1");
    let answer = client.review("pod-image", &[("{{IMAGE}}", silent_ref.as_str())]);
    assert_has(&denied(&answer), &["cannot be judged", &silent_ref]);
    assert!(
        answer.took.as_secs_f64() < budget + 1.5,
        "unresolved answered in {:?}",
        answer.took
    );
    // No registry at all.
    let refused = "127.0.0.1:9/team/app:1";
    assert_has(
        &denied(&client.review("pod-image", &[("{{IMAGE}}", refused)])),
        &["cannot be judged", "cannot resolve it to a digest"],
    );

    // ImagePolicyWebhook: the same verdicts, as ImageReview answers; a
    // digest-pinned reference needs no look-up.
    let answer = client.review("imagereview-miner", &images);
    assert_eq!(answer.body["apiVersion"], "imagepolicy.k8s.io/v1alpha1");
    assert_eq!(answer.body["status"]["allowed"], false, "{}", answer.text);
    assert_has(
        answer.body["status"]["reason"].as_str().unwrap(),
        &["/usr/local/bin/xmrig", &miner.manifest.digest],
    );
    let pinned = format!("{}/team/app@{}", registry.host, clean.manifest.digest);
    let answer = client.review("imagereview-clean", &[("{{CLEAN}}", pinned.as_str())]);
    assert_eq!(answer.body["status"]["allowed"], true, "{}", answer.text);

    // Malformed bodies: 400, never a crash.
    for body in [
        &b"{not json"[..],
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","userInfo":{}}}"#,
    ] {
        let answer = client.call("POST", "/k8s/admission?timeout=10s", body);
        assert_eq!(answer.status, 400, "{}", answer.text);
    }
    let answer = client.call("POST", "/k8s/imagereview", br#"{"kind":"Pod"}"#);
    assert_eq!(answer.status, 400, "{}", answer.text);

    let metrics = client.call("GET", "/metrics", b"").text;
    has_metric(
        &metrics,
        "minehound_admission_reviews_total{endpoint=\"admission\",decision=\"denied\"}",
    );
    has_metric(
        &metrics,
        "minehound_admission_reviews_total{endpoint=\"admission\",decision=\"malformed\"} 3",
    );
    // The miner and the image with a low finding.
    has_metric(
        &metrics,
        "minehound_scans_total{origin=\"admission\",outcome=\"findings\"} 2",
    );

    // cert-manager rotates the certificate: the new one is served without a
    // restart.
    let rotated = generate_tls(&dir.path().join("tls2")).unwrap();
    for (from, to) in [(&rotated.cert, &cert), (&rotated.key, &key)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    let renewed = Client {
        host: service.host.clone(),
        ca: rotated.ca_cert.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--cacert"])
            .arg(&renewed.ca)
            .arg(format!("https://{}/healthz", renewed.host))
            .status()
            .unwrap()
            .success();
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate is never served"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    allowed(&renewed.review("pod-clean", &images));
    eprintln!("{}", table.join("\n"));
}

/// Polls the service's verdict API until `digest`'s scan has ended.
fn wait_for_verdict(client: &Client, digest: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = client.call("GET", &format!("/api/v1/images/{digest}"), b"");
        if r.status == 200 && r.body["status"] == "finished" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict for {digest}: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
