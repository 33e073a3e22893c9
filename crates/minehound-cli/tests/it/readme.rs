//! The README's CI examples, run as written. A block after `<!-- tested -->`
//! runs line by line (a trailing `# exit N` is the expected exit code, else 0);
//! a block after `<!-- file: NAME -->` is written to NAME first. All run in one
//! directory holding the demo image as `testdata/demo`.

use std::fs;
use std::process::Command as Process;

use super::*;

enum Step {
    File(String, String),
    Commands(Vec<String>),
}

fn readme_steps() -> Vec<Step> {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let mut steps = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let marker = line.trim();
        let file = marker
            .strip_prefix("<!-- file: ")
            .and_then(|m| m.strip_suffix(" -->"));
        if marker != "<!-- tested -->" && file.is_none() {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "a marker must precede a code block: {line}"
        );
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .map(str::to_string)
            .collect();
        steps.push(match file {
            Some(name) => Step::File(name.to_string(), body.join("\n") + "\n"),
            None => Step::Commands(body),
        });
    }
    steps
}

#[test]
fn readme_ci_examples_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("testdata/demo");
    write_oci_layout(&image, &[(&demo_image().build(), Some("latest"))]).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("minehound");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let steps = readme_steps();
    assert!(steps.len() >= 5, "the README lost its tested examples");
    let mut commands = 0;
    for step in steps {
        match step {
            Step::File(name, text) => fs::write(dir.path().join(name), text).unwrap(),
            Step::Commands(lines) => {
                for line in lines.iter().filter(|l| !l.trim().is_empty()) {
                    let (command, expected) = match line.split_once("# exit ") {
                        Some((c, code)) => (c.trim(), code.trim().parse::<i32>().unwrap()),
                        None => (line.trim(), 0),
                    };
                    let out = Process::new("bash")
                        .args(["-c", command])
                        .current_dir(dir.path())
                        .env("PATH", &path)
                        .env_remove("MINEHOUND_FAIL_ON")
                        .env("XDG_CONFIG_HOME", dir.path().join("no-user-config"))
                        .output()
                        .unwrap();
                    assert_eq!(
                        out.status.code(),
                        Some(expected),
                        "README: `{command}`\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    commands += 1;
                }
            }
        }
    }
    assert!(commands >= 7);
}
