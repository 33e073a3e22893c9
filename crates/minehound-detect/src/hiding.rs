//! Where a file sits as supporting evidence: names and directories that
//! miners hide behind. Alone at most `low`; beside other evidence it raises
//! the verdict, since ordinary software has no business there.

use crate::{Detection, FileKind, Severity};

/// Id of a finding for an executable in a hiding place.
pub const HIDDEN_PATH_RULE: &str = "MH-HIDDEN-PATH";

/// File names of kernel threads and known miner drops: no real file has them.
const NAMES: &[&str] = &[
    "kdevtmpfsi",
    "kthreaddi",
    "kthreaddk",
    "kswapd0",
    "kinsing",
    "kworkerds",
    "khugepageds",
];

/// Why `path` is a hiding place, if it is one.
pub fn hiding_place(path: &str) -> Option<&'static str> {
    // A nested member hides where its outer file does, and by its own name.
    let outer = path.split('!').next().unwrap_or(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    if NAMES.contains(&name) {
        return Some("named like a kernel thread or a known miner drop");
    }
    if name.starts_with("[kworker") || (name.starts_with('[') && name.ends_with(']')) {
        return Some("named like a kernel thread in brackets ([kworker/...])");
    }
    let dirs: Vec<&str> = outer.trim_start_matches('/').split('/').collect();
    let dirs = &dirs[..dirs.len().saturating_sub(1)];
    match dirs {
        ["tmp", ".X11-unix" | ".ICE-unix" | ".font-unix", ..] => {
            Some("in an X11/ICE socket directory under /tmp")
        }
        ["dev", "shm", ..] => Some("in /dev/shm, a memory file system"),
        ["tmp" | "var", ..] if hidden_under_tmp(dirs) => {
            Some("in a hidden directory under /tmp or /var/tmp")
        }
        _ => None,
    }
}

fn hidden_under_tmp(dirs: &[&str]) -> bool {
    let rest = match dirs {
        ["tmp", rest @ ..] | ["var", "tmp", rest @ ..] => rest,
        _ => return false,
    };
    rest.iter()
        .any(|d| d.starts_with('.') && *d != "." && *d != "..")
}

/// The hiding-place finding for a file, given what else was found in it:
/// `low` alone (for ELF files and scripts only), `high` when the file also
/// carries medium or stronger evidence.
pub fn hidden_path(path: &str, kind: FileKind, other: &[Detection]) -> Option<Detection> {
    let why = hiding_place(path)?;
    let strongest = other.iter().map(|d| d.severity).max();
    let severity = match strongest {
        Some(s) if s >= Severity::Medium => Severity::High,
        _ if matches!(kind, FileKind::Elf | FileKind::Script) => Severity::Low,
        _ => return None,
    };
    Some(Detection {
        rule: HIDDEN_PATH_RULE.to_string(),
        detector: "path",
        severity,
        family: Some("miner-hiding".to_string()),
        description: format!(
            "executable {why}: where miner droppers hide their binaries{}",
            if severity == Severity::High {
                "; together with the other evidence in this file, a miner set up to hide"
            } else {
                ""
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_places_and_ordinary_paths() {
        for path in [
            "/tmp/.X11-unix/x",
            "/dev/shm/.x/run",
            "/var/tmp/.cache/kx",
            "/tmp/.a/b",
            "/usr/sbin/kswapd0",
            "/usr/bin/[kworker]",
            "/opt/a.tgz!/kdevtmpfsi",
        ] {
            assert!(hiding_place(path).is_some(), "{path}");
        }
        for path in [
            "/usr/bin/ls",
            "/tmp/x",
            "/var/lib/.hidden/x",
            "/home/u/.local/bin/tool",
            "/usr/lib/python3/dist-packages/kswapd0.py",
        ] {
            assert!(hiding_place(path).is_none(), "{path}");
        }
    }

    #[test]
    fn alone_low_with_evidence_high() {
        let medium = Detection {
            rule: "X".into(),
            detector: "yara",
            severity: Severity::Medium,
            family: None,
            description: String::new(),
        };
        let p = "/tmp/.X11-unix/x";
        assert_eq!(
            hidden_path(p, FileKind::Elf, &[]).map(|d| d.severity),
            Some(Severity::Low)
        );
        assert_eq!(hidden_path(p, FileKind::Other, &[]), None);
        assert_eq!(
            hidden_path(p, FileKind::Other, &[medium]).map(|d| d.severity),
            Some(Severity::High)
        );
        assert_eq!(hidden_path("/usr/bin/x", FileKind::Elf, &[]), None);
    }
}
