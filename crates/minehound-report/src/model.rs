use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{SCHEMA_VERSION, Severity};

/// The result of one scan: every image of the target, every finding, every file
/// that could not be fully read, and counts that add up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Version of this JSON schema.
    pub schema_version: u32,
    /// The tool that wrote the report.
    pub tool: Tool,
    /// The target as the user named it.
    pub target: String,
    /// The signature set the scan used.
    pub signatures: SignatureSet,
    /// Every image (one per platform) that was scanned.
    pub images: Vec<ImageSummary>,
    /// What was found, most severe first.
    pub findings: Vec<Finding>,
    /// Files not fully scanned, each with its reason.
    pub skipped: Vec<Skipped>,
    /// Counts over all images.
    pub stats: Stats,
    /// The allowlist applied to the findings, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<AllowlistSummary>,
}

/// What an allowlist did to a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowlistSummary {
    /// The allowlist files applied.
    pub files: Vec<String>,
    /// Findings marked suppressed.
    pub suppressed: u64,
    /// Entries past their expiry date: they no longer suppress anything.
    pub expired: Vec<ExpiredEntry>,
}

/// An allowlist entry whose expiry date has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpiredEntry {
    /// `FILE:LINE` of the entry.
    pub entry: String,
    /// The entry's reason.
    pub reason: String,
    /// Its expiry date, `YYYY-MM-DD`.
    pub expires: String,
}

/// Why a finding does not count against the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Suppression {
    /// The reason the allowlist entry gives.
    pub reason: String,
    /// `FILE:LINE` of the allowlist entry that matched.
    pub entry: String,
    /// The entry's expiry date, `YYYY-MM-DD`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// Name and version of the scanner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    /// Always `minehound`.
    pub name: String,
    /// The engine version.
    pub version: String,
}

/// Which signatures a scan ran with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignatureSet {
    /// Version of the bundled set (`signatures/VERSION`), or `none` without it.
    pub version: String,
    /// Whether the bundled rules and hashes were used.
    pub bundled: bool,
    /// Number of YARA rules compiled.
    pub rules: usize,
    /// Number of SHA-256 entries.
    pub hashes: usize,
    /// User rule and hash files added with `--rules` / `--hashes`.
    pub extra_files: Vec<String>,
}

/// One image of the target: one platform's manifest and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageSummary {
    /// Tag or name the image was found under, if any.
    pub reference: Option<String>,
    /// Digest of the image manifest (absent for `dir:` and single files).
    pub manifest_digest: Option<String>,
    /// Digest of the image config.
    pub config_digest: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    /// The layers, bottom first.
    pub layers: Vec<LayerSummary>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LayerSummary {
    /// Position in the image, 0 = bottom.
    pub index: usize,
    /// Digest of the layer blob as stored.
    pub digest: Option<String>,
    /// Digest of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Option<String>,
    /// Media type as the manifest gives it.
    pub media_type: Option<String>,
    /// Stored (compressed) size in bytes.
    pub size: u64,
    /// Uncompressed size in bytes.
    pub uncompressed_size: u64,
    /// Number of regular files in the layer.
    pub files: u64,
    /// The history line that made the layer (`created_by`).
    pub created_by: Option<String>,
}

/// Where a finding sits: which layer of which image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LayerRef {
    /// Position in the image, 0 = bottom.
    pub index: usize,
    /// Digest of the layer blob.
    pub digest: Option<String>,
    /// The history line that made the layer.
    pub created_by: Option<String>,
}

/// Whether the file is in the image's final filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The file is in the final filesystem.
    Present,
    /// A later layer removed or replaced it; it still ships in the image.
    Deleted,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Present => "present",
            Status::Deleted => "deleted",
        })
    }
}

/// One piece of evidence: a rule that matched one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Stable rule id, such as `MH-XMRIG-ELF` or `MH-HASH-KNOWN-MINER`.
    pub rule: String,
    /// Which detector produced it: `yara`, `sha256`, `elf`.
    pub detector: String,
    /// How much it matters.
    pub severity: Severity,
    /// Miner family, when the rule names one.
    pub family: Option<String>,
    /// Path in the image; a member of a nested archive reads `outer.tar.gz!/inner`.
    pub path: String,
    /// Present in the final filesystem, or deleted by a later layer.
    pub status: Status,
    /// The layer that added the file.
    pub layer: LayerRef,
    /// SHA-256 of the file's bytes.
    pub sha256: Option<String>,
    /// Size of the file in bytes.
    pub size: u64,
    /// `os/arch[/variant]` of the image.
    pub platform: Option<String>,
    /// What the rule finds.
    pub description: String,
    /// Set when an allowlist entry covers this finding: it stays in the report
    /// but does not trip the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression: Option<Suppression>,
}

/// A file that was not fully scanned, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Skipped {
    /// Path in the image.
    pub path: String,
    /// The layer that holds it.
    pub layer: LayerRef,
    /// `os/arch[/variant]` of the image.
    pub platform: Option<String>,
    /// Size in bytes as the archive declares it.
    pub size: u64,
    /// Why it was not fully scanned.
    pub reason: String,
    /// Set when the scanner itself failed on the file (an internal error, or
    /// the rules ran past their time limit), not a limit the settings chose:
    /// the file has no verdict, so the report is incomplete.
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Counts over the whole scan. `files == files_scanned + files_skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// Images (platforms) scanned.
    pub images: u64,
    /// Layers scanned.
    pub layers: u64,
    /// Unique layers whose result came from the layer cache instead of a read.
    #[serde(default)]
    pub layers_cached: u64,
    /// Regular files seen, nested archive members included.
    pub files: u64,
    /// Files read in full and checked.
    pub files_scanned: u64,
    /// Files listed in `skipped`.
    pub files_skipped: u64,
    /// Of those, files the scanner failed on (`failed` set): when not 0, the
    /// report is incomplete and no gate should pass it.
    #[serde(default)]
    pub files_failed: u64,
    /// ELF files among the scanned files.
    pub elf_files: u64,
    /// Nested archives opened.
    pub archives: u64,
    /// Bytes of layer blobs read as stored.
    pub bytes_compressed: u64,
    /// Bytes of layer tars after decompression (for a directory or a single
    /// file: the bytes read).
    pub bytes_uncompressed: u64,
    /// Findings by severity, not counting those an allowlist suppressed.
    pub findings: SeverityCounts,
}

/// Number of findings at each severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeverityCounts {
    /// Critical findings.
    pub critical: u64,
    /// High findings.
    pub high: u64,
    /// Medium findings.
    pub medium: u64,
    /// Low findings.
    pub low: u64,
    /// Info findings.
    pub info: u64,
}

impl std::fmt::Display for SeverityCounts {
    /// `critical 1, high 2, medium 0, low 0, info 3`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "critical {}, high {}, medium {}, low {}, info {}",
            self.critical, self.high, self.medium, self.low, self.info
        )
    }
}

impl SeverityCounts {
    /// Counts one finding.
    pub fn add(&mut self, severity: Severity) {
        *match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Info => &mut self.info,
        } += 1;
    }
}

impl Report {
    /// An empty report for `target`.
    pub fn new(target: impl Into<String>) -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "minehound".to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            target: target.into(),
            signatures: SignatureSet::default(),
            images: Vec::new(),
            findings: Vec::new(),
            skipped: Vec::new(),
            stats: Stats::default(),
            allowlist: None,
        }
    }

    /// The findings an allowlist did not suppress: those the gate judges.
    pub fn active_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.suppression.is_none())
    }

    /// The most severe unsuppressed finding's severity, if there is any.
    pub fn highest_severity(&self) -> Option<Severity> {
        self.active_findings().map(|f| f.severity).max()
    }

    /// Whether the scanner failed on any file (see [`Skipped::failed`]): the
    /// findings are then not the whole truth about the image, and a gate
    /// must not call it clean.
    pub fn incomplete(&self) -> bool {
        self.skipped.iter().any(|s| s.failed)
    }

    /// Whether any unsuppressed finding is at or above `threshold`: the gate's verdict.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.active_findings().any(|f| f.severity >= threshold)
    }

    /// Orders findings (most severe first, then by image layer and path) and
    /// recounts them, so output is stable whatever order workers finished in.
    pub fn finish(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.platform.cmp(&b.platform))
                .then_with(|| a.layer.index.cmp(&b.layer.index))
                .then_with(|| a.path.cmp(&b.path))
                .then_with(|| a.rule.cmp(&b.rule))
        });
        self.skipped.sort_by(|a, b| {
            a.platform
                .cmp(&b.platform)
                .then_with(|| a.layer.index.cmp(&b.layer.index))
                .then_with(|| a.path.cmp(&b.path))
        });
        let mut counts = SeverityCounts::default();
        for finding in self.active_findings() {
            counts.add(finding.severity);
        }
        self.stats.findings = counts;
        self.stats.files_skipped = self.skipped.len() as u64;
        self.stats.files_failed = self.skipped.iter().filter(|s| s.failed).count() as u64;
    }
}
