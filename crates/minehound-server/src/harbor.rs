//! Harbor's Pluggable Scanner API (v1.1, and the 1.0 media types Harbor
//! still sends): the request and answer shapes, and a minehound report seen
//! as a Harbor vulnerability report.
//!
//! Harbor gates on that report: "prevent vulnerable images from running"
//! compares item severities with the project's threshold, and its CVE
//! allowlist matches item ids. So every finding becomes an item whose id is
//! the rule, whose severity maps minehound's, and whose package and version
//! say where it is (file path, layer digest).

use std::collections::BTreeMap;

use minehound::{Finding, Report, Severity, Status};
use serde::{Deserialize, Serialize};

/// The scan request body's media type (Harbor sends 1.0 or 1.1).
pub const SCAN_REQUEST: &str = "application/vnd.scanner.adapter.scan.request+json";
/// `POST /scan`'s answer.
pub const SCAN_RESPONSE: &str = "application/vnd.scanner.adapter.scan.response+json; version=1.0";
/// `GET /metadata`'s answer.
pub const METADATA: &str = "application/vnd.scanner.adapter.metadata+json; version=1.0";
/// Every error answer.
pub const ERROR: &str = "application/vnd.scanner.adapter.error+json; version=1.0";
/// The report Harbor 2.x asks for.
pub const REPORT_V11: &str = "application/vnd.security.vulnerability.report; version=1.1";
/// The report type of spec 1.0 (and of 1.1 with `version=1.1`).
pub const REPORT_HARBOR_JSON: &str = "application/vnd.scanner.adapter.vuln.report.harbor+json";
/// The full minehound JSON report.
pub const REPORT_RAW: &str = "application/vnd.scanner.adapter.vuln.report.raw";

/// Artifact media types minehound scans.
pub const CONSUMES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The scanner, as reports and metadata name it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScannerInfo {
    /// `minehound`.
    pub name: String,
    /// `minehound`.
    pub vendor: String,
    /// The minehound version.
    pub version: String,
}

impl ScannerInfo {
    /// This build.
    pub fn this() -> ScannerInfo {
        ScannerInfo {
            name: "minehound".into(),
            vendor: "minehound".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A scan request as Harbor sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct ScanRequest {
    /// Where to pull from.
    pub registry: Registry,
    /// What to pull.
    pub artifact: Artifact,
}

/// The registry part of a scan request. Its `Debug` hides the authorization.
#[derive(Clone, Deserialize)]
pub struct Registry {
    /// The registry's base URL (`http://core:8080`, `https://harbor.example.com`).
    pub url: String,
    /// The `Authorization` value for the registry: `Basic …` or `Bearer …`.
    #[serde(default, deserialize_with = "present")]
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// The artifact of a scan request, echoed in the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Repository, such as `library/app`.
    pub repository: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    /// Tag, if Harbor knows one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub tag: Option<String>,
    /// The artifact's media type.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub mime_type: Option<String>,
}

/// An optional string field that, when present, must be a string: `null`
/// is refused like any other wrong type (the OpenAPI schema says so).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Harbor's severity scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HarborSeverity {
    /// No finding at all (Harbor's adapters use it for clean reports).
    Unknown,
    /// minehound's `info`.
    Negligible,
    /// minehound's `low`.
    Low,
    /// minehound's `medium`.
    Medium,
    /// minehound's `high`.
    High,
    /// minehound's `critical`.
    Critical,
}

impl From<Severity> for HarborSeverity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Info => HarborSeverity::Negligible,
            Severity::Low => HarborSeverity::Low,
            Severity::Medium => HarborSeverity::Medium,
            Severity::High => HarborSeverity::High,
            Severity::Critical => HarborSeverity::Critical,
        }
    }
}

/// Harbor's vulnerability report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarborReport {
    /// When the scan finished (RFC 3339).
    pub generated_at: String,
    /// The artifact scanned.
    pub artifact: Artifact,
    /// This scanner.
    pub scanner: ScannerInfo,
    /// The highest item severity (`Unknown` when there are none).
    pub severity: HarborSeverity,
    /// One item per finding the operator's allowlist did not suppress.
    pub vulnerabilities: Vec<VulnerabilityItem>,
}

/// One finding as a Harbor vulnerability item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VulnerabilityItem {
    /// The rule id (what Harbor's allowlist matches).
    pub id: String,
    /// The file (a nested member as `outer.tar.gz!/inner`).
    pub package: String,
    /// The digest of the layer that holds the file.
    pub version: String,
    /// Always empty: removing the file is the fix.
    pub fix_version: String,
    /// The finding's severity on Harbor's scale.
    pub severity: HarborSeverity,
    /// What the rule found, and where.
    pub description: String,
    /// References (none yet).
    pub links: Vec<String>,
    /// Rule, detector, SHA-256, status and layer of the finding.
    pub vendor_attributes: BTreeMap<String, serde_json::Value>,
}

/// The Harbor report of a finished minehound scan of `artifact`.
pub fn harbor_report(report: &Report, artifact: &Artifact, generated_at: &str) -> HarborReport {
    let vulnerabilities: Vec<VulnerabilityItem> = report.active_findings().map(item).collect();
    let severity = vulnerabilities
        .iter()
        .map(|v| v.severity)
        .max()
        .unwrap_or(HarborSeverity::Unknown);
    HarborReport {
        generated_at: generated_at.to_string(),
        artifact: artifact.clone(),
        scanner: ScannerInfo::this(),
        severity,
        vulnerabilities,
    }
}

fn item(finding: &Finding) -> VulnerabilityItem {
    let layer = finding
        .layer
        .digest
        .clone()
        .unwrap_or_else(|| format!("layer {}", finding.layer.index));
    let mut description = finding.description.clone();
    if finding.status == Status::Deleted {
        description.push_str(" (deleted by a later layer, but still shipped in this one)");
    }
    let mut attributes = BTreeMap::new();
    let mut put = |key: &str, value: serde_json::Value| {
        attributes.insert(key.to_string(), value);
    };
    put("rule", finding.rule.clone().into());
    put("detector", finding.detector.clone().into());
    put("minehound_severity", finding.severity.as_str().into());
    put(
        "status",
        match finding.status {
            Status::Present => "present",
            Status::Deleted => "deleted",
        }
        .into(),
    );
    put("layer_index", finding.layer.index.into());
    if let Some(sha256) = &finding.sha256 {
        put("sha256", sha256.clone().into());
    }
    if let Some(family) = &finding.family {
        put("family", family.clone().into());
    }
    if let Some(platform) = &finding.platform {
        put("platform", platform.clone().into());
    }
    if let Some(created_by) = &finding.layer.created_by {
        put("layer_created_by", created_by.clone().into());
    }
    VulnerabilityItem {
        id: finding.rule.clone(),
        package: finding.path.clone(),
        version: layer,
        fix_version: String::new(),
        severity: finding.severity.into(),
        description,
        links: Vec::new(),
        vendor_attributes: attributes,
    }
}

/// Which rendering of a report an `Accept` header asks for, and the
/// `Content-Type` to answer with. One that names none of minehound's gets
/// Harbor's 1.1 report (a server may disregard `Accept`; Harbor never sends
/// anything else).
pub fn negotiate(accept: Option<&str>) -> (ReportKind, String) {
    let default = (ReportKind::Harbor, REPORT_V11.to_string());
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return default;
    };
    for choice in accept.split(',') {
        let media = choice.trim();
        let essence = media.split(';').next().unwrap_or("").trim();
        let version = media
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().strip_prefix("version="))
            .next()
            .map(str::trim);
        match essence {
            REPORT_RAW => return (ReportKind::Raw, REPORT_RAW.to_string()),
            "application/vnd.security.vulnerability.report" => return default,
            REPORT_HARBOR_JSON => {
                let version = match version {
                    Some("1.1") => "1.1",
                    _ => "1.0",
                };
                return (
                    ReportKind::Harbor,
                    format!("{REPORT_HARBOR_JSON}; version={version}"),
                );
            }
            _ => {}
        }
    }
    default
}

/// The two renderings of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Harbor's vulnerability report.
    Harbor,
    /// The minehound JSON report.
    Raw,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_rendering() {
        let v10 = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0";
        assert_eq!(
            negotiate(Some(REPORT_V11)),
            (ReportKind::Harbor, REPORT_V11.into())
        );
        assert_eq!(negotiate(Some(v10)), (ReportKind::Harbor, v10.into()));
        assert_eq!(
            negotiate(Some(REPORT_RAW)),
            (ReportKind::Raw, REPORT_RAW.into())
        );
        assert_eq!(negotiate(None).0, ReportKind::Harbor);
        assert_eq!(
            negotiate(Some("text/html")),
            (ReportKind::Harbor, REPORT_V11.into())
        );
        let both = "text/html, application/vnd.scanner.adapter.vuln.report.raw";
        assert_eq!(negotiate(Some(both)).0, ReportKind::Raw);
        // A version Harbor never used is not echoed back.
        let odd = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=9";
        assert_eq!(negotiate(Some(odd)).1, v10);
    }

    #[test]
    fn severities_map_onto_harbors_scale_in_order() {
        let mapped: Vec<HarborSeverity> = Severity::ALL.iter().map(|s| (*s).into()).collect();
        let mut sorted = mapped.clone();
        sorted.sort();
        assert_eq!(mapped, sorted);
        assert_eq!(
            HarborSeverity::from(Severity::Critical),
            HarborSeverity::Critical
        );
    }

    #[test]
    fn the_registry_authorization_never_prints() {
        let r = Registry {
            url: "http://core".into(),
            authorization: Some("Basic c2VjcmV0".into()),
        };
        assert!(!format!("{r:?}").contains("c2VjcmV0"));
    }
}
