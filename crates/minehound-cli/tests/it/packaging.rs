//! The Debian package's files (deploy/debian) agree with the binary they ship:
//! serve.env names only variables `minehound serve` reads, the unit starts a
//! command line the binary accepts, and config.toml, as shipped and with every
//! example turned on, is a config the binary takes. Installing the package for
//! real is deploy/debian/test.sh (root; CI runs it).

use std::fs;
use std::path::PathBuf;

use super::{assert_command_line_accepted, json_of, minehound, repo_root};

fn debian_dir() -> PathBuf {
    repo_root().join("deploy/debian")
}

/// `MINEHOUND_*` names set or shown (commented) in serve.env.
fn serve_env_names() -> Vec<String> {
    let text = fs::read_to_string(debian_dir().join("serve.env")).unwrap();
    text.lines()
        .map(|line| line.trim_start_matches('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name)
        .filter(|name| {
            name.starts_with("MINEHOUND_")
                && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

/// Whether `text` holds `name` as a whole word (not as the start of a longer
/// variable name).
fn names(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        !text[at + name.len()..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
    })
}

#[test]
fn serve_env_names_only_variables_the_service_reads() {
    let help = minehound().args(["serve", "--help"]).output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let names_in_file = serve_env_names();
    // The address, TLS, token, workers, queue, notifications, retention,
    // logging, state and cache at least.
    assert!(names_in_file.len() >= 12, "{names_in_file:?}");
    for name in &names_in_file {
        assert!(
            names(&help, name),
            "deploy/debian/serve.env names {name}, which `minehound serve --help` does not"
        );
    }
    // And the unit's own defaults are variables the service reads.
    let unit = fs::read_to_string(debian_dir().join("minehound.service")).unwrap();
    for line in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let (name, _) = line.split_once('=').unwrap();
        assert!(names(&help, name), "minehound.service sets {name}");
    }
}

#[test]
fn the_shipped_config_with_every_example_on_is_accepted_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = fs::read_to_string(debian_dir().join("config.toml")).unwrap();
    // As shipped: every line a comment, so nothing changes.
    assert!(
        shipped.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "config.toml ships with settings on"
    );
    // Every example turned on, with the files they name.
    let on: String = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(on.contains("\nfail-on = \"high\"\n"), "{on}");
    fs::write(dir.path().join("config.toml"), &on).unwrap();
    fs::write(dir.path().join("allowlist.yaml"), "allow: []\n").unwrap();
    fs::create_dir(dir.path().join("rules")).unwrap();
    fs::write(
        dir.path().join("rules/local.yar"),
        "rule local_example { condition: false }\n",
    )
    .unwrap();
    fs::create_dir(dir.path().join("hashes")).unwrap();
    fs::write(dir.path().join("hashes/local.txt"), "").unwrap();
    fs::write(dir.path().join("registry-ca.pem"), "").unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("hello.sh"), "#!/bin/sh\necho hello\n").unwrap();

    let output = minehound()
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["scan", "--no-progress", "--format", "json"])
        .arg(format!("dir:{}", root.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report = json_of(&output.stdout);
    assert_eq!(report["stats"]["files_scanned"], 1, "{report}");
    // The file's rules and hashes joined the bundled set; its gate applied.
    assert_eq!(
        report["signatures"]["extra_files"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(stderr.contains("gate at high"), "{stderr}");
}

#[test]
fn the_units_command_line_is_one_the_binary_accepts() {
    let unit = fs::read_to_string(debian_dir().join("minehound.service")).unwrap();
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(words[..2], ["/usr/bin/minehound", "serve"], "{exec_start}");
    assert!(unit.contains("\nUser=minehound\n") && unit.contains("\nStateDirectory=minehound\n"));
    // The same arguments, with the repository's config for the installed one
    // (it must exist).
    let config = debian_dir().join("config.toml");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| match *w {
            "/etc/minehound/config.toml" => config.display().to_string(),
            w => w.to_string(),
        })
        .collect();
    assert_command_line_accepted(&args);
}
