//! The CI gate: allowlists, config file and environment, SARIF, and the
//! generated completions and man page.

use std::fs;

use minehound_testdata::tools::validate_sarif;

use super::*;

/// A project directory holding the demo image as `image/`.
fn project() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let target = demo_layout(&dir.path().join("image"));
    (dir, target)
}

const ALLOW_BOTH: &str = "\
# reviewed in SEC-1
allow:
  - path: /opt/app/config.json
    reason: fixture config, not deployed
  - path: /usr/local/bin/*.sh
    reason: fixture script, deleted in the image
    expires: 2999-12-31
";

#[test]
fn project_allowlist_suppresses_but_keeps_findings() {
    let (dir, target) = project();
    fs::write(dir.path().join(".minehound.yaml"), ALLOW_BOTH).unwrap();
    let out = minehound()
        .current_dir(dir.path())
        .args(["scan", "-f", "json", &target])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("suppressed by the allowlist"))
        .get_output()
        .clone();
    let report = json_of(&out.stdout);
    let findings = report["findings"].as_array().unwrap();
    assert!(findings.len() >= 2, "suppressed findings stay: {report:#}");
    for f in findings {
        let s = &f["suppression"];
        assert!(s.is_object(), "every finding is covered: {f:#}");
        assert!(s["entry"].as_str().unwrap().starts_with(".minehound.yaml:"));
    }
    let dropper = findings
        .iter()
        .find(|f| f["path"] == DEMO_DROPPER_PATH)
        .unwrap();
    assert_eq!(dropper["suppression"]["entry"], ".minehound.yaml:5");
    assert_eq!(dropper["suppression"]["expires"], "2999-12-31");
    assert_eq!(report["allowlist"]["suppressed"], findings.len());
    assert_eq!(report["stats"]["findings"]["high"], 0);
}

#[test]
fn expired_or_partial_allowlists_do_not_open_the_gate() {
    let (dir, target) = project();
    let list = dir.path().join("allow.yaml");
    fs::write(
        &list,
        "allow:\n  - path: /opt/app/config.json\n    reason: was fine last year\n    expires: 2001-01-31\n",
    )
    .unwrap();
    let out = minehound()
        .args([
            "scan",
            "-f",
            "json",
            "--allowlist",
            list.to_str().unwrap(),
            &target,
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("expired on 2001-01-31"))
        .get_output()
        .clone();
    let report = json_of(&out.stdout);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f.get("suppression").is_none())
    );
    assert_eq!(
        report["allowlist"]["expired"][0]["entry"],
        format!("{}:2", list.display())
    );

    // Only the config is allowed: the deleted dropper still fails the gate.
    fs::write(
        &list,
        "allow:\n  - path: /opt/app/config.json\n    reason: fixture\n",
    )
    .unwrap();
    minehound()
        .args([
            "scan",
            "-q",
            "-f",
            "json",
            "--allowlist",
            list.to_str().unwrap(),
            &target,
        ])
        .assert()
        .code(1);
}

#[test]
fn malformed_allowlist_or_config_is_an_error_naming_file_and_line() {
    let (dir, target) = project();
    fs::write(
        dir.path().join(".minehound.yaml"),
        "allow:\n  - path: /opt/**\n    reason: ok\n  - rule: MH-MINER-CONFIG\n",
    )
    .unwrap();
    minehound()
        .current_dir(dir.path())
        .args(["scan", "-q", &target])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(".minehound.yaml:4: "))
        .stderr(predicate::str::contains("reason"));

    fs::remove_file(dir.path().join(".minehound.yaml")).unwrap();
    fs::write(
        dir.path().join("minehound.toml"),
        "fail-on = \"high\"\nfial-on = \"low\"\n",
    )
    .unwrap();
    minehound()
        .current_dir(dir.path())
        .args(["scan", "-q", &target])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("minehound.toml"))
        .stderr(predicate::str::contains("line 2"))
        .stderr(predicate::str::contains("fial-on"));

    minehound()
        .args(["--config", "/nonexistent/minehound.toml", "scan", &target])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/minehound.toml"));
}

/// Command line over environment over config file over defaults.
#[test]
fn flags_env_and_config_file_take_precedence_in_that_order() {
    let (dir, target) = project();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = minehound();
        cmd.current_dir(dir.path()).env_remove("MINEHOUND_FAIL_ON");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["scan", "-q", "-f", "json"])
            .args(args)
            .arg(&target);
        cmd.assert().get_output().status.code().unwrap()
    };
    // Default gate (medium): the demo's high findings fail.
    assert_eq!(run(&[], &[]), 1);
    fs::write(
        dir.path().join("minehound.toml"),
        "# project policy\nfail-on = \"critical\"\nmax-file-size = \"1MiB\"\nquiet = true\n",
    )
    .unwrap();
    assert_eq!(run(&[], &[]), 0, "config file raises the gate");
    assert_eq!(
        run(&[("MINEHOUND_FAIL_ON", "high")], &[]),
        1,
        "env beats config"
    );
    assert_eq!(
        run(&[("MINEHOUND_FAIL_ON", "high")], &["--fail-on", "critical"]),
        0,
        "flag beats env"
    );

    // A user config file is found through XDG_CONFIG_HOME; the project's wins.
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join("minehound")).unwrap();
    fs::write(
        home.path().join("minehound/config.toml"),
        "fail-on = \"info\"\n",
    )
    .unwrap();
    let xdg = home.path().to_str().unwrap();
    assert_eq!(
        run(&[("XDG_CONFIG_HOME", xdg)], &[]),
        0,
        "project config wins"
    );
    fs::remove_file(dir.path().join("minehound.toml")).unwrap();
    let user_rules = home.path().join("minehound/config.toml");
    fs::write(&user_rules, "fail-on = \"critical\"\n").unwrap();
    assert_eq!(
        run(&[("XDG_CONFIG_HOME", xdg)], &[]),
        0,
        "user config applies"
    );

    // Switches turn off from the environment what a file turned on.
    fs::write(
        dir.path().join("minehound.toml"),
        "no-default-signatures = true\n",
    )
    .unwrap();
    assert_eq!(run(&[], &[]), 0, "no signatures, no findings");
    assert_eq!(run(&[("MINEHOUND_NO_DEFAULT_SIGNATURES", "false")], &[]), 1);
    assert_eq!(run(&[], &["--no-default-signatures=false"]), 1);
}

#[test]
fn sarif_passes_the_github_validator_and_marks_suppressions() {
    let (dir, target) = project();
    let list = dir.path().join("allow.yaml");
    fs::write(
        &list,
        "allow:\n  - path: /opt/app/config.json\n    reason: fixture\n",
    )
    .unwrap();
    let sarif = dir.path().join("minehound.sarif");
    minehound()
        .args(["scan", "-q", "--format", "sarif", "--allowlist"])
        .arg(&list)
        .arg("-o")
        .arg(&sarif)
        .arg(&target)
        .assert()
        .code(1);

    let doc: Value = serde_json::from_slice(&fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for result in results {
        let rule = &rules[result["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], result["ruleId"]);
        assert!(rule["help"]["text"].as_str().unwrap().len() > 20);
        assert!(rule["properties"]["security-severity"].is_string());
        let location = &result["locations"][0];
        let uri = location["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(!uri.starts_with('/'), "{uri}");
        assert!(
            location["logicalLocations"][0]["fullyQualifiedName"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        let suppressed = result.get("suppressions").is_some();
        assert_eq!(suppressed, uri == "opt/app/config.json", "{result:#}");
    }
    let dropper = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                == "usr/local/bin/start.sh"
        })
        .unwrap();
    assert_eq!(dropper["level"], "error");
    assert_eq!(dropper["properties"]["status"], "deleted");

    let verdict = validate_sarif(&sarif).unwrap();
    assert!(verdict.errors.is_empty(), "{:#?}", verdict.errors);
    // The only warning left is the missing project home page (informationUri).
    assert!(
        verdict.warnings.iter().all(|w| w.contains("SARIF2005")),
        "{:#?}",
        verdict.warnings
    );
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let bash = minehound()
        .args(["completions", "bash"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let script = String::from_utf8(bash).unwrap();
    for word in ["scan", "push", "rules", "--fail-on", "--allowlist", "sarif"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("minehound.bash");
    fs::write(&file, &script).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(syntax.success(), "bash completion does not parse");
    minehound()
        .args(["completions", "zsh"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("#compdef minehound"));

    minehound()
        .arg("man")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(".TH minehound 1"))
        .stdout(predicate::str::contains("push"));
    minehound()
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .code(0);
    let scan_page = fs::read_to_string(dir.path().join("minehound-scan.1")).unwrap();
    assert!(
        scan_page.contains("MINEHOUND_FAIL_ON"),
        "env vars are documented"
    );
    assert!(scan_page.contains("\\-\\-allowlist"));
    for page in ["minehound.1", "minehound-push.1", "minehound-rules.1"] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
}
