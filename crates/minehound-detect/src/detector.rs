use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Confirm, Error, FileKind, Severity, Signatures, elf, monero};

/// One rule that matched one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// Stable rule id.
    pub rule: String,
    /// `yara`, `sha256` or `elf`.
    pub detector: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// Miner family, when known.
    pub family: Option<String>,
    /// What was found.
    pub description: String,
}

/// Every value of [`Detection::detector`].
pub const DETECTORS: &[&str] = &["yara", "sha256", "elf", "path", "config"];

/// One YARA rule that matched, with the strings that made it match: what
/// `minehound rules check` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Stable rule id.
    pub rule: String,
    /// Severity the rule gives.
    pub severity: Severity,
    /// The file the rule comes from.
    pub origin: String,
    /// `None` when the rule needs no check in code; else whether a match
    /// passed it (an unconfirmed rule produces no finding in a scan).
    pub confirmed: Option<bool>,
    /// Every pattern match.
    pub strings: Vec<StringMatch>,
}

/// One match of one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringMatch {
    /// Pattern identifier, such as `$opt1`.
    pub identifier: String,
    /// Offset in the file.
    pub offset: usize,
    /// Length of the match.
    pub length: usize,
    /// The first bytes of the match (at most [`EXCERPT_LEN`]).
    pub excerpt: Vec<u8>,
}

/// Bytes of a match kept in [`StringMatch::excerpt`].
pub const EXCERPT_LEN: usize = 64;

/// Id of the finding for a file whose SHA-256 is in a hash list.
pub const KNOWN_HASH_RULE: &str = "MH-KNOWN-MINER-HASH";

/// Id of a finding in the image config (`Entrypoint`, `Cmd`, `Env`, history):
/// the text rules run on the config, and what they find at medium or above
/// is reported under this id at `high` or above.
pub const IMAGE_CONFIG_RULE: &str = "MH-IMAGE-CONFIG-MINER";

/// Id of a finding in how a container is launched (a Kubernetes container's
/// `command`, `args`, `env`, exec hooks and probes): the same text rules as the
/// image config, reported under this id at `high` or above.
pub const LAUNCH_RULE: &str = "MH-LAUNCH-MINER";

/// How long the rules may run on one file unless told otherwise.
pub const DEFAULT_FILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every detector on one file at a time. Cheap to make; one per worker
/// thread, since a yara-x scanner is not `Send`.
pub struct Detector<'s> {
    signatures: &'s Signatures,
    scanner: yara_x::Scanner<'s>,
    timeout: Duration,
    stage: Stage,
}

/// The part of a detector at work on a file: what an internal error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not checking a file.
    Idle,
    /// Hashing the file and looking it up in the hash lists.
    HashList,
    /// Parsing an ELF file (goblin) and its heuristics.
    ElfParser,
    /// The YARA rules (yara-x).
    RulesEngine,
    /// The checks the rules' matches go through in code.
    MatchCheck,
}

impl Stage {
    /// The component's name, as reports give it.
    pub fn component(self) -> &'static str {
        match self {
            Stage::Idle => "detector",
            Stage::HashList => "hash list lookup",
            Stage::ElfParser => "ELF parser",
            Stage::RulesEngine => "rules engine",
            Stage::MatchCheck => "match checks",
        }
    }
}

impl<'s> Detector<'s> {
    /// A detector over shared, compiled signatures, whose rules may run
    /// [`DEFAULT_FILE_TIMEOUT`] on one file.
    pub fn new(signatures: &'s Signatures) -> Self {
        Self::with_timeout(signatures, DEFAULT_FILE_TIMEOUT)
    }

    /// A detector whose rules give up on a file after `timeout`: a crafted
    /// file must not hold a worker for long. The check then fails with an
    /// error for which [`Error::is_timeout`] holds.
    pub fn with_timeout(signatures: &'s Signatures, timeout: Duration) -> Self {
        Detector {
            signatures,
            scanner: rules_scanner(signatures, timeout),
            timeout,
            stage: Stage::Idle,
        }
    }

    /// How long the rules may run on one file.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where the last check was when it returned or unwound: after a panic,
    /// the component that panicked.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Starts afresh after a check unwound (a panic caught by the caller):
    /// the rules engine's state is not trusted past a panic inside it.
    pub fn reset(&mut self) {
        self.scanner = rules_scanner(self.signatures, self.timeout);
        self.stage = Stage::Idle;
    }

    /// Checks one whole candidate file.
    pub fn check(&mut self, kind: FileKind, data: &[u8]) -> Result<Vec<Detection>, Error> {
        self.check_file(kind, data, true)
            .map(|checked| checked.detections)
    }

    /// Checks a file. `whole` is false when `data` is only the start of a file
    /// too large to read whole (or not a file): then only YARA runs, on what
    /// there is. A whole file is hashed only when a hash list entry has its
    /// size, since hashing every file costs as much as inflating it.
    pub fn check_file(
        &mut self,
        kind: FileKind,
        data: &[u8],
        whole: bool,
    ) -> Result<CheckedFile, Error> {
        let mut out = Vec::new();
        let hashes = &self.signatures.hashes;
        self.stage = Stage::HashList;
        crate::fault::inject(self.stage.component(), data);
        let digest = (whole && hashes.may_hold_size(data.len() as u64)).then(|| sha256(data));
        if let Some(entry) = digest.as_ref().and_then(|d| hashes.get(d)) {
            out.push(Detection {
                rule: KNOWN_HASH_RULE.to_string(),
                detector: "sha256",
                severity: entry.severity,
                family: Some(entry.family.clone()),
                description: format!(
                    "known miner build: {} (source: {})",
                    entry.name, entry.source
                ),
            });
        }
        if kind == FileKind::Elf && whole {
            self.stage = Stage::ElfParser;
            crate::fault::inject(self.stage.component(), data);
            out.extend(elf::inspect(data));
        }
        self.stage = Stage::RulesEngine;
        crate::fault::inject(self.stage.component(), data);
        let results = self.scanner.scan(data).map_err(Error::Scan)?;
        self.stage = Stage::MatchCheck;
        for rule in results.matching_rules() {
            let detection = match self.signatures.info(rule.namespace(), rule.identifier()) {
                Some(info) => {
                    let mut description = info.description.clone();
                    if let Some(check) = info.confirm {
                        match confirmed(check, &rule) {
                            Some(what) => description = format!("{description} Found: {what}."),
                            // An unconfirmed candidate is no finding.
                            None => continue,
                        }
                    }
                    Detection {
                        rule: info.id.clone(),
                        detector: "yara",
                        severity: info.severity,
                        family: info.family.clone(),
                        description,
                    }
                }
                None => Detection {
                    rule: rule.identifier().to_string(),
                    detector: "yara",
                    severity: Severity::High,
                    family: None,
                    description: rule.identifier().to_string(),
                },
            };
            out.push(detection);
        }
        self.stage = Stage::Idle;
        Ok(CheckedFile {
            detections: out,
            sha256: digest,
        })
    }
}

/// A yara-x scanner over `signatures` with a time limit per scan.
fn rules_scanner<'s>(signatures: &'s Signatures, timeout: Duration) -> yara_x::Scanner<'s> {
    let mut scanner = yara_x::Scanner::new(&signatures.rules);
    scanner.set_timeout(timeout);
    scanner
}

/// What [`Detector::check_file`] found in one file.
#[derive(Debug, Clone, Default)]
pub struct CheckedFile {
    /// Every detection, hash list, ELF and YARA.
    pub detections: Vec<Detection>,
    /// The file's SHA-256, when checking it needed one.
    pub sha256: Option<[u8; 32]>,
}

impl Detector<'_> {
    /// Every YARA rule that matches `data`, with its matching strings.
    pub fn rule_matches(&mut self, data: &[u8]) -> Result<Vec<RuleMatch>, Error> {
        let results = self.scanner.scan(data).map_err(Error::Scan)?;
        let mut out = Vec::new();
        for rule in results.matching_rules() {
            let info = self.signatures.info(rule.namespace(), rule.identifier());
            let strings = rule
                .patterns()
                .flat_map(|p| {
                    let identifier = p.identifier().to_string();
                    p.matches().map(move |m| StringMatch {
                        identifier: identifier.clone(),
                        offset: m.range().start,
                        length: m.range().len(),
                        excerpt: m.data()[..m.data().len().min(EXCERPT_LEN)].to_vec(),
                    })
                })
                .collect();
            out.push(RuleMatch {
                rule: info.map_or_else(|| rule.identifier().to_string(), |i| i.id.clone()),
                severity: info.map_or(Severity::High, |i| i.severity),
                origin: info.map(|i| i.origin.clone()).unwrap_or_default(),
                confirmed: info
                    .and_then(|i| i.confirm)
                    .map(|check| confirmed(check, &rule).is_some()),
                strings,
            });
        }
        Ok(out)
    }
}

/// What a confirmed match found, or `None` when no candidate passes the check.
fn confirmed(check: Confirm, rule: &yara_x::Rule<'_, '_>) -> Option<String> {
    match check {
        Confirm::MoneroAddress => rule
            .patterns()
            .filter(|p| p.identifier().starts_with("$addr"))
            .flat_map(|p| p.matches())
            .find_map(|m| {
                let text = std::str::from_utf8(m.data()).ok()?;
                let address = monero::parse_address(text)?;
                Some(format!("{address} {text}"))
            }),
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of `data` as lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

#[cfg(test)]
mod tests;
