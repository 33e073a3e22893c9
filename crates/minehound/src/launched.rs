//! What an image's command runs, tied to what the layers hold: `CMD
//! ["python", "-m", "tool.cli"]` says nothing alone, but when the image's
//! `tool` package holds a miner launcher, every container of the image
//! starts one. The same for a program or script named by path or found on
//! `PATH` (`ENTRYPOINT ["kworker"]` where `/usr/bin/kworker` is XMRig).

use minehound_detect::IMAGE_CONFIG_RULE;
use minehound_oci::{Image, ImageProcess};
use minehound_report::{Finding, Severity, Status};

use crate::config::{COMMAND_FIELD, IMAGE_CONFIG_PATH};

/// `PATH` when the image's `Env` sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Words that run the program after them (with their own options).
const WRAPPERS: &[&str] = &[
    "exec",
    "nohup",
    "env",
    "setsid",
    "nice",
    "ionice",
    "sudo",
    "su-exec",
    "gosu",
    "tini",
    "dumb-init",
    "catatonit",
    "timeout",
    "stdbuf",
    "chroot",
];

/// Interpreters whose first operand is the script they run.
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "node", "nodejs", "deno", "bun", "perl", "ruby",
    "php", "pwsh", "lua",
];

/// Something a command line runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runs {
    /// A file: a program, or a script handed to an interpreter.
    File(String),
    /// A Python module (`python -m a.b`).
    Module(String),
}

/// What the image's `Entrypoint` + `Cmd` runs, as far as it can be read
/// without running a shell: each `sh -c` string is read as shell words.
pub(crate) fn what_it_runs(process: &ImageProcess) -> Vec<Runs> {
    let words = process.command();
    let mut out = Vec::new();
    for command in commands(&words) {
        if let Some(runs) = runs_of(&command, process)
            && !out.contains(&runs)
        {
            out.push(runs);
        }
    }
    out
}

/// Shells whose `-c` operand is a script of commands.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh"];

/// The simple commands in `words`: the script after a shell's `-c` (what
/// Docker's shell form `CMD x y` becomes) is split into commands of its own,
/// as far as it can be read without running the shell.
fn commands<'a>(words: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut out: Vec<Vec<&'a str>> = vec![Vec::new()];
    let mut words = words.iter().copied();
    while let Some(word) = words.next() {
        let current = out.last_mut().expect("never empty");
        let in_shell = current
            .iter()
            .any(|w: &&str| SHELLS.contains(&base_name(w)));
        current.push(word);
        if word != "-c" || !in_shell {
            continue;
        }
        let Some(script) = words.next() else { break };
        for part in script.split([';', '&', '|', '\n', '(', ')', '`']) {
            let part: Vec<&str> = part
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
                .filter(|w| !w.is_empty())
                .collect();
            out.push(part);
        }
    }
    out.retain(|command| !command.is_empty());
    out
}

fn base_name(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn is_python(word: &str) -> bool {
    let name = base_name(word);
    ["python", "pypy"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

/// What one simple command runs.
fn runs_of(command: &[&str], process: &ImageProcess) -> Option<Runs> {
    let mut words = command.iter().copied().peekable();
    // Variable assignments, wrappers and their options come first.
    while let Some(&word) = words.peek() {
        let assignment = word.contains('=') && !word.starts_with('/') && !word.starts_with('-');
        let wrapper = WRAPPERS.contains(&base_name(word));
        if assignment
            || wrapper
            || word.starts_with('-')
            || word.chars().all(|c| c.is_ascii_digit())
        {
            words.next();
        } else {
            break;
        }
    }
    let program = words.next()?;
    if is_python(program) {
        while let Some(word) = words.next() {
            match word {
                "-m" => return words.next().map(|module| Runs::Module(module.to_string())),
                // Options that take a value: skip it.
                "-W" | "-X" | "-c" => {
                    words.next();
                }
                option if option.starts_with('-') => {}
                script => return Some(Runs::File(resolve_script(script, process))),
            }
        }
        return None;
    }
    if INTERPRETERS.contains(&base_name(program)) {
        // A shell's `-c` script was split into commands of its own; another
        // interpreter's inline code runs no file.
        return words
            .take_while(|word| *word != "-c" && *word != "-e")
            .find(|word| !word.starts_with('-'))
            .map(|script| Runs::File(resolve_script(script, process)));
    }
    Some(Runs::File(resolve_program(program, process)))
}

/// A program's path: as given when absolute, under the working directory
/// when relative; a bare name stays as it is, to be looked up on `PATH`
/// when matched (the layers decide which entry holds it: see
/// [`matches_file`]).
fn resolve_program(word: &str, process: &ImageProcess) -> String {
    if word.contains('/') {
        resolve_script(word, process)
    } else {
        word.to_string()
    }
}

/// A script handed to an interpreter: absolute, or under the working
/// directory.
fn resolve_script(word: &str, process: &ImageProcess) -> String {
    if word.starts_with('/') {
        return word.to_string();
    }
    let dir = process.working_dir.as_deref().unwrap_or("/");
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        word.trim_start_matches("./")
    )
}

fn path_dirs(process: &ImageProcess) -> Vec<&str> {
    let path = process
        .env
        .iter()
        .find_map(|entry| entry.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':').filter(|dir| dir.starts_with('/')).collect()
}

/// Whether `finding` is in the file `runs` names (or in what that file
/// holds: a member of it, what it unpacks to).
fn matches_file(finding_path: &str, file: &str, process: &ImageProcess) -> bool {
    let is = |path: &str| {
        finding_path == path
            || finding_path
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('!'))
    };
    if file.starts_with('/') {
        return is(file);
    }
    path_dirs(process)
        .iter()
        .any(|dir| is(&format!("{}/{file}", dir.trim_end_matches('/'))))
}

/// Whether `finding` is in the module `module` or in its top-level package,
/// where Python would import it from: the working directory, `PYTHONPATH`,
/// a `site-packages` or `dist-packages` directory.
fn matches_module(finding_path: &str, module: &str, process: &ImageProcess) -> bool {
    if finding_path.contains('!') {
        return false;
    }
    let working_dir = process
        .working_dir
        .as_deref()
        .unwrap_or("/")
        .trim_end_matches('/');
    let python_path: Vec<&str> = process
        .env
        .iter()
        .filter_map(|entry| entry.strip_prefix("PYTHONPATH="))
        .flat_map(|value| value.split(':'))
        .map(|dir| dir.trim_end_matches('/'))
        .collect();
    let is_root = |root: &str| {
        root == working_dir
            || python_path.contains(&root)
            || root.ends_with("/site-packages")
            || root.ends_with("/dist-packages")
    };
    let package = module.split('.').next().unwrap_or(module);
    let module_file = module.replace('.', "/");
    let mut at = 0;
    while let Some(found) = finding_path[at..].find(&format!("/{package}")) {
        let start = at + found;
        let root = &finding_path[..start];
        let rest = &finding_path[start + 1..];
        let in_module =
            rest == format!("{module_file}.py") || rest.starts_with(&format!("{package}/"));
        if in_module && is_root(root) {
            return true;
        }
        at = start + 1;
    }
    false
}

/// Findings for the image's command when what it runs holds a finding of
/// `high` or more (present in the final image): every container starts it.
pub(crate) fn command_findings(image: &Image, findings: &[Finding]) -> Vec<Finding> {
    let process = &image.process;
    let mut out = Vec::new();
    for runs in what_it_runs(process) {
        let held = findings.iter().filter(|f| {
            f.status == Status::Present
                && f.severity >= Severity::High
                && !f.path.starts_with(IMAGE_CONFIG_PATH)
                && match &runs {
                    Runs::File(file) => matches_file(&f.path, file, process),
                    Runs::Module(module) => matches_module(&f.path, module, process),
                }
        });
        let Some(top) = held.max_by_key(|f| f.severity) else {
            continue;
        };
        let what = match &runs {
            Runs::File(file) => format!("runs {file}"),
            Runs::Module(module) => format!("runs the Python module {module}"),
        };
        let command = process.command();
        out.push(Finding {
            rule: IMAGE_CONFIG_RULE.to_string(),
            detector: "config".into(),
            severity: Severity::High,
            family: top.family.clone(),
            path: format!("{IMAGE_CONFIG_PATH}/{COMMAND_FIELD}"),
            status: Status::Present,
            layer: top.layer.clone(),
            sha256: None,
            size: command.join(" ").len() as u64,
            platform: top.platform.clone(),
            description: format!(
                "the image's command {what}, and {} holds {} ({}): every container of the image starts it",
                top.path, top.rule, top.severity
            ),
            suppression: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(entrypoint: &[&str], cmd: &[&str]) -> ImageProcess {
        ImageProcess {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            working_dir: Some("/app".into()),
            ..ImageProcess::default()
        }
    }

    fn file(path: &str) -> Runs {
        Runs::File(path.into())
    }

    #[test]
    fn reads_what_commands_run() {
        let module = |m: &str| Runs::Module(m.into());
        let cases: &[(&[&str], &[&str], Vec<Runs>)] = &[
            (
                &[],
                &["python3", "-m", "crypto_ylp.cli"],
                vec![module("crypto_ylp.cli")],
            ),
            (
                &["/usr/bin/python3.11", "-u", "-W", "ignore", "-m", "tool"],
                &[],
                vec![module("tool")],
            ),
            (
                &["python", "main.py", "--port", "80"],
                &[],
                vec![file("/app/main.py")],
            ),
            (&["python", "-c", "import x"], &[], vec![]),
            (&["kworker"], &["-c", "/etc/k.json"], vec![file("kworker")]),
            (
                &["/usr/bin/tini", "--"],
                &["./start.sh"],
                vec![file("/app/start.sh")],
            ),
            (
                &["sh", "-c"],
                &["cd /tmp && nohup ./x -o pool:3333 & exec python -m worker.run"],
                vec![file("cd"), file("/app/x"), module("worker.run")],
            ),
            (&["bash", "-c", "miner"], &[], vec![file("miner")]),
            (&["node", "-e", "require('x')"], &[], vec![]),
            (
                &["node", "--max-old-space-size=64", "/srv/index.js"],
                &[],
                vec![file("/srv/index.js")],
            ),
            (
                &["env", "A=1", "timeout", "60", "/opt/run"],
                &[],
                vec![file("/opt/run")],
            ),
        ];
        for (entrypoint, cmd, expected) in cases {
            assert_eq!(
                &what_it_runs(&process(entrypoint, cmd)),
                expected,
                "{entrypoint:?} {cmd:?}"
            );
        }
    }

    #[test]
    fn modules_are_found_where_python_imports_them() {
        let mut p = process(&[], &[]);
        p.env = vec!["PYTHONPATH=/opt/lib:/srv".into()];
        let site = "/usr/local/lib/python3.11/site-packages";
        assert!(matches_module(
            &format!("{site}/crypto_ylp/miner.py"),
            "crypto_ylp.cli",
            &p
        ));
        assert!(matches_module(&format!("{site}/tool.py"), "tool", &p));
        assert!(matches_module("/app/tool/__main__.py", "tool", &p));
        assert!(matches_module("/opt/lib/tool/x.py", "tool.y", &p));
        assert!(matches_module(
            "/usr/lib/python3/dist-packages/tool/a.py",
            "tool",
            &p
        ));
        // Not importable from there, or another package.
        assert!(!matches_module("/home/u/tool/a.py", "tool", &p));
        assert!(!matches_module(&format!("{site}/toolbox/a.py"), "tool", &p));
        assert!(!matches_module(
            &format!("{site}/other/tool.py"),
            "tool",
            &p
        ));
        assert!(!matches_module("/app/t.whl!/tool/a.py", "tool", &p));
    }

    #[test]
    fn programs_are_found_by_path_or_on_path() {
        let mut p = process(&[], &[]);
        assert!(matches_file("/usr/bin/kworker", "kworker", &p));
        assert!(matches_file("/usr/bin/kworker!upx-unpacked", "kworker", &p));
        assert!(matches_file("/app/x", "/app/x", &p));
        assert!(!matches_file("/usr/bin/kworker2", "kworker", &p));
        assert!(!matches_file("/opt/bin/kworker", "kworker", &p));
        p.env = vec!["PATH=/opt/bin".into()];
        assert!(matches_file("/opt/bin/kworker", "kworker", &p));
        assert!(!matches_file("/usr/bin/kworker", "kworker", &p));
    }
}
