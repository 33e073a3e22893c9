//! What the service records: jobs, where they came from and where they are,
//! the verdict a finished scan reaches, and the latest word per image digest.

use minehound::{Report, Severity, Status};
use serde::{Deserialize, Serialize};

use crate::harbor::Artifact;

/// Where a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `POST /api/v1/scan` (Harbor).
    Harbor,
    /// A registry's push notification.
    Notification,
    /// A Kubernetes admission review naming an image not yet scanned.
    Admission,
}

impl Origin {
    /// The name metrics and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Harbor => "harbor",
            Origin::Notification => "notification",
            Origin::Admission => "admission",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Being scanned.
    Running,
    /// Scanned; the report is stored.
    Finished,
    /// Could not be scanned; `error` says why.
    Failed,
}

impl JobState {
    /// Whether the job has ended.
    pub fn ended(self) -> bool {
        matches!(self, JobState::Finished | JobState::Failed)
    }
}

/// One scan of one artifact, as kept on disk (never with credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The id Harbor polls with.
    pub id: String,
    /// Who asked.
    pub origin: Origin,
    /// The registry's base URL.
    pub registry: String,
    /// What is scanned.
    pub artifact: Artifact,
    /// Whether the request carried registry authorization (kept in memory only).
    pub authorized: bool,
    /// Where the job is.
    pub state: JobState,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When a worker took it.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The outcome of a finished scan.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

/// What a finished scan says about an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `clean`, or the highest severity among the findings the allowlist
    /// left: `info`, `low`, `medium`, `high`, `critical`.
    pub verdict: String,
    /// Whether the image fails the service's gate (`--fail-on`).
    pub fails: bool,
    /// Findings the allowlist left.
    pub findings: u64,
    /// Findings the allowlist suppressed.
    pub suppressed: u64,
    /// Layers in the image.
    pub layers: u64,
    /// Of those, layers whose result came from the layer cache.
    pub layers_cached: u64,
    /// The findings the allowlist left, worst first (at most
    /// [`Verdict::TOP_FINDINGS`]): what an admission denial or warning names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_findings: Vec<FindingBrief>,
}

/// One finding, as much of it as a verdict keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingBrief {
    /// The rule id.
    pub rule: String,
    /// `critical` … `info`.
    pub severity: Severity,
    /// The file (or `<image config>/…` field).
    pub path: String,
    /// `present`, or `deleted` by a later layer.
    pub status: Status,
    /// The layer's index, bottom first.
    pub layer_index: usize,
    /// The layer's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<String>,
    /// The platform, in a multi-platform image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Verdict {
    /// How many findings a verdict keeps.
    pub const TOP_FINDINGS: usize = 20;

    pub(crate) fn of(report: &Report, fail_on: Severity) -> Verdict {
        let findings = report.active_findings().count() as u64;
        let mut top: Vec<&minehound::Finding> = report.active_findings().collect();
        // Stable: within a severity, the report's own order (layer, path).
        top.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let top_findings = top
            .into_iter()
            .take(Self::TOP_FINDINGS)
            .map(|f| FindingBrief {
                rule: f.rule.clone(),
                severity: f.severity,
                path: f.path.clone(),
                status: f.status,
                layer_index: f.layer.index,
                layer_digest: f.layer.digest.clone(),
                platform: f.platform.clone(),
            })
            .collect();
        Verdict {
            verdict: report
                .highest_severity()
                .map_or("clean", |s| s.as_str())
                .to_string(),
            fails: report.fails(fail_on),
            findings,
            suppressed: report.findings.len() as u64 - findings,
            layers: report.stats.layers,
            layers_cached: report.stats.layers_cached,
            top_findings,
        }
    }
}

/// The latest word on one image digest (`GET /api/v1/images/{digest}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The manifest digest.
    pub digest: String,
    /// The repository it was last seen in.
    pub repository: String,
    /// The registry's base URL.
    pub registry: String,
    /// The state of the latest job for this digest.
    pub status: JobState,
    /// That job's id.
    pub job: String,
    /// When this record changed (RFC 3339).
    pub updated_at: String,
    /// The latest finished scan's verdict, kept while a newer scan runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// When that verdict was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<String>,
    /// Why the latest job failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
