//! The allowlist: findings a team has reviewed and accepted, each with a reason
//! and, if it should not last forever, an expiry date.
//!
//! ```yaml
//! # .minehound.yaml
//! allow:
//!   - rule: MH-RANDOMX-CODE-ELF
//!     path: /usr/lib/**/librandomx.so*
//!     reason: the image ships a Monero node on purpose
//!     expires: 2027-06-30
//!   - sha256: 3f0c9e...
//!     reason: vendored benchmark binary, reviewed in SEC-142
//! ```
//!
//! An entry names one or more of `rule`, `sha256` and `path` (a glob: `*` stays
//! inside one directory, `**` crosses them); a finding is covered when every
//! field the entry names matches. A `path` alone never covers a critical
//! finding: that takes the `rule` or the `sha256`. Suppressed findings stay in the report,
//! marked, and no longer count for the gate. An entry past its `expires` date
//! suppresses nothing, and the report says so.
//!
//! `minehound serve`'s admission webhook also reads entries that exempt whole
//! images by reference, which scans ignore:
//!
//! ```yaml
//!   - image: registry.example.com/bench/**   # a glob over registry/repository[:tag|@digest]
//!     reason: GPU benchmark images, reviewed in SEC-171
//!     expires: 2027-03-31
//!   - image: docker.io/acme/hashcat-bench
//!     digest: sha256:9f0c…                  # only an entry naming the digest
//!     reason: vendor image, reviewed         # excuses critical findings
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};
use jiff::civil::Date;
use serde::Deserialize;

use crate::{AllowlistSummary, ExpiredEntry, Report, Severity, Suppression};

/// A parsed allowlist file.
#[derive(Debug, Clone)]
pub struct Allowlist {
    file: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    /// An admission exemption of images by reference (see the module docs).
    image: Option<ImagePattern>,
    rule: Option<String>,
    sha256: Option<String>,
    path: Option<GlobMatcher>,
    reason: String,
    expires: Option<Date>,
}

/// An allowlist that cannot be used: the file, the line when known, and why.
#[derive(Debug)]
pub struct AllowlistError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the problem, when the parser knows it.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for AllowlistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for AllowlistError {}

/// The file as written; unknown keys are errors so a typo never widens or
/// narrows what is suppressed without anyone noticing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    allow: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone)]
struct ImagePattern {
    glob: GlobMatcher,
    digest: Option<String>,
}

/// An allowlist entry that exempts an image at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageExemption {
    /// Why the image is accepted.
    pub reason: String,
    /// `file:line` of the entry.
    pub entry: String,
    /// When the exemption ends, if it does.
    pub expires: Option<String>,
    /// Whether the entry names the image's digest, so that critical findings
    /// are excused too.
    pub covers_critical: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDoc {
    image: Option<String>,
    digest: Option<String>,
    rule: Option<String>,
    sha256: Option<String>,
    path: Option<String>,
    reason: String,
    expires: Option<String>,
}

impl Allowlist {
    /// Reads and checks an allowlist file.
    pub fn load(path: &Path) -> Result<Allowlist, AllowlistError> {
        let text = std::fs::read_to_string(path).map_err(|e| AllowlistError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Allowlist::parse(path, &text)
    }

    /// Parses allowlist `text`; `path` names it in errors and suppressions.
    pub fn parse(path: &Path, text: &str) -> Result<Allowlist, AllowlistError> {
        let error = |line: Option<usize>, message: String| AllowlistError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let yaml_error = |e: serde_yaml_ng::Error| {
            error(
                e.location().map(|l| l.line()),
                strip_location(&e.to_string()),
            )
        };
        let doc: FileDoc = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
        // serde_yaml_ng drops positions once a value is parsed, so entries are
        // found again in the text to name their lines.
        let (allow_line, starts) = entry_lines(text);
        // A list in flow style (`allow: [{...}]`) has no `-` items to find:
        // its entries are named by the `allow:` line.
        let starts_known = starts.len() == doc.allow.len();
        let mut entries = Vec::with_capacity(doc.allow.len());
        for (i, value) in doc.allow.into_iter().enumerate() {
            let line = if starts_known {
                starts.get(i).copied()
            } else {
                allow_line
            };
            let entry: EntryDoc = serde_yaml_ng::from_value(value)
                .map_err(|e| error(line, format!("entry {}: {}", i + 1, e)))?;
            entries.push(Entry::check(entry, line.unwrap_or(0)).map_err(|m| error(line, m))?);
        }
        Ok(Allowlist {
            file: path.display().to_string(),
            entries,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// [`Allowlist::apply`] as of today's date in local time.
    pub fn apply_today(&self, report: &mut Report) {
        self.apply(report, jiff::ZonedDateTime::now().date());
    }

    /// Marks the findings this allowlist covers as suppressed (as of `today`),
    /// records expired entries, and recounts the report.
    pub fn apply(&self, report: &mut Report, today: Date) {
        let summary = report
            .allowlist
            .get_or_insert_with(AllowlistSummary::default);
        summary.files.push(self.file.clone());
        for entry in &self.entries {
            if let Some(expires) = entry.expires
                && expires < today
            {
                summary.expired.push(ExpiredEntry {
                    entry: format!("{}:{}", self.file, entry.line),
                    reason: entry.reason.clone(),
                    expires: expires.to_string(),
                });
            }
        }
        for finding in report
            .findings
            .iter_mut()
            .filter(|f| f.suppression.is_none())
        {
            let covering =
                self.entries
                    .iter()
                    .filter(|e| e.image.is_none())
                    .find(|entry| {
                        // A path alone never excuses a critical finding: replacing
                        // the allowed file with a miner must not go unnoticed.
                        let path_only = entry.rule.is_none() && entry.sha256.is_none();
                        !(path_only && finding.severity == Severity::Critical)
                            && entry.expires.is_none_or(|d| d >= today)
                            && entry.rule.as_ref().is_none_or(|r| r == &finding.rule)
                            && entry
                                .sha256
                                .as_ref()
                                .is_none_or(|h| finding.sha256.as_deref().map(bare_hex) == Some(h))
                            && entry.path.as_ref().is_none_or(|glob| {
                                glob.is_match(finding.path.trim_start_matches('/'))
                            })
                    });
            if let Some(entry) = covering {
                finding.suppression = Some(Suppression {
                    reason: entry.reason.clone(),
                    entry: format!("{}:{}", self.file, entry.line),
                    expires: entry.expires.map(|d| d.to_string()),
                });
                summary.suppressed += 1;
            }
        }
        report.finish();
    }

    /// The first unexpired `image:` entry (as of `today`) whose pattern
    /// matches the image `name` (`registry/repository`, normalised as
    /// `docker pull` does) or its `reference` (with its tag or digest).
    /// `digest` is the manifest digest the reference resolved to, when known:
    /// an entry that names a digest covers only that digest.
    pub fn image_exemption(
        &self,
        name: &str,
        reference: &str,
        digest: Option<&str>,
        today: Date,
    ) -> Option<ImageExemption> {
        self.entries.iter().find_map(|entry| {
            let pattern = entry.image.as_ref()?;
            let matches = pattern.glob.is_match(name) || pattern.glob.is_match(reference);
            let unexpired = entry.expires.is_none_or(|d| d >= today);
            let digest_ok = pattern.digest.as_deref().is_none_or(|d| Some(d) == digest);
            (matches && unexpired && digest_ok).then(|| ImageExemption {
                reason: entry.reason.clone(),
                entry: format!("{}:{}", self.file, entry.line),
                expires: entry.expires.map(|d| d.to_string()),
                covers_critical: pattern.digest.is_some(),
            })
        })
    }
}

impl Entry {
    fn check(doc: EntryDoc, line: usize) -> Result<Entry, String> {
        if doc.reason.trim().is_empty() {
            return Err("`reason` must say why the finding is accepted".into());
        }
        let image = match (doc.image, doc.digest) {
            (Some(_), _) if doc.rule.is_some() || doc.sha256.is_some() || doc.path.is_some() => {
                return Err(
                    "an `image` entry exempts whole images at admission; it takes no `rule`, `sha256` or `path`"
                        .into(),
                );
            }
            (Some(pattern), digest) => {
                let digest = match digest {
                    Some(d) if !is_sha256_digest(&d) => {
                        return Err(format!("`digest` {d:?} is not sha256: and 64 hex digits"));
                    }
                    d => d.map(|d| d.to_ascii_lowercase()),
                };
                Some(ImagePattern {
                    glob: glob("image", pattern.trim())?,
                    digest,
                })
            }
            (None, Some(_)) => return Err("`digest` goes with an `image` entry".into()),
            (None, None) => None,
        };
        if image.is_none() && doc.rule.is_none() && doc.sha256.is_none() && doc.path.is_none() {
            return Err("an entry needs at least one of `rule`, `sha256`, `path`, `image`".into());
        }
        let sha256 = match doc.sha256 {
            Some(h) => {
                let hex = bare_hex(&h).to_ascii_lowercase();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("`sha256` {h:?} is not 64 hex digits"));
                }
                Some(hex)
            }
            None => None,
        };
        let path = match doc.path {
            Some(p) => Some(glob("path", p.trim_start_matches('/'))?),
            None => None,
        };
        let expires = match doc.expires {
            Some(d) => Some(
                d.parse::<Date>()
                    .map_err(|e| format!("`expires` {d:?} is not a date like 2027-01-31: {e}"))?,
            ),
            None => None,
        };
        Ok(Entry {
            line,
            image,
            rule: doc.rule,
            sha256,
            path,
            reason: doc.reason,
            expires,
        })
    }
}

fn glob(field: &str, pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g: Glob| g.compile_matcher())
        .map_err(|e| format!("`{field}` {pattern:?} is not a glob: {e}"))
}

fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn bare_hex(h: &str) -> &str {
    h.strip_prefix("sha256:").unwrap_or(h)
}

/// serde_yaml_ng writes " at line L column C" into its messages; the error
/// prints the line itself.
fn strip_location(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_string();
    };
    let rest = &message[start + " at line ".len()..];
    let after_numbers = rest
        .find(|c: char| {
            !(c.is_ascii_digit() || c == ' ' || c.is_ascii_alphabetic() && "column".contains(c))
        })
        .unwrap_or(rest.len());
    format!("{}{}", &message[..start], &rest[after_numbers..])
}

/// The 1-based line of the top-level `allow:` key, and the lines where the
/// items of its list start: lines whose first non-blank character is `-` at
/// the list's indentation.
fn entry_lines(text: &str) -> (Option<usize>, Vec<usize>) {
    let mut allow_line = None;
    let mut lines = Vec::new();
    let mut in_allow = false;
    let mut indent = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        if depth == 0 && !trimmed.starts_with('-') {
            in_allow = trimmed.starts_with("allow:");
            if in_allow {
                allow_line = Some(n + 1);
            }
            continue;
        }
        if in_allow && trimmed.starts_with('-') && *indent.get_or_insert(depth) == depth {
            lines.push(n + 1);
        }
    }
    (allow_line, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Finding, LayerRef, Severity, Status};

    fn finding(rule: &str, path: &str, sha: char) -> Finding {
        Finding {
            rule: rule.into(),
            detector: "yara".into(),
            severity: Severity::Critical,
            family: None,
            path: path.into(),
            status: Status::Present,
            layer: LayerRef {
                index: 0,
                digest: None,
                created_by: None,
            },
            sha256: Some(sha.to_string().repeat(64)),
            size: 1,
            platform: None,
            description: String::new(),
            suppression: None,
        }
    }

    fn report() -> Report {
        let mut r = Report::new("t");
        r.findings
            .push(finding("MH-XMRIG-ELF", "/usr/bin/xmrig", 'a'));
        r.findings.push(finding(
            "MH-RANDOMX-CODE-ELF",
            "/usr/lib/librandomx.so.0",
            'b',
        ));
        r.findings
            .push(finding("MH-MINER-CONFIG", "/opt/app/config.json", 'c'));
        r.finish();
        r
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn image_entries_exempt_images_at_admission_only() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let text = format!(
            "allow:\n  - image: registry.example.com/bench/**\n    reason: reviewed\n    expires: 2027-03-31\n  - image: docker.io/acme/tool\n    digest: {digest}\n    reason: vendor image\n"
        );
        let list = Allowlist::parse(Path::new("a.yaml"), &text).unwrap();
        let day = |d: &str| d.parse::<Date>().unwrap();
        let bench = list
            .image_exemption(
                "registry.example.com/bench/gpu",
                "registry.example.com/bench/gpu:1",
                None,
                day("2027-01-01"),
            )
            .unwrap();
        assert_eq!(
            (bench.entry.as_str(), bench.covers_critical),
            ("a.yaml:2", false)
        );
        // Expired, another repository, or a digest the entry does not name.
        assert!(
            list.image_exemption(
                "registry.example.com/bench/gpu",
                "x",
                None,
                day("2027-04-01")
            )
            .is_none()
        );
        assert!(
            list.image_exemption("registry.example.com/other", "x", None, day("2027-01-01"))
                .is_none()
        );
        assert!(
            list.image_exemption(
                "docker.io/acme/tool",
                "docker.io/acme/tool:1",
                None,
                day("2027-01-01")
            )
            .is_none()
        );
        let pinned = list
            .image_exemption(
                "docker.io/acme/tool",
                "docker.io/acme/tool:1",
                Some(&digest),
                day("2027-01-01"),
            )
            .unwrap();
        assert!(pinned.covers_critical);
        // Scans ignore image entries.
        assert_eq!(list.len(), 2);
        for bad in [
            "allow:\n  - image: a/b\n    rule: X\n    reason: r\n",
            "allow:\n  - digest: sha256:abc\n    reason: r\n",
            "allow:\n  - image: a/b\n    digest: latest\n    reason: r\n",
        ] {
            assert!(Allowlist::parse(Path::new("a.yaml"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_by_rule_path_and_hash_and_keeps_suppressed_findings() {
        let list = Allowlist::parse(
            Path::new(".minehound.yaml"),
            "allow:\n\
             \x20 - rule: MH-RANDOMX-CODE-ELF\n\
             \x20   path: /usr/lib/*.so.*\n\
             \x20   reason: ships a Monero node\n\
             \x20 - sha256: sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n\
             \x20   reason: reviewed config\n\
             \x20 - rule: MH-XMRIG-ELF\n\
             \x20   path: /opt/**\n\
             \x20   reason: does not match /usr/bin\n\
             \x20 - path: /usr/bin/*\n\
             \x20   reason: a path alone does not excuse a critical finding\n",
        )
        .unwrap();
        let mut r = report();
        list.apply(&mut r, day("2026-11-27"));
        assert_eq!(r.findings.len(), 3, "suppressed findings stay");
        let by_rule = |id: &str| r.findings.iter().find(|f| f.rule == id).unwrap();
        let s = by_rule("MH-RANDOMX-CODE-ELF").suppression.as_ref().unwrap();
        assert_eq!(s.entry, ".minehound.yaml:2");
        assert_eq!(s.reason, "ships a Monero node");
        assert_eq!(
            by_rule("MH-MINER-CONFIG")
                .suppression
                .as_ref()
                .unwrap()
                .entry,
            ".minehound.yaml:5"
        );
        assert!(by_rule("MH-XMRIG-ELF").suppression.is_none());
        assert_eq!(r.allowlist.as_ref().unwrap().suppressed, 2);
        assert_eq!(r.stats.findings.critical, 1);
        assert!(r.fails(Severity::Critical));
    }

    #[test]
    fn expired_entries_stop_suppressing_and_say_so() {
        let list = Allowlist::parse(
            Path::new("a.yaml"),
            "allow:\n- rule: MH-XMRIG-ELF\n  reason: lab image\n  expires: 2026-11-26\n",
        )
        .unwrap();
        let mut r = report();
        list.apply(&mut r, day("2026-11-26"));
        let xmrig = r
            .findings
            .iter()
            .find(|f| f.rule == "MH-XMRIG-ELF")
            .unwrap();
        assert!(xmrig.suppression.is_some(), "valid through its day");
        assert_eq!(r.stats.findings.critical, 2);

        let mut r = report();
        list.apply(&mut r, day("2026-11-27"));
        assert!(r.findings.iter().all(|f| f.suppression.is_none()));
        let expired = &r.allowlist.as_ref().unwrap().expired;
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].entry, "a.yaml:2");
        assert_eq!(expired[0].expires, "2026-11-26");
        assert!(r.fails(Severity::Critical));
    }

    #[test]
    fn malformed_files_name_the_file_and_line() {
        let cases = [
            ("allow:\n  - rule: X\n", 2, "reason"),
            ("allow:\n  - rule: X\n    reason: ''\n", 2, "reason"),
            ("allow:\n  - reason: why\n", 2, "at least one"),
            (
                "allow:\n  - rule: A\n    reason: ok\n  - rule: X\n    reasn: typo\n",
                4,
                "unknown field",
            ),
            ("allow:\n  - sha256: abc\n    reason: r\n", 2, "64 hex"),
            (
                "allow:\n  - rule: X\n    reason: r\n    expires: soon\n",
                2,
                "date",
            ),
            ("allow:\n  - path: '[x'\n    reason: r\n", 2, "glob"),
            ("allow:\n  - rule: [unclosed\n", 3, "flow sequence"),
            ("alow: []\n", 1, "unknown field"),
            ("# flow style\nallow: [{rule: X}]\n", 2, "reason"),
        ];
        for (text, line, needle) in cases {
            let err = Allowlist::parse(Path::new("ci/allow.yaml"), text).unwrap_err();
            assert_eq!(err.line, Some(line), "{text:?}: {err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("ci/allow.yaml:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(needle), "{text:?}: {shown}");
        }
    }
}
