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
    "tini",
    "dumb-init",
    "catatonit",
    "stdbuf",
    "numactl",
    "cpulimit",
    "setpriv",
    "chpst",
    "npx",
    "--",
];

/// Runners of a project's environment: `uv run`, `poetry run`, …
const RUNNERS: &[&str] = &["uv", "poetry", "pipenv", "pdm", "hatch", "rye"];

/// Wrappers whose first operand is not the program (a user, a root, a
/// duration, a lock file).
const WRAPPERS_WITH_OPERAND: &[&str] = &[
    "gosu",
    "su-exec",
    "s6-setuidgid",
    "chroot",
    "runuser",
    "timeout",
    "flock",
    "taskset",
];

/// Findings about data rather than something that runs: a command running
/// a package that holds a miner's config is not evidence that it mines.
const DATA_FAMILIES: &[&str] = &["miner-config", "monero-wallet"];

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
    // An entrypoint script usually ends in `exec "$@"`: the `Cmd` is then a
    // command of its own.
    let cmd: Vec<&str> = process.cmd.iter().map(String::as_str).collect();
    // (Not when it is the entrypoint's options or `sh -c`'s script.)
    let is_program = |word: &&str| !word.starts_with('-') && !word.contains(char::is_whitespace);
    let cmd_alone = (process
        .entrypoint
        .last()
        .is_some_and(|last| !is_inline_flag(last))
        && cmd.first().is_some_and(is_program))
    .then_some(cmd);
    let mut out = Vec::new();
    for command in commands(&words)
        .into_iter()
        .chain(cmd_alone.iter().flat_map(|cmd| commands(cmd)))
    {
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
        if !(in_shell && is_inline_flag(word)) {
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

/// `-c` and shells' combined flags ending with it (`-lc`, `-ec`, `-xec`),
/// and `-e` (inline code for node, perl, ruby).
fn is_inline_flag(word: &str) -> bool {
    word.strip_prefix('-').is_some_and(|flags| {
        !flags.is_empty()
            && flags.chars().all(|c| c.is_ascii_alphabetic())
            && (flags.ends_with('c') || flags == "e")
    })
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
        let name = base_name(word);
        if assignment || word.starts_with('-') || WRAPPERS.contains(&name) {
            words.next();
        } else if RUNNERS.contains(&name) {
            words.next();
            words.next_if_eq(&"run");
        } else if WRAPPERS_WITH_OPERAND.contains(&name) {
            words.next();
            // Its options, then the operand that is not the program.
            while words.peek().is_some_and(|w| w.starts_with('-')) {
                words.next();
            }
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
                // Inline code runs no file.
                "-c" => return None,
                // Options that take a value: skip it.
                "-W" | "-X" => {
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
            .take_while(|word| !is_inline_flag(word))
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

/// The file a program word names: as given when absolute, else the first
/// directory of the image's `PATH` that holds it (`exists` says what the
/// final image holds), as the shell looks it up.
fn program_path(
    file: &str,
    process: &ImageProcess,
    exists: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if file.starts_with('/') {
        return Some(file.to_string());
    }
    path_dirs(process)
        .iter()
        .map(|dir| format!("{}/{file}", dir.trim_end_matches('/')))
        .find(|path| exists(path))
}

/// Whether a finding at `finding_path` is in the file at `path` (or in what
/// that file holds: a member of it, what it unpacks to).
fn in_file(finding_path: &str, path: &str) -> bool {
    finding_path == path
        || finding_path
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('!'))
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

/// The finding for the image's command when what it runs holds a finding
/// of `high` or more about something that runs (not a config or a wallet),
/// present in the final image: every container starts it. `exists` says
/// whether the final image holds a path (for `PATH` look-ups). The finding
/// carries that file's SHA-256, so an allowlist entry for the file by hash
/// covers it too.
pub(crate) fn command_finding(
    image: &Image,
    findings: &[Finding],
    exists: &dyn Fn(&str) -> bool,
) -> Option<Finding> {
    let process = &image.process;
    let mut strongest: Option<(&Finding, String)> = None;
    for runs in what_it_runs(process) {
        let (what, program) = match &runs {
            Runs::File(file) => {
                let Some(path) = program_path(file, process, exists) else {
                    continue;
                };
                (format!("runs {path}"), Some(path))
            }
            Runs::Module(module) => (format!("runs the Python module {module}"), None),
        };
        let held = findings.iter().filter(|f| {
            f.status == Status::Present
                && f.severity >= Severity::High
                && !f.path.starts_with(IMAGE_CONFIG_PATH)
                && f.family
                    .as_deref()
                    .is_none_or(|family| !DATA_FAMILIES.contains(&family))
                && match (&runs, &program) {
                    (Runs::File(_), Some(path)) => in_file(&f.path, path),
                    (Runs::Module(module), _) => matches_module(&f.path, module, process),
                    (Runs::File(_), None) => false,
                }
        });
        if let Some(top) = held.max_by_key(|f| f.severity)
            && strongest
                .as_ref()
                .is_none_or(|(best, _)| top.severity > best.severity)
        {
            strongest = Some((top, what));
        }
    }
    let (top, what) = strongest?;
    Some(Finding {
        rule: IMAGE_CONFIG_RULE.to_string(),
        detector: "config".into(),
        severity: Severity::High,
        family: top.family.clone(),
        path: format!("{IMAGE_CONFIG_PATH}/{COMMAND_FIELD}"),
        status: Status::Present,
        layer: top.layer.clone(),
        sha256: top.sha256.clone(),
        size: process.command().join(" ").len() as u64,
        platform: top.platform.clone(),
        description: format!(
            "the image's command {what}, and {} holds {} ({}): every container of the image starts it",
            top.path, top.rule, top.severity
        ),
        suppression: None,
    })
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
            (&["python3", "-c", "import x", "/app/data.py"], &[], vec![]),
            // An entrypoint script that ends in `exec "$@"`, then the Cmd.
            (
                &["/docker-entrypoint.sh"],
                &["kworker", "-c", "/etc/k.json"],
                vec![file("/docker-entrypoint.sh"), file("kworker")],
            ),
            (
                &["bash", "-lc", "exec miner --threads 4"],
                &[],
                vec![file("miner")],
            ),
            (
                &["gosu", "app", "python", "-m", "svc.main"],
                &[],
                vec![module("svc.main")],
            ),
            (
                &["uv", "run", "python", "-m", "svc.main"],
                &[],
                vec![module("svc.main")],
            ),
            (&["timeout", "1h", "/opt/run"], &[], vec![file("/opt/run")]),
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
        let image_holds = |paths: &'static [&'static str]| move |path: &str| paths.contains(&path);
        let both = image_holds(&[
            "/usr/bin/kworker",
            "/usr/local/bin/kworker",
            "/opt/bin/kworker",
        ]);
        // The first PATH entry that holds it, as the shell finds it.
        assert_eq!(
            program_path("kworker", &p, &both).as_deref(),
            Some("/usr/local/bin/kworker")
        );
        let one = image_holds(&["/usr/bin/kworker"]);
        assert_eq!(
            program_path("kworker", &p, &one).as_deref(),
            Some("/usr/bin/kworker")
        );
        assert_eq!(program_path("/app/x", &p, &one).as_deref(), Some("/app/x"));
        assert_eq!(program_path("kworker2", &p, &one), None);
        p.env = vec!["PATH=/opt/bin".into()];
        assert_eq!(
            program_path("kworker", &p, &both).as_deref(),
            Some("/opt/bin/kworker")
        );
        assert_eq!(program_path("kworker", &p, &one), None);
        assert!(in_file("/usr/bin/kworker!upx-unpacked", "/usr/bin/kworker"));
        assert!(!in_file("/usr/bin/kworker2", "/usr/bin/kworker"));
    }
}
