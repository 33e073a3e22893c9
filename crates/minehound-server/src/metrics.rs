//! Prometheus metrics: scans by origin and outcome, findings by severity,
//! layers scanned or served by the layer cache, scan durations, and the
//! queue.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use minehound::Report;

use crate::job::Origin;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    origin: &'static str,
    /// `clean`, `findings` or `failed`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    cause: &'static str,
}

/// A failure of the scanner itself, not of the image: what
/// `minehound_scanner_failures` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFailure {
    /// Files the scanner failed on (an internal error or the rules' time
    /// limit), listed in an incomplete report.
    Files,
    /// A job whose scan panicked outside any one file.
    Panic,
    /// A job stopped at its deadline.
    Deadline,
    /// A job whose scan failed in the engine (a layer reader's internal
    /// error, no threads or temporary files).
    Engine,
}

impl ScanFailure {
    fn cause(self) -> &'static str {
        match self {
            ScanFailure::Files => "file",
            ScanFailure::Panic => "panic",
            ScanFailure::Deadline => "deadline",
            ScanFailure::Engine => "engine",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    /// `admission` or `imagereview`.
    endpoint: &'static str,
    /// `allowed`, `denied` or `malformed`.
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabels {
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabels {
    /// `scanned` or `cached`.
    result: &'static str,
}

/// The service's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    scans: Family<ScanLabels, Counter>,
    findings: Family<SeverityLabels, Counter>,
    layers: Family<LayerLabels, Counter>,
    pub(crate) duration: Histogram,
    reviews: Family<ReviewLabels, Counter>,
    review_duration: Histogram,
    pub(crate) queued: Gauge,
    pub(crate) running: Gauge,
    failures: Family<FailureLabels, Counter>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("minehound");
        let scans = Family::<ScanLabels, Counter>::default();
        let findings = Family::<SeverityLabels, Counter>::default();
        let layers = Family::<LayerLabels, Counter>::default();
        // 50 ms to about 14 min.
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 15));
        let (queued, running) = (Gauge::default(), Gauge::default());
        let reviews = Family::<ReviewLabels, Counter>::default();
        // 1 ms to about 16 s.
        let review_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "admission_reviews",
            "Admission and image reviews answered, by endpoint and decision",
            reviews.clone(),
        );
        registry.register(
            "admission_review_duration_seconds",
            "Time to answer an admission or image review",
            review_duration.clone(),
        );
        registry.register(
            "scans",
            "Image scans that ended, by origin and outcome",
            scans.clone(),
        );
        registry.register(
            "findings",
            "Findings in finished scans (after the allowlist), by severity",
            findings.clone(),
        );
        registry.register(
            "layers",
            "Layers of finished scans: read and scanned, or answered by the layer cache",
            layers.clone(),
        );
        registry.register(
            "scan_duration_seconds",
            "Time from a worker taking a job to its end",
            duration.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "scanner_failures",
            "Failures of the scanner itself, not of an image: files it failed on (file), jobs that panicked (panic), ran past --job-timeout (deadline) or failed in the engine (engine)",
            failures.clone(),
        );
        registry.register(
            "queued_scans",
            "Jobs waiting for a worker (every replica's, with a shared database)",
            queued.clone(),
        );
        registry.register("running_scans", "Jobs being scanned", running.clone());
        Metrics {
            registry,
            scans,
            findings,
            layers,
            duration,
            reviews,
            review_duration,
            queued,
            running,
            failures,
        }
    }

    /// Adds the counters of a database store replicas share: leases on jobs
    /// this replica lost, and database errors.
    pub fn register_database(&mut self, leases_lost: Counter, errors: Counter) {
        self.registry.register(
            "job_leases_lost",
            "Jobs this replica stopped because its lease ran out (the database was out of reach) and another replica may run them",
            leases_lost,
        );
        self.registry.register(
            "database_errors",
            "Queries to the shared database that failed",
            errors,
        );
    }

    /// Counts `n` failures of the scanner itself.
    pub fn scan_failure(&self, failure: ScanFailure, n: u64) {
        self.failures
            .get_or_create(&FailureLabels {
                cause: failure.cause(),
            })
            .inc_by(n);
    }

    /// Counts an answered review and its time.
    pub fn admission_answered(&self, endpoint: &'static str, allowed: bool, seconds: f64) {
        let decision = if allowed { "allowed" } else { "denied" };
        self.reviews
            .get_or_create(&ReviewLabels { endpoint, decision })
            .inc();
        self.review_duration.observe(seconds);
    }

    /// Counts a review that could not be read.
    pub fn admission_malformed(&self, endpoint: &'static str) {
        self.reviews
            .get_or_create(&ReviewLabels {
                endpoint,
                decision: "malformed",
            })
            .inc();
    }

    /// Counts a finished scan.
    pub fn scan_finished(&self, origin: Origin, report: &Report) {
        let mut any = false;
        for finding in report.active_findings() {
            any = true;
            self.findings
                .get_or_create(&SeverityLabels {
                    severity: finding.severity.as_str(),
                })
                .inc();
        }
        let outcome = if any { "findings" } else { "clean" };
        self.scans
            .get_or_create(&ScanLabels {
                origin: origin.as_str(),
                outcome,
            })
            .inc();
        let cached = report.stats.layers_cached;
        let scanned = report.stats.layers.saturating_sub(cached);
        self.layers
            .get_or_create(&LayerLabels { result: "cached" })
            .inc_by(cached);
        self.layers
            .get_or_create(&LayerLabels { result: "scanned" })
            .inc_by(scanned);
    }

    /// Counts a scan that could not be completed.
    pub fn scan_failed(&self, origin: Origin) {
        self.scans
            .get_or_create(&ScanLabels {
                origin: origin.as_str(),
                outcome: "failed",
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
