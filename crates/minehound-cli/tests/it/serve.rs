//! `minehound serve` as an operator runs it: the real binary, real registry
//! processes (the test harness's Distribution), Harbor's API driven the way
//! Harbor drives it, and Distribution's own notifications.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use minehound_testdata::registry::{
    Auth, RegistryProcess, Response, TokenIssuer, base64, htpasswd_file, http, push_image,
};
use minehound_testdata::{BuiltImage, Entry, ImageSpec, Layer, demo_image, samples};
use serde_json::{Value, json};

pub(super) const REPORT_V11: &str = "application/vnd.security.vulnerability.report; version=1.1";
const REPORT_V10: &str = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0";
const REPORT_RAW: &str = "application/vnd.scanner.adapter.vuln.report.raw";
const ERROR_TYPE: &str = "application/vnd.scanner.adapter.error+json; version=1.0";
const SCAN_REQUEST: &str = "application/vnd.scanner.adapter.scan.request+json; version=1.1";

/// A running `minehound serve`; stopped when dropped.
pub(super) struct Service {
    child: Child,
    pub(super) host: String,
    log: Arc<Mutex<String>>,
}

impl Service {
    /// Starts the service on a free port with its state and cache in `dir`.
    pub(super) fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("minehound"));
        command
            .args(["serve", "--no-config", "--listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--refresh-after", "1s"])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(args)
            .env_remove("MINEHOUND_API_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start minehound serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let thread_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["fields"]["message"] == "minehound serving"
                {
                    let _ = tx.send(event["fields"]["address"].as_str().unwrap().to_string());
                }
                let mut log = thread_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the service did not start: {}", log.lock().unwrap()));
        Service { child, host, log }
    }

    pub(super) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http(&self.host, method, path, headers, body).expect("the service answers")
    }

    pub(super) fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, b"")
    }

    /// `POST /api/v1/scan` with this body, as Harbor's media type.
    fn post_scan(&self, body: &[u8]) -> Response {
        self.request(
            "POST",
            "/api/v1/scan",
            &[("Content-Type", SCAN_REQUEST)],
            body,
        )
    }

    /// `POST /api/v1/scan` as Harbor sends it; returns the job id.
    pub(super) fn scan(
        &self,
        registry: &str,
        authorization: Option<&str>,
        repository: &str,
        digest: &str,
    ) -> String {
        let mut body = json!({
            "registry": {"url": registry},
            "artifact": {"repository": repository, "digest": digest, "tag": "1",
                         "mime_type": "application/vnd.oci.image.manifest.v1+json"},
        });
        if let Some(a) = authorization {
            body["registry"]["authorization"] = a.into();
        }
        let r = self.post_scan(body.to_string().as_bytes());
        assert_eq!(r.status, 202, "{}", text(&r));
        json_of(&r)["id"].as_str().unwrap().to_string()
    }

    /// Polls a report the way Harbor does: while 302, wait `Refresh-After`.
    pub(super) fn report(&self, id: &str, accept: &str) -> Response {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let r = self.get(&format!("/api/v1/scan/{id}/report"), &[("Accept", accept)]);
            if r.status != 302 {
                return r;
            }
            let after: u64 = r
                .header("Refresh-After")
                .expect("a pending report says when to come back")
                .parse()
                .expect("Refresh-After is whole seconds");
            assert!(after >= 1);
            assert!(Instant::now() < deadline, "scan {id} never finished");
            std::thread::sleep(Duration::from_secs(after));
        }
    }

    /// Polls an image's verdict until its latest scan has finished.
    pub(super) fn verdict(&self, digest: &str, headers: &[(&str, &str)]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let r = self.get(&format!("/api/v1/images/{digest}"), headers);
            if r.status == 200 && json_of(&r)["status"] == "finished" {
                return json_of(&r);
            }
            assert!(r.status == 200 || r.status == 404, "{}", text(&r));
            assert!(
                Instant::now() < deadline,
                "no verdict for {digest}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the service with SIGTERM, as an orchestrator does.
    pub(super) fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "SIGTERM is a clean stop: {status}");
    }

    /// Waits for the process to end (after a signal the test sent).
    pub(super) fn wait_exit(&mut self) {
        let _ = self.child.wait();
    }

    /// The service's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that the metrics text holds `line` (a metric and its labels, and
/// possibly its value).
pub(super) fn has_metric(metrics: &str, line: &str) {
    assert!(metrics.contains(line), "no {line} in:\n{metrics}");
}

pub(super) fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

pub(super) fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("HTTP {} body is not JSON ({e}): {}", r.status, text(r)))
}

/// Checks `body` against schema `name` of the service's own OpenAPI description.
fn conforms(openapi: &Value, name: &str, body: &Value) {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": openapi["components"],
    });
    let validator = jsonschema::validator_for(&schema).expect("the OpenAPI schemas compile");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{body:#}");
}

fn assert_error(r: &Response, status: u16) -> String {
    assert_eq!(r.status, status, "{}", text(r));
    assert_eq!(r.header("Content-Type"), Some(ERROR_TYPE));
    let message = json_of(r)["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.is_empty());
    message
}

/// An image with XMRig (fetched from PyPI at a pinned version and checked)
/// over a base layer, and the path it sits at.
pub(super) fn miner_image(base: &Layer) -> BuiltImage {
    let xmrig = samples::xmrig().expect("fetch XMRig 6.23.0 from PyPI (db4e==0.20.0)");
    ImageSpec {
        layers: vec![
            base.clone(),
            Layer::gzip(
                "COPY xmrig /usr/local/bin/",
                vec![Entry::executable("/usr/local/bin/xmrig", xmrig)],
            ),
        ],
        ..ImageSpec::default()
    }
    .build()
}

pub(super) fn base_layer(tag: &str) -> Layer {
    Layer::gzip(
        "ADD rootfs /",
        vec![
            Entry::file(
                "/etc/os-release",
                format!("ID=test\nVERSION={tag}\n").into_bytes(),
            ),
            Entry::executable("/bin/true", minehound_testdata::tiny_elf(b"base tools")),
        ],
    )
}

pub(super) fn clean_image(base: &Layer, marker: &str) -> BuiltImage {
    ImageSpec {
        layers: vec![
            base.clone(),
            Layer::gzip(
                "COPY app /srv/",
                vec![Entry::file("/srv/app.txt", marker.as_bytes().to_vec())],
            ),
        ],
        ..ImageSpec::default()
    }
    .build()
}

/// An anonymous plain-HTTP registry with its storage in `dir`.
pub(super) fn plain_registry(dir: &Path) -> RegistryProcess {
    RegistryProcess::start(&dir.join("work"), &dir.join("storage"), None, &Auth::None).unwrap()
}

/// Pushes `images` (repository, image) through an anonymous registry over
/// `storage`, then stops it: the registries under test serve that storage.
fn seed_storage(dir: &Path, storage: &Path, images: &[(&str, &BuiltImage)]) {
    let seeder = RegistryProcess::start(&dir.join("seed"), storage, None, &Auth::None).unwrap();
    for (repo, image) in images {
        push_image(&seeder.host, repo, "1", image).unwrap();
    }
}

#[test]
fn harbor_drives_scans_with_basic_and_bearer_authorization_on_files() {
    harbor_drives_scans_with_basic_and_bearer_authorization_on(&[]);
}

#[test]
fn harbor_drives_scans_with_basic_and_bearer_authorization_on_the_database() {
    let url = super::replicas::database("harbor_drives_scans_with_basic_and_beare");
    harbor_drives_scans_with_basic_and_bearer_authorization_on(&["--database", &url]);
}

fn harbor_drives_scans_with_basic_and_bearer_authorization_on(store: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let base = base_layer("harbor");
    let (miner, clean) = (miner_image(&base), clean_image(&base, "harbor"));
    let storage = dir.path().join("storage");
    seed_storage(
        dir.path(),
        &storage,
        &[("team/miner", &miner), ("team/clean", &clean)],
    );
    // One registry with robot-account passwords (Basic), one behind a token
    // service (Harbor hands scanners a pull token: Bearer).
    let password = "r0bot-s3cret-pass";
    let htpasswd = htpasswd_file(dir.path(), "robot", password).unwrap();
    let basic = RegistryProcess::start(
        &dir.path().join("basic"),
        &storage,
        None,
        &Auth::Htpasswd(htpasswd),
    )
    .unwrap();
    let issuer = TokenIssuer::start(&dir.path().join("issuer"), "robot", password).unwrap();
    let tokened = RegistryProcess::start(
        &dir.path().join("tokened"),
        &storage,
        None,
        &Auth::Token(issuer.config.clone()),
    )
    .unwrap();
    // The service has credentials of its own for that registry (for
    // notified pulls); they must never serve a Harbor request.
    let service = Service::start(
        dir.path(),
        &[store, &["--fail-on", "high", "--username", "robot"]].concat(),
        &[("MINEHOUND_PASSWORD", password)],
    );
    let openapi = json_of(&service.get("/api/openapi.json", &[]));

    // Harbor registers the scanner by its metadata.
    let r = service.get(
        "/api/v1/metadata",
        &[(
            "Accept",
            "application/vnd.scanner.adapter.metadata+json; version=1.0",
        )],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.scanner.adapter.metadata+json; version=1.0")
    );
    let metadata = json_of(&r);
    conforms(&openapi, "ScannerAdapterMetadata", &metadata);
    assert_eq!(
        metadata["properties"]["harbor.scanner-adapter/registry-authorization-type"],
        "Bearer"
    );
    let produces = metadata["capabilities"][0]["produces_mime_types"].to_string();
    assert!(
        produces.contains(REPORT_V11) && produces.contains(REPORT_RAW),
        "{produces}"
    );

    let basic_auth = format!(
        "Basic {}",
        base64(format!("robot:{password}").as_bytes(), false)
    );
    let basic_url = format!("http://{}", basic.host);
    let miner_digest = miner.manifest.digest.clone();

    // Basic: the miner image is critical in Harbor's report, item by item.
    let id = service.scan(&basic_url, Some(&basic_auth), "team/miner", &miner_digest);
    let r = service.report(&id, REPORT_V11);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.header("Content-Type"), Some(REPORT_V11));
    let report = json_of(&r);
    conforms(&openapi, "HarborVulnerabilityReport", &report);
    assert_eq!(report["severity"], "Critical");
    assert_eq!(report["artifact"]["digest"], miner_digest.as_str());
    assert_eq!(report["scanner"]["name"], "minehound");
    let items = report["vulnerabilities"].as_array().unwrap();
    let xmrig_items: Vec<&Value> = items
        .iter()
        .filter(|i| i["package"] == "/usr/local/bin/xmrig" && i["severity"] == "Critical")
        .collect();
    assert!(!xmrig_items.is_empty(), "{report:#}");
    let miner_layer = &miner.layers[1].digest;
    for item in &xmrig_items {
        // The rule id is what Harbor's allowlist matches; the layer is the version.
        assert!(item["id"].as_str().unwrap().starts_with("MH-"), "{item}");
        assert_eq!(item["id"], item["vendor_attributes"]["rule"]);
        assert_eq!(item["version"], miner_layer.as_str());
        assert_eq!(item["vendor_attributes"]["status"], "present");
        assert_eq!(
            item["vendor_attributes"]["sha256"].as_str().unwrap().len(),
            64
        );
    }
    // The same report in the 1.0 media type, and the raw minehound JSON.
    let r = service.report(&id, REPORT_V10);
    assert_eq!(r.header("Content-Type"), Some(REPORT_V10));
    assert_eq!(json_of(&r)["vulnerabilities"], report["vulnerabilities"]);
    let r = service.report(&id, REPORT_RAW);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(REPORT_RAW));
    let raw = json_of(&r);
    conforms(&openapi, "MinehoundReport", &raw);
    assert_eq!(raw["findings"].as_array().unwrap().len(), items.len());
    assert!(raw["target"].as_str().unwrap().contains(&miner_digest));

    // Bearer: a pull token from the registry's token service, as Harbor issues.
    let (realm_host, realm_path) = issuer
        .config
        .realm
        .trim_start_matches("http://")
        .split_once('/')
        .unwrap();
    let token_response = http(
        realm_host,
        "GET",
        &format!(
            "/{realm_path}?service={}&scope=repository:team/miner:pull",
            issuer.config.service
        ),
        &[("Authorization", &basic_auth)],
        b"",
    )
    .unwrap();
    let token = json_of(&token_response)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let id = service.scan(
        &format!("http://{}", tokened.host),
        Some(&format!("Bearer {token}")),
        "team/miner",
        &miner_digest,
    );
    let report = json_of(&service.report(&id, REPORT_V11));
    assert_eq!(report["severity"], "Critical", "{report:#}");
    assert_eq!(
        report["vulnerabilities"].as_array().unwrap().len(),
        items.len()
    );

    // A clean image, requested with the 1.0 media type older Harbors send: no items.
    let body = json!({
        "registry": {"url": basic_url, "authorization": basic_auth},
        "artifact": {"repository": "team/clean", "digest": clean.manifest.digest},
    });
    let r = service.request(
        "POST",
        "/api/v1/scan",
        &[(
            "Content-Type",
            "application/vnd.scanner.adapter.scan.request+json; version=1.0",
        )],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    let id = json_of(&r)["id"].as_str().unwrap().to_string();
    let report = json_of(&service.report(&id, REPORT_V11));
    conforms(&openapi, "HarborVulnerabilityReport", &report);
    assert_eq!(report["vulnerabilities"], json!([]));
    assert_eq!(report["severity"], "Unknown");

    // Bad requests get the spec's error answers, and the service keeps serving.
    assert_error(&service.get("/api/v1/scan/no-such-id/report", &[]), 404);
    let malformed = service.post_scan(b"{\"registry\": ");
    assert_error(&malformed, 400);
    let missing = service.post_scan(b"{\"registry\": {\"url\": \"http://x\"}}");
    assert_error(&missing, 422);
    let bad_digest = json!({"registry": {"url": basic_url}, "artifact": {"repository": "team/miner", "digest": "latest"}});
    assert_error(&service.post_scan(bad_digest.to_string().as_bytes()), 422);
    let bad_auth = json!({"registry": {"url": basic_url, "authorization": "Digest x"}, "artifact": {"repository": "team/miner", "digest": miner_digest}});
    assert_error(&service.post_scan(bad_auth.to_string().as_bytes()), 422);
    // Wrong credentials and an unreachable registry: the scan fails, and the
    // report says why with a 500, which Harbor shows as the scan's error.
    let wrong = format!("Basic {}", base64(b"robot:wrong-password", false));
    let id = service.scan(&basic_url, Some(&wrong), "team/miner", &miner_digest);
    let message = assert_error(&service.report(&id, REPORT_V11), 500);
    assert!(message.to_lowercase().contains("authoriz"), "{message}");
    let id = service.scan(&basic_url, None, "team/miner", &miner_digest);
    let message = assert_error(&service.report(&id, REPORT_V11), 500);
    assert!(message.to_lowercase().contains("authoriz"), "{message}");
    let id = service.scan("http://127.0.0.1:1", None, "team/miner", &miner_digest);
    let message = assert_error(&service.report(&id, REPORT_V11), 500);
    assert!(message.contains("127.0.0.1:1"), "{message}");
    let r = service.get("/api/v1/metadata", &[]);
    assert_eq!(r.status, 200, "the service still serves");

    // Metrics count what happened.
    let metrics = text(&service.get("/metrics", &[]));
    has_metric(
        &metrics,
        "minehound_scans_total{origin=\"harbor\",outcome=\"findings\"} 2",
    );
    has_metric(
        &metrics,
        "minehound_scans_total{origin=\"harbor\",outcome=\"clean\"} 1",
    );
    has_metric(
        &metrics,
        "minehound_scans_total{origin=\"harbor\",outcome=\"failed\"} 3",
    );
    has_metric(&metrics, "minehound_findings_total{severity=\"critical\"}");
    // The second scan of the miner image came from the layer cache.
    has_metric(&metrics, "minehound_layers_total{result=\"cached\"}");

    // Registry credentials appear nowhere: not in logs, not in the state.
    let log = service.log();
    // What the service stored: files, or the database's rows.
    let stored = match store {
        ["--database", url] => vec![(url.to_string(), super::replicas::database_text(url))],
        _ => files_under(&dir.path().join("state"))
            .into_iter()
            .map(|file| {
                let bytes = std::fs::read(&file).unwrap();
                let text = String::from_utf8_lossy(&bytes).into_owned();
                (file.display().to_string(), text)
            })
            .collect(),
    };
    assert!(!stored.is_empty());
    for secret in [password, basic_auth.as_str(), token.as_str()] {
        let secret_tail = &secret[secret.len().saturating_sub(20)..];
        assert!(!log.contains(secret_tail), "a credential reached the log");
        for (place, text) in &stored {
            assert!(!text.contains(secret_tail), "a credential reached {place}");
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn registry_push_notifications_lead_to_verdicts_that_survive_a_restart_on_files() {
    registry_push_notifications_lead_to_verdicts_that_survive_a_restart_on(&[]);
}

#[test]
fn registry_push_notifications_lead_to_verdicts_that_survive_a_restart_on_the_database() {
    let url = super::replicas::database("registry_push_notifications_lead_to_verd");
    registry_push_notifications_lead_to_verdicts_that_survive_a_restart_on(&["--database", &url]);
}

fn registry_push_notifications_lead_to_verdicts_that_survive_a_restart_on(store: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let token = "n0tify-t0ken";
    let mut service = Service::start(dir.path(), store, &[("MINEHOUND_API_TOKEN", token)]);
    let bearer = format!("Bearer {token}");
    // The registry, as an operator configures it: notifications to the service.
    let registry = RegistryProcess::start_notifying(
        &dir.path().join("registry"),
        &dir.path().join("storage"),
        &Auth::None,
        &format!("http://{}/api/v1/notifications", service.host),
        &[("Authorization", &bearer)],
    )
    .unwrap();
    let base = base_layer("notify");
    let (miner, clean) = (miner_image(&base), clean_image(&base, "notify"));
    // Only pushes: the test never calls the scan endpoint.
    push_image(&registry.host, "team/miner", "1", &miner).unwrap();
    push_image(&registry.host, "team/clean", "1", &clean).unwrap();

    let auth = [("Authorization", bearer.as_str())];
    let openapi = json_of(&service.get("/api/openapi.json", &[]));
    let v = service.verdict(&miner.manifest.digest, &auth);
    conforms(&openapi, "ImageRecord", &v);
    assert_eq!(v["verdict"]["verdict"], "critical", "{v:#}");
    assert_eq!(v["verdict"]["fails"], true);
    assert_eq!(v["repository"], "team/miner");
    let v = service.verdict(&clean.manifest.digest, &auth);
    assert_eq!(v["verdict"]["verdict"], "clean", "{v:#}");
    assert_eq!(v["verdict"]["fails"], false);
    // The API wants the token; health does not.
    assert_eq!(
        service
            .get(&format!("/api/v1/images/{}", miner.manifest.digest), &[])
            .status,
        401
    );
    assert_eq!(
        service
            .get(
                &format!("/api/v1/images/{}", miner.manifest.digest),
                &[("Authorization", "Bearer wrong")]
            )
            .status,
        401
    );
    assert_eq!(service.get("/healthz", &[]).status, 200);
    assert_eq!(service.get("/readyz", &[]).status, 200);
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert_error(
        &service.get(&format!("/api/v1/images/{unknown}"), &auth),
        404,
    );
    assert_error(&service.get("/api/v1/images/latest", &auth), 400);
    let metrics = text(&service.get("/metrics", &[]));
    has_metric(
        &metrics,
        "minehound_scans_total{origin=\"notification\",outcome=\"findings\"} 1",
    );

    // A restart keeps every verdict.
    service.stop();
    let service = Service::start(dir.path(), store, &[("MINEHOUND_API_TOKEN", token)]);
    let v = service.get(&format!("/api/v1/images/{}", miner.manifest.digest), &auth);
    assert_eq!(json_of(&v)["verdict"]["verdict"], "critical");
    drop(registry);
}

#[test]
fn a_base_layer_shared_by_concurrent_scans_is_read_once_on_files() {
    a_base_layer_shared_by_concurrent_scans_is_read_once_on(&[]);
}

#[test]
fn a_base_layer_shared_by_concurrent_scans_is_read_once_on_the_database() {
    let url = super::replicas::database("a_base_layer_shared_by_concurrent_scans_");
    a_base_layer_shared_by_concurrent_scans_is_read_once_on(&["--database", &url]);
}

fn a_base_layer_shared_by_concurrent_scans_is_read_once_on(store: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let base = base_layer("shared");
    let images: Vec<BuiltImage> = (0..6)
        .map(|i| clean_image(&base, &format!("app {i}")))
        .collect();
    let registry = plain_registry(dir.path());
    for (i, image) in images.iter().enumerate() {
        push_image(&registry.host, &format!("team/app{i}"), "1", image).unwrap();
    }
    let service = Service::start(dir.path(), &[store, &["--workers", "6"]].concat(), &[]);
    let url = format!("http://{}", registry.host);
    let ids: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, image)| service.scan(&url, None, &format!("team/app{i}"), &image.manifest.digest))
        .collect();
    for id in &ids {
        assert_eq!(service.report(id, REPORT_V11).status, 200);
    }
    // 7 unique layers (one base, six tops) in 12 layer references.
    let metrics = text(&service.get("/metrics", &[]));
    has_metric(&metrics, "minehound_layers_total{result=\"scanned\"} 7");
    has_metric(&metrics, "minehound_layers_total{result=\"cached\"} 5");
}

#[test]
fn the_api_conforms_to_its_openapi_description_under_schemathesis() {
    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    push_image(&registry.host, "team/demo", "1", &demo_image().build()).unwrap();
    let token = "schemathesis-t0ken";
    let service = Service::start(
        dir.path(),
        &["--workers", "1"],
        &[("MINEHOUND_API_TOKEN", token)],
    );
    let output = Command::new("schemathesis")
        .args(["run", &format!("http://{}/api/openapi.json", service.host)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", "25", "--no-color"])
        .args(["--suppress-health-check", "all"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis (python3 -m pip install schemathesis)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    // It did exercise the API.
    assert!(report.contains("/api/v1/scan"), "{report}");
    assert_eq!(
        service.get("/healthz", &[]).status,
        200,
        "the service survived"
    );
}

#[test]
fn serve_prints_its_openapi_description() {
    let output = Command::new(assert_cmd::cargo::cargo_bin("minehound"))
        .args(["serve", "--print-openapi"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let doc: Value = serde_yaml_ng::from_slice(&output.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/metadata",
        "/api/v1/scan",
        "/api/v1/scan/{scan_request_id}/report",
        "/api/v1/notifications",
        "/api/v1/images/{digest}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}
