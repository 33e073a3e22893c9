//! Pulls from real registry processes (CNCF Distribution) on 127.0.0.1.

use std::path::Path;

use minehound::{Credentials, PlatformChoice, RegistryOptions, ScanRequest, Severity, Status};
use minehound_testdata::registry::{
    Auth, Fault, FaultProxy, RegistryProcess, TokenIssuer, generate_tls, htpasswd_file, push_image,
    push_multi_platform,
};
use minehound_testdata::{DEMO_CONFIG_PATH, DEMO_DROPPER_PATH, Entry, demo_image};

use crate::support::*;

fn scan_registry(
    target: &str,
    platform: PlatformChoice,
    options: RegistryOptions,
) -> Result<minehound::Report, minehound::Error> {
    let request = ScanRequest::new(target.parse().unwrap(), target)
        .platform(platform)
        .registry(options);
    scanner().scan(&request)
}

fn no_config_files() -> RegistryOptions {
    RegistryOptions {
        use_config_files: false,
        retries: 1,
        ..RegistryOptions::default()
    }
}

/// A plain registry with the demo image pushed as `repo:tag`.
fn registry_with_demo(dir: &Path, repo: &str, tag: &str) -> RegistryProcess {
    let registry = plain_registry(dir);
    push_image(&registry.host, repo, tag, &demo_image().build()).unwrap();
    registry
}

fn plain_registry(dir: &Path) -> RegistryProcess {
    RegistryProcess::start(&dir.join("work"), &dir.join("storage"), None, &Auth::None)
        .expect("start docker-registry")
}

#[test]
fn plain_http_anonymous_pull_matches_the_layout_scan() {
    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    let image = demo_image().build();
    push_image(&registry.host, "team/demo", "1.0", &image).unwrap();

    let local = scan(&layout(&dir.path().join("layout"), &image)).unwrap();
    for target in [
        format!("{}/team/demo:1.0", registry.host),
        format!("docker://{}/team/demo:1.0", registry.host),
        format!("{}/team/demo@{}", registry.host, image.manifest.digest),
        format!("{}/team/demo:1.0@{}", registry.host, image.manifest.digest),
    ] {
        let report = scan_registry(&target, PlatformChoice::Host, no_config_files())
            .unwrap_or_else(|e| panic!("{target}: {e:?}"));
        assert_eq!(
            summary(&report, Severity::Info),
            summary(&local, Severity::Info),
            "{target}"
        );
        assert!(
            findings_for(&report, DEMO_DROPPER_PATH)
                .iter()
                .all(|f| f.status == Status::Deleted)
        );
        assert!(!findings_for(&report, DEMO_CONFIG_PATH).is_empty());
        assert_eq!(
            report.images[0].manifest_digest.as_deref(),
            Some(image.manifest.digest.as_str())
        );
        assert_eq!(report.stats.bytes_compressed, local.stats.bytes_compressed);
        assert_accounting(&report);
    }
}

#[test]
fn multi_platform_images_pick_platforms_like_local_ones() {
    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    let (clean, dirty) = clean_amd64_dirty_arm64();
    push_multi_platform(&registry.host, "team/multi", "2", &[&clean, &dirty]).unwrap();
    let target = format!("{}/team/multi:2", registry.host);

    let host = scan_registry(&target, PlatformChoice::Host, no_config_files()).unwrap();
    assert!(host.findings.is_empty(), "{:#?}", host.findings);
    let arm = scan_registry(
        &target,
        PlatformChoice::Only("linux/arm64/v8".parse().unwrap()),
        no_config_files(),
    )
    .unwrap();
    assert!(!arm.findings.is_empty());
    assert!(
        arm.findings
            .iter()
            .all(|f| f.platform.as_deref() == Some("linux/arm64/v8"))
    );
    let all = scan_registry(&target, PlatformChoice::All, no_config_files()).unwrap();
    assert_eq!(all.images.len(), 2);
}

#[test]
fn tls_with_basic_auth_needs_the_ca_and_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let plain = plain_registry(dir.path());
    let image = demo_image().build();
    push_image(&plain.host, "private/app", "1", &image).unwrap();
    let tls = generate_tls(&dir.path().join("tls")).unwrap();
    let htpasswd = htpasswd_file(dir.path(), "ci", "s3cret-pass").unwrap();
    let secure = RegistryProcess::start(
        &dir.path().join("work"),
        &dir.path().join("storage"),
        Some(&tls),
        &Auth::Htpasswd(htpasswd),
    )
    .unwrap();
    let target = format!("{}/private/app:1", secure.host);
    let with = |password: &str, ca: bool| RegistryOptions {
        credentials: Some(Credentials {
            username: "ci".into(),
            password: password.into(),
        }),
        ca_files: if ca {
            vec![tls.ca_cert.clone()]
        } else {
            Vec::new()
        },
        ..no_config_files()
    };

    let report = scan_registry(&target, PlatformChoice::Host, with("s3cret-pass", true)).unwrap();
    assert!(report.fails(Severity::High));

    for (options, what) in [
        (with("wrong", true), "wrong password"),
        (no_config_files_with_ca(&tls.ca_cert), "no credentials"),
        (with("s3cret-pass", false), "untrusted CA"),
    ] {
        let err = scan_registry(&target, PlatformChoice::Host, options).unwrap_err();
        let text = format!("{err:#?}");
        assert!(text.contains(&secure.host), "{what}: {text}");
        assert!(
            !text.contains("s3cret-pass"),
            "{what}: the password leaks: {text}"
        );
    }
}

fn no_config_files_with_ca(ca: &Path) -> RegistryOptions {
    RegistryOptions {
        ca_files: vec![ca.to_path_buf()],
        ..no_config_files()
    }
}

#[test]
fn registry_faults_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = plain_registry(dir.path());
    let image = demo_image().build();
    push_image(&registry.host, "team/app", "1", &image).unwrap();

    // A tag that does not exist.
    let err = scan_registry(
        &format!("{}/team/app:nope", registry.host),
        PlatformChoice::Host,
        no_config_files(),
    )
    .unwrap_err();
    assert!(format!("{err:#?}").contains("team/app"), "{err:#?}");

    // A blob whose bytes no longer match its digest.
    let layer = &image.layers[1];
    let data = dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex())
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let target = format!("{}/team/app:1", registry.host);
    let err = scan_registry(&target, PlatformChoice::Host, no_config_files()).unwrap_err();
    assert!(
        matches!(err, minehound::Error::Layer { index: 1, .. }),
        "{err:#?}"
    );

    // A missing blob.
    std::fs::remove_file(&data).unwrap();
    let err = scan_registry(&target, PlatformChoice::Host, no_config_files()).unwrap_err();
    assert!(
        matches!(err, minehound::Error::Layer { index: 1, .. }),
        "{err:#?}"
    );

    // A registry that is gone: an error after bounded retries, not a hang.
    registry.stop();
    let started = std::time::Instant::now();
    assert!(scan_registry(&target, PlatformChoice::Host, no_config_files()).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn the_bearer_token_flow_gets_a_token_and_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let _plain = registry_with_demo(dir.path(), "team/tokened", "3");
    let issuer = TokenIssuer::start(&dir.path().join("issuer"), "robot", "t0ken-pass").unwrap();
    let registry = RegistryProcess::start(
        &dir.path().join("work"),
        &dir.path().join("storage"),
        None,
        &Auth::Token(issuer.config.clone()),
    )
    .unwrap();
    let target = format!("{}/team/tokened:3", registry.host);
    let options = |password: &str| RegistryOptions {
        credentials: Some(Credentials {
            username: "robot".into(),
            password: password.into(),
        }),
        ..no_config_files()
    };

    let report = scan_registry(&target, PlatformChoice::Host, options("t0ken-pass")).unwrap();
    assert!(report.fails(Severity::High));
    assert!(issuer.issued.load(std::sync::atomic::Ordering::Relaxed) >= 1);

    for options in [options("wrong"), no_config_files()] {
        let err = format!(
            "{:#?}",
            scan_registry(&target, PlatformChoice::Host, options).unwrap_err()
        );
        assert!(err.contains(&registry.host), "{err}");
        assert!(!err.contains("t0ken-pass"), "{err}");
    }
}

#[test]
fn progress_hears_every_byte_of_every_layer() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Tally {
        bytes: AtomicU64,
        started: Mutex<Vec<String>>,
        finished: Mutex<Vec<String>>,
    }
    impl minehound::Progress for Tally {
        fn layer_started(&self, layer: &str, _total: Option<u64>) {
            self.started.lock().unwrap().push(layer.to_string());
        }
        fn layer_advanced(&self, _layer: &str, bytes: u64) {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        fn layer_finished(&self, layer: &str) {
            self.finished.lock().unwrap().push(layer.to_string());
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    let image = demo_image().build();
    push_image(&registry.host, "team/progress", "1", &image).unwrap();
    let tally = std::sync::Arc::new(Tally::default());
    let target = format!("{}/team/progress:1", registry.host);
    let request = ScanRequest::new(target.parse().unwrap(), &target)
        .registry(no_config_files())
        .progress(tally.clone());
    let report = scanner().scan(&request).unwrap();
    assert_eq!(
        tally.bytes.load(Ordering::Relaxed),
        report.stats.bytes_compressed
    );
    let mut started = tally.started.lock().unwrap().clone();
    started.sort();
    let mut expected: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
    expected.sort();
    assert_eq!(started, expected);
    assert_eq!(tally.finished.lock().unwrap().len(), 3);
}

#[test]
fn a_registry_that_dies_mid_download_fails_the_scan() {
    use std::sync::Mutex;

    /// Stops the registry as soon as the first bytes of a layer arrive.
    struct KillOnFirstByte(Mutex<Option<RegistryProcess>>);
    impl minehound::Progress for KillOnFirstByte {
        fn layer_started(&self, _: &str, _: Option<u64>) {}
        fn layer_advanced(&self, _: &str, _: u64) {
            if let Some(mut registry) = self.0.lock().unwrap().take() {
                registry.stop();
            }
        }
        fn layer_finished(&self, _: &str) {}
    }

    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    // 32 MiB that gzip cannot shrink: more than socket buffers hold.
    let noise = noise(32 << 20);
    let image = one_layer(vec![Entry::file("/data/noise.bin", noise)]);
    push_image(&registry.host, "team/big", "1", &image).unwrap();
    let target = format!("{}/team/big:1", registry.host);
    let killer = std::sync::Arc::new(KillOnFirstByte(Mutex::new(Some(registry))));
    let request = ScanRequest::new(target.parse().unwrap(), &target)
        .registry(no_config_files())
        .progress(killer.clone());
    let started = std::time::Instant::now();
    let err = scanner().scan(&request).unwrap_err();
    assert!(
        killer.0.lock().unwrap().is_none(),
        "the registry was stopped mid-scan"
    );
    assert!(
        matches!(err, minehound::Error::Layer { index: 0, .. }),
        "{err:#?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn throttled_blob_requests_wait_as_retry_after_says() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_demo(dir.path(), "team/slow", "1");
    // One 429 asking for 2 s: more than the first backoff step (0.5 s).
    let proxy = minehound_testdata::registry::FaultProxy::start(&registry.host, 1, 2).unwrap();
    let target = format!("{}/team/slow:1", proxy.host);
    let started = std::time::Instant::now();
    let report = scan_registry(&target, PlatformChoice::Host, no_config_files()).unwrap();
    assert!(report.fails(Severity::High));
    assert_eq!(proxy.faults.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After was not honoured: {:?}",
        started.elapsed()
    );

    // A storm of 429s beyond the retries is an error, in bounded time.
    let storm = minehound_testdata::registry::FaultProxy::start(&registry.host, 1000, 0).unwrap();
    let target = format!("{}/team/slow:1", storm.host);
    let err = scan_registry(&target, PlatformChoice::Host, no_config_files()).unwrap_err();
    assert!(format!("{err:#?}").contains("429"), "{err:#?}");
}

/// `len` bytes that gzip cannot shrink (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The demo image under a first layer of a quarter MiB of incompressible
/// bytes: a blob big enough to cut, trickle or mislabel mid-way.
fn image_with_a_big_layer() -> minehound_testdata::BuiltImage {
    let mut spec = demo_image();
    spec.layers.insert(
        0,
        minehound_testdata::Layer::gzip(
            "COPY noise /opt/",
            vec![Entry::file("/opt/noise.bin", noise(256 * 1024))],
        ),
    );
    spec.build()
}

/// A plain registry holding [`image_with_a_big_layer`] as `team/big:1`,
/// behind a proxy applying `fault`; returns both and the target through the proxy.
fn behind_fault(dir: &Path, fault: Fault) -> (RegistryProcess, FaultProxy, String) {
    let registry = plain_registry(dir);
    push_image(&registry.host, "team/big", "1", &image_with_a_big_layer()).unwrap();
    let proxy = FaultProxy::with_fault(&registry.host, fault).unwrap();
    let target = format!("{}/team/big:1", proxy.host);
    (registry, proxy, target)
}

/// Longest any fault may hold a scan.
const FAULT_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a scan through a faulty proxy, prints its outcome and wall time (the
/// table in the hostile-input notes) and checks the time bound.
fn timed_scan(
    fault: &str,
    target: &str,
    options: RegistryOptions,
) -> Result<minehound::Report, String> {
    let started = std::time::Instant::now();
    // The error and its causes on one line, as the CLI prints them.
    let result = scan_registry(target, PlatformChoice::Host, options).map_err(|err| {
        std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ")
    });
    let elapsed = started.elapsed();
    let outcome = match &result {
        Ok(_) => "scan completes",
        Err(text) => text,
    };
    eprintln!(
        "fault | {fault} | {outcome} | {:.1} s",
        elapsed.as_secs_f64()
    );
    assert!(elapsed < FAULT_BOUND, "{fault}: took {elapsed:?}");
    result
}

#[test]
fn a_connection_dropped_mid_blob_resumes_with_a_range_request() {
    let dir = tempfile::tempdir().unwrap();
    let fault = Fault::DropMidBlob {
        count: 1,
        after_bytes: 64 * 1024,
    };
    let (_registry, proxy, target) = behind_fault(dir.path(), fault);
    let report = timed_scan(
        "connection dropped after 64 KiB of a blob",
        &target,
        no_config_files(),
    )
    .unwrap();
    assert!(report.fails(Severity::High));
    assert_eq!(proxy.faults.load(std::sync::atomic::Ordering::SeqCst), 1);
    let resumed = proxy.requests_with("range: bytes=65536-");
    assert_eq!(resumed.len(), 1, "{:#?}", proxy.requests_with("GET"));
}

#[test]
fn a_trickle_of_bytes_is_a_stalled_transfer_and_a_clear_error() {
    let second = std::time::Duration::from_secs(1);
    for (fault, name, expected) in [
        (
            Fault::Trickle { interval: second },
            "blob trickled a byte a second (timeout 2 s, 1 retry)",
            "transfer stalled",
        ),
        (
            Fault::TrickleManifests { interval: second },
            "manifest trickled a byte a second (timeout 2 s, 1 retry)",
            "no complete manifest within 8 s",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_registry, _proxy, target) = behind_fault(dir.path(), fault);
        let options = RegistryOptions {
            timeout: std::time::Duration::from_secs(2),
            ..no_config_files()
        };
        let err = timed_scan(name, &target, options).unwrap_err();
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn a_wrong_content_length_is_a_clear_error() {
    for (fault, delta) in [
        ("Content-Length 1000 bytes too long", 1000),
        ("Content-Length 1000 bytes too short", -1000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_registry, _proxy, target) =
            behind_fault(dir.path(), Fault::WrongContentLength { delta });
        let err = timed_scan(fault, &target, no_config_files()).unwrap_err();
        assert!(
            err.contains("digest mismatch") || err.contains("416"),
            "{fault}: {err}"
        );
    }
}

#[test]
fn a_redirect_to_another_host_is_followed_without_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let plain = plain_registry(dir.path());
    push_image(&plain.host, "private/app", "1", &image_with_a_big_layer()).unwrap();
    let htpasswd = htpasswd_file(dir.path(), "ci", "redirect-s3cret").unwrap();
    let private = RegistryProcess::start(
        &dir.path().join("work-auth"),
        &dir.path().join("storage"),
        None,
        &Auth::Htpasswd(htpasswd),
    )
    .unwrap();
    // "Storage": another host serving the same blobs, recording what it is sent.
    let storage = FaultProxy::with_fault(
        &plain.host,
        Fault::TooManyRequests {
            count: 0,
            retry_after_secs: 0,
        },
    )
    .unwrap();
    let front = FaultProxy::with_fault(
        &private.host,
        Fault::RedirectTo {
            to: storage.host.clone(),
        },
    )
    .unwrap();
    let options = RegistryOptions {
        credentials: Some(Credentials {
            username: "ci".into(),
            password: "redirect-s3cret".into(),
        }),
        ..no_config_files()
    };
    let report = timed_scan(
        "307 redirect of every blob to another host",
        &format!("{}/private/app:1", front.host),
        options,
    )
    .unwrap();
    assert!(report.fails(Severity::High));
    assert!(front.faults.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert!(!front.requests_with("authorization: basic").is_empty());
    let fetched = storage.requests_with("/blobs/sha256:");
    assert!(fetched.len() >= 2, "{fetched:#?}");
    assert_eq!(storage.requests_with("authorization"), Vec::<String>::new());
}

#[test]
fn a_storm_of_429s_ends_in_a_clear_error_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let fault = Fault::TooManyRequests {
        count: usize::MAX,
        retry_after_secs: 1,
    };
    let (_registry, proxy, target) = behind_fault(dir.path(), fault);
    let options = RegistryOptions {
        retries: 4,
        ..no_config_files()
    };
    let fault = "429 on every blob request (Retry-After 1 s, 4 retries)";
    let err = timed_scan(fault, &target, options).unwrap_err();
    assert!(err.contains("429 Too Many Requests"), "{err}");
    assert_eq!(proxy.faults.load(std::sync::atomic::Ordering::SeqCst), 5);
}

/// Scans `target` with `options`: the report as JSON, or the error chain,
/// with `host` written as `as_host` (a proxy's address as the registry's).
fn outcome_via(
    scanner: &minehound::Scanner,
    target: &str,
    options: RegistryOptions,
    (host, as_host): (&str, &str),
) -> String {
    let request = ScanRequest::new(target.parse().unwrap(), target).registry(options);
    match scanner.scan(&request) {
        Ok(report) => serde_json::to_string_pretty(&report).unwrap(),
        Err(err) => format!("error: {}", minehound::ErrorChain(&err)),
    }
    .replace(host, as_host)
}

/// A large gzip layer arrives by several range requests into a spool file
/// that three threads inflate from while it arrives: the report a plain
/// stream gives, with a connection cut mid-segment and resumed; a registry
/// that ignores ranges gets the plain stream; a blob damaged in the
/// registry's storage fails as it does streamed (the digest covers every
/// spooled byte).
#[test]
fn a_large_layer_arrives_by_range_requests_and_is_inflated_from_several_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let registry = plain_registry(dir.path());
    let image = crate::sharing::large_mixed_layer();
    push_image(&registry.host, "team/large", "1", &image).unwrap();
    let largest = image.layers.iter().map(|l| l.bytes.len()).max().unwrap();
    assert!(largest > 2 << 20, "a layer of {largest} bytes");
    let spooling = RegistryOptions {
        connections: 3,
        spool_from: 1 << 20,
        ..no_config_files()
    };
    let streaming = RegistryOptions {
        connections: 1,
        ..spooling.clone()
    };
    let direct = format!("{}/team/large:1", registry.host);
    let same = (registry.host.as_str(), registry.host.as_str());

    let plain = crate::sharing::inflating_scanner(3);
    let streamed = outcome_via(&plain, &direct, streaming.clone(), same);
    assert!(!streamed.starts_with("error"), "{streamed}");
    assert_eq!(
        plain.gzip_chunks_inflated(),
        0,
        "a stream is inflated by one thread"
    );

    let cut = Fault::DropMidBlob {
        count: 1,
        after_bytes: 64 * 1024,
    };
    let proxy = FaultProxy::with_fault(&registry.host, cut).unwrap();
    let through = format!("{}/team/large:1", proxy.host);
    let spooler = crate::sharing::inflating_scanner(3);
    let spooled = outcome_via(
        &spooler,
        &through,
        spooling.clone(),
        (&proxy.host, &registry.host),
    );
    assert!(
        spooled == streamed,
        "reports differ\n--- streamed\n{streamed}\n--- spooled\n{spooled}"
    );
    assert!(
        spooler.gzip_chunks_inflated() > 0,
        "the spooled layer was inflated from several offsets"
    );
    assert_eq!(
        proxy.requests_with("range: bytes=0-0").len(),
        1,
        "one probe"
    );
    let ranges = proxy.requests_with("range: bytes=");
    // The probe and the cut segment resumed, and a few segments for each
    // of the three connections.
    assert!(ranges.len() >= 2 + 3 * 2, "{ranges:#?}");
    assert_eq!(proxy.faults.load(std::sync::atomic::Ordering::SeqCst), 1);

    let ignoring = FaultProxy::with_fault(&registry.host, Fault::IgnoreRanges).unwrap();
    let through = format!("{}/team/large:1", ignoring.host);
    let fallback = crate::sharing::inflating_scanner(3);
    let hosts = (ignoring.host.as_str(), registry.host.as_str());
    assert_eq!(
        outcome_via(&fallback, &through, spooling.clone(), hosts),
        streamed
    );
    assert_eq!(
        fallback.gzip_chunks_inflated(),
        0,
        "streamed: ranges ignored"
    );
    assert_eq!(ignoring.requests_with("range:").len(), 1, "only the probe");

    // One byte flipped in the middle of the stored layer.
    let layer = image.layers.iter().max_by_key(|l| l.bytes.len()).unwrap();
    let hex = layer.digest.trim_start_matches("sha256:");
    let data = dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&data, &bytes).unwrap();
    let streamed = outcome_via(
        &crate::sharing::inflating_scanner(3),
        &direct,
        streaming,
        same,
    );
    assert!(streamed.starts_with("error"), "{streamed}");
    let spooled = outcome_via(
        &crate::sharing::inflating_scanner(3),
        &direct,
        spooling,
        same,
    );
    assert_eq!(spooled, streamed);
}
