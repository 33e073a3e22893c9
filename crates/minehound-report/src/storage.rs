//! The report of a whole registry storage: one [`Report`] per image (tag or
//! untagged manifest) and a summary over all of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Report, SCHEMA_VERSION, Severity, SeverityCounts, SignatureSet, Tool};

/// The result of scanning many images from one store, each unique layer once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct StorageReport {
    /// Version of this JSON schema.
    pub schema_version: u32,
    /// The tool that wrote the report.
    pub tool: Tool,
    /// The store, such as the storage directory.
    pub storage: String,
    /// The signature set the scan used.
    pub signatures: SignatureSet,
    /// Counts over all images.
    pub summary: StorageSummary,
    /// One entry per image, in repository and tag order.
    pub images: Vec<StoredImage>,
    /// Manifests not scanned (not images, unreadable links), with reasons.
    pub skipped: Vec<SkippedImage>,
}

/// One image of the store: its report, or why it could not be scanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct StoredImage {
    /// The repository, such as `team/app`.
    pub repository: String,
    /// The tag; absent for an untagged manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest or index digest.
    pub digest: String,
    /// The scan's report (every platform of the image), when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// Why the image could not be scanned (no verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoredImage {
    /// An image that was scanned.
    pub fn scanned(
        repository: String,
        tag: Option<String>,
        digest: String,
        report: Report,
    ) -> Self {
        StoredImage {
            repository,
            tag,
            digest,
            report: Some(report),
            error: None,
        }
    }

    /// An image that could not be scanned.
    pub fn failed(repository: String, tag: Option<String>, digest: String, error: String) -> Self {
        StoredImage {
            repository,
            tag,
            digest,
            report: None,
            error: Some(error),
        }
    }

    /// `repository:tag`, or `repository@digest` when untagged.
    pub fn reference(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.repository),
            None => format!("{}@{}", self.repository, self.digest),
        }
    }
}

/// A manifest of the store that was not scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedImage {
    /// A reference or a path in the store.
    pub what: String,
    /// Why.
    pub reason: String,
}

/// Counts over a whole store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct StorageSummary {
    /// Repositories found.
    pub repositories: u64,
    /// Images (tags and untagged manifests) scanned or attempted.
    pub images: u64,
    /// Images that could not be scanned.
    pub images_failed: u64,
    /// Platform manifests scanned (a multi-platform image counts each).
    pub platform_images: u64,
    /// Layers named by all scanned manifests, counting each use.
    pub layer_references: u64,
    /// Distinct layers among them.
    pub unique_layers: u64,
    /// Layers read and scanned in this run.
    pub layers_scanned: u64,
    /// Layers whose result came from the layer cache.
    pub layers_cached: u64,
    /// Bytes of the distinct layers, as stored.
    pub bytes: u64,
    /// Bytes of the distinct layers, uncompressed.
    pub bytes_uncompressed: u64,
    /// Findings over all images by severity, not counting suppressed ones.
    pub findings: SeverityCounts,
    /// Images with an unsuppressed finding at or above `high`.
    pub images_with_findings: u64,
    /// Wall-clock seconds the scan took.
    pub seconds: f64,
}

impl StorageReport {
    /// An empty report of `storage`.
    pub fn new(storage: impl Into<String>, signatures: SignatureSet) -> Self {
        StorageReport {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "minehound".to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            storage: storage.into(),
            signatures,
            summary: StorageSummary::default(),
            images: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Recounts the images and findings of the summary from the images'
    /// reports (after an allowlist changed them).
    pub fn finish(&mut self) {
        let mut findings = SeverityCounts::default();
        let mut flagged = 0;
        let mut platform_images = 0;
        for report in self.images.iter().filter_map(|i| i.report.as_ref()) {
            for f in report.active_findings() {
                findings.add(f.severity);
            }
            if report.fails(Severity::High) {
                flagged += 1;
            }
            platform_images += report.stats.images;
        }
        let s = &mut self.summary;
        s.findings = findings;
        s.images_with_findings = flagged;
        s.platform_images = platform_images;
        s.images = self.images.len() as u64;
        s.images_failed = self.images.iter().filter(|i| i.error.is_some()).count() as u64;
    }

    /// Whether any image has an unsuppressed finding at or above `threshold`.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.images
            .iter()
            .filter_map(|i| i.report.as_ref())
            .any(|r| r.fails(threshold))
    }
}
