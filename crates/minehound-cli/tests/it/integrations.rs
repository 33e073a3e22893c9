//! The ready-made integrations, run the way their hosts run them: the GitHub
//! Action's steps, the GitLab template's job, and the git pre-push hook.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command as Process;

use serde_yaml_ng::Value as Yaml;

use super::*;

/// PATH with the freshly built `minehound` first.
fn path_with_minehound() -> String {
    let bin = assert_cmd::cargo::cargo_bin("minehound");
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn clean_layout(dir: &Path) -> String {
    let image = ImageSpec {
        layers: vec![Layer::gzip(
            "ADD motd /",
            vec![Entry::file("/etc/motd", "hello\n")],
        )],
        ..ImageSpec::default()
    }
    .build();
    write_oci_layout(dir, &[(&image, None)]).unwrap();
    format!("oci:{}", dir.display())
}

fn yaml(path: &Path) -> Yaml {
    serde_yaml_ng::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

/// Replaces `${{ inputs.NAME }}` and `${{ steps.scan.outputs.NAME }}` as the
/// Actions runner does.
fn expand(
    template: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
) -> String {
    let mut out = template.to_string();
    for (k, v) in inputs {
        out = out.replace(&format!("${{{{ inputs.{k} }}}}"), v);
    }
    for (k, v) in outputs {
        out = out.replace(&format!("${{{{ steps.scan.outputs.{k} }}}}"), v);
    }
    assert!(!out.contains("${{ inputs."), "unknown input in {out}");
    out
}

/// Runs the action's shell steps (the upload step is GitHub's own) for `target`;
/// returns the scan step's outputs and the gate step's exit code.
fn run_action(work: &Path, target: &str) -> (BTreeMap<String, String>, i32) {
    let action = yaml(&repo_root().join("action.yml"));
    let mut inputs = BTreeMap::new();
    for (name, spec) in action["inputs"].as_mapping().unwrap() {
        let default = spec.get("default").map(text).unwrap_or("").to_string();
        inputs.insert(text(name).to_string(), default);
    }
    inputs.insert("target".into(), target.into());

    let github_output = work.join("github_output");
    fs::write(&github_output, "").unwrap();
    let mut outputs = BTreeMap::new();
    let mut gate_code = None;
    for step in action["runs"]["steps"].as_sequence().unwrap() {
        let Some(run) = step.get("run") else {
            assert!(text(&step["uses"]).starts_with("github/codeql-action/upload-sarif@"));
            continue;
        };
        let mut cmd = Process::new("bash");
        cmd.arg("-c")
            .arg(expand(text(run), &inputs, &outputs))
            .current_dir(work)
            .env("PATH", path_with_minehound())
            .env("MINEHOUND_NO_CACHE", "true")
            .env("GITHUB_ACTION_PATH", repo_root())
            .env("GITHUB_OUTPUT", &github_output)
            .env("RUNNER_TEMP", work);
        if let Some(env) = step.get("env").and_then(Yaml::as_mapping) {
            for (k, v) in env {
                cmd.env(text(k), expand(text(v), &inputs, &outputs));
            }
        }
        let status = cmd.status().unwrap();
        if step.get("id").map(text) == Some("scan") {
            assert!(status.success(), "the scan step defers its verdict");
            for line in fs::read_to_string(&github_output).unwrap().lines() {
                let (k, v) = line.split_once('=').unwrap();
                outputs.insert(k.to_string(), v.to_string());
            }
        } else if step.get("name").map(text) == Some("Gate") {
            gate_code = status.code();
        } else {
            assert!(status.success(), "step {:?} failed", step.get("name"));
        }
    }
    (outputs, gate_code.expect("the action has a Gate step"))
}

#[test]
fn github_action_writes_sarif_and_gates_the_job() {
    let work = tempfile::tempdir().unwrap();
    let demo = demo_layout(&work.path().join("demo"));
    let (outputs, code) = run_action(work.path(), &demo);
    assert_eq!(outputs["exit-code"], "1");
    assert_eq!(code, 1, "the job fails on the demo image");
    let sarif: Value =
        serde_json::from_slice(&fs::read(work.path().join(&outputs["sarif-file"])).unwrap())
            .unwrap();
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
    let report: Value =
        serde_json::from_slice(&fs::read(work.path().join(&outputs["json-file"])).unwrap())
            .unwrap();
    assert!(report["stats"]["findings"]["high"].as_u64().unwrap() > 0);

    let clean = clean_layout(&work.path().join("clean"));
    let clean_work = tempfile::tempdir().unwrap();
    let (outputs, code) = run_action(clean_work.path(), &clean);
    assert_eq!((outputs["exit-code"].as_str(), code), ("0", 0));

    // Every setting the action passes is one the CLI reads.
    let help = minehound()
        .args(["scan", "--help"])
        .assert()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(help).unwrap();
    let action = yaml(&repo_root().join("action.yml"));
    let scan_step = action["runs"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s.get("id").map(text) == Some("scan"))
        .unwrap();
    for (name, _) in scan_step["env"].as_mapping().unwrap() {
        let name = text(name);
        let script_only = [
            "MINEHOUND_TARGET",
            "MINEHOUND_SARIF_FILE",
            "MINEHOUND_JSON_FILE",
            "MINEHOUND_DEFER_EXIT",
            "MINEHOUND_USE_CONFIG",
            "MINEHOUND_PASSWORD",
        ];
        assert!(
            script_only.contains(&name) || help.contains(name),
            "{name} is not a minehound setting"
        );
    }
}

#[test]
fn gitlab_template_job_runs_and_keeps_reports() {
    let template = yaml(&repo_root().join("ci/gitlab/minehound.gitlab-ci.yml"));
    let job = &template[".minehound"];
    let run_job = |work: &Path, target: &str| -> bool {
        let mut lines: Vec<String> = Vec::new();
        for key in ["before_script", "script"] {
            lines.extend(
                job[key]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|l| text(l).to_string()),
            );
        }
        let mut cmd = Process::new("bash");
        // GitLab runs each line in one shell and stops at the first failure.
        cmd.arg("-ec")
            .arg(lines.join("\n"))
            .current_dir(work)
            .env("PATH", path_with_minehound())
            .env("MINEHOUND_NO_CACHE", "true");
        for (k, v) in job["variables"].as_mapping().unwrap() {
            cmd.env(text(k), text(v));
        }
        cmd.env("MINEHOUND_TARGET", target);
        cmd.status().unwrap().success()
    };
    let work = tempfile::tempdir().unwrap();
    let demo = demo_layout(&work.path().join("demo"));
    assert!(
        !run_job(work.path(), &demo),
        "the job fails on the demo image"
    );
    for artifact in job["artifacts"]["paths"].as_sequence().unwrap() {
        let name = text(artifact).trim_start_matches('$');
        let file = text(&job["variables"][name]);
        assert!(work.path().join(file).is_file(), "artifact {file} written");
    }
    let clean = clean_layout(&work.path().join("clean"));
    assert!(run_job(work.path(), &clean));
}

#[test]
fn pre_push_hook_blocks_a_miner_image_and_lets_a_clean_one_through() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str], cwd: &Path| {
        let out = Process::new("git")
            .args(args)
            .current_dir(cwd)
            .env("PATH", path_with_minehound())
            .env("MINEHOUND_NO_CACHE", "true")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let remote = dir.path().join("remote.git");
    let work = dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    assert!(
        git(
            &["init", "-q", "--bare", remote.to_str().unwrap()],
            dir.path()
        )
        .0
    );
    assert!(git(&["init", "-q", "-b", "main"], &work).0);
    assert!(
        git(
            &["remote", "add", "origin", remote.to_str().unwrap()],
            &work
        )
        .0
    );
    let hook = work.join(".git/hooks/pre-push");
    fs::copy(repo_root().join("ci/hooks/pre-push"), &hook).unwrap();
    fs::write(work.join("Dockerfile"), "FROM scratch\n").unwrap();
    assert!(git(&["add", "."], &work).0);
    assert!(git(&["commit", "-qm", "image"], &work).0);

    // Without a target the hook refuses and says how to configure it.
    let (ok, stderr) = git(&["push", "-q", "origin", "main"], &work);
    assert!(!ok);
    assert!(stderr.contains("git config minehound.target"), "{stderr}");

    // The build step produces the image the hook scans.
    let demo_dir = dir.path().join("demo");
    let demo = demo_layout(&demo_dir);
    assert!(git(&["config", "minehound.target", &demo], &work).0);
    assert!(git(&["config", "minehound.build", "test -d ../demo"], &work).0);
    let (ok, stderr) = git(&["push", "-q", "origin", "main"], &work);
    assert!(!ok, "a miner image blocks the push");
    assert!(stderr.contains("fails the miner gate"), "{stderr}");
    assert!(
        stderr.contains(DEMO_DROPPER_PATH),
        "the table names the file: {stderr}"
    );
    let (has_main, _) = git(&["rev-parse", "--verify", "-q", "refs/heads/main"], &remote);
    assert!(!has_main, "nothing reached the remote");

    let clean = clean_layout(&dir.path().join("clean"));
    assert!(git(&["config", "minehound.target", &clean], &work).0);
    let (ok, stderr) = git(&["push", "-q", "origin", "main"], &work);
    assert!(ok, "{stderr}");
    assert!(git(&["rev-parse", "--verify", "-q", "refs/heads/main"], &remote).0);
}
