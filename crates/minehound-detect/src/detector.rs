use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Error, FileKind, Severity, Signatures, elf};

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
pub const DETECTORS: &[&str] = &["yara", "sha256", "elf"];

/// Id of the finding for a file whose SHA-256 is in a hash list.
pub const KNOWN_HASH_RULE: &str = "MH-KNOWN-MINER-HASH";

/// Runs every detector on one file at a time. Cheap to make; one per worker
/// thread, since a yara-x scanner is not `Send`.
pub struct Detector<'s> {
    signatures: &'s Signatures,
    scanner: yara_x::Scanner<'s>,
}

impl<'s> Detector<'s> {
    /// A detector over shared, compiled signatures.
    pub fn new(signatures: &'s Signatures) -> Self {
        let mut scanner = yara_x::Scanner::new(&signatures.rules);
        // A crafted file must not hold a worker forever.
        scanner.set_timeout(Duration::from_secs(60));
        Detector {
            signatures,
            scanner,
        }
    }

    /// Checks one whole candidate file.
    pub fn check(&mut self, kind: FileKind, data: &[u8]) -> Result<Vec<Detection>, Error> {
        let digest = sha256(data);
        self.check_file(kind, data, Some(&digest))
    }

    /// Checks a file given its SHA-256, or `None` when `data` is only the start of
    /// a file too large to read whole: then only YARA runs, on what there is.
    pub fn check_file(
        &mut self,
        kind: FileKind,
        data: &[u8],
        digest: Option<&[u8; 32]>,
    ) -> Result<Vec<Detection>, Error> {
        let mut out = Vec::new();
        if let Some(entry) = digest.and_then(|d| self.signatures.hashes.get(d)) {
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
        if kind == FileKind::Elf && digest.is_some() {
            out.extend(elf::inspect(data));
        }
        let results = self.scanner.scan(data).map_err(Error::Scan)?;
        for rule in results.matching_rules() {
            let detection = match self.signatures.info(rule.namespace(), rule.identifier()) {
                Some(info) => Detection {
                    rule: info.id.clone(),
                    detector: "yara",
                    severity: info.severity,
                    family: info.family.clone(),
                    description: info.description.clone(),
                },
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
        Ok(out)
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
