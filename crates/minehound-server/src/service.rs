//! The service's core: jobs, the bounded queue they wait in, the workers that
//! scan them, and the verdict each image digest ends with.
//!
//! A job is accepted only if the queue has room (else the caller is told to
//! come back later), persisted before it is queued, and scanned by one of a
//! fixed number of workers. Every worker shares one [`Scanner`], hence one
//! layer cache and one set of compiled rules: a base layer shared by many
//! images is read once, and concurrent jobs wait for each other's layers
//! rather than reading them twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minehound::{
    Allowlist, Credentials, PlatformChoice, RegistryOptions, Report, ScanRequest, Scanner,
    Severity, Target,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::harbor::Artifact;
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// Where a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `POST /api/v1/scan` (Harbor).
    Harbor,
    /// A registry's push notification.
    Notification,
}

impl Origin {
    /// The name metrics and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Harbor => "harbor",
            Origin::Notification => "notification",
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
}

impl Verdict {
    fn of(report: &Report, fail_on: Severity) -> Verdict {
        let findings = report.active_findings().count() as u64;
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

/// Registry authorization handed over with a Harbor scan request.
#[derive(Clone)]
pub enum Authorization {
    /// `Basic base64(user:password)`, still encoded.
    Basic(String),
    /// `Bearer TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authorization::Basic(_) => "Basic <hidden>",
            Authorization::Bearer(_) => "Bearer <hidden>",
        })
    }
}

impl Authorization {
    /// Reads an `Authorization` header value: a scheme (`Basic` or `Bearer`,
    /// any case), one space, and a non-empty rest. Basic credentials are
    /// decoded when the scan starts; undecodable ones fail the scan.
    pub fn parse(value: &str) -> Result<Authorization, String> {
        let usage = "registry.authorization must be \"Basic …\" or \"Bearer …\"";
        let (scheme, rest) = value.split_once(' ').ok_or(usage)?;
        if rest.is_empty() {
            return Err(usage.into());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            Ok(Authorization::Basic(rest.to_string()))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Authorization::Bearer(rest.to_string()))
        } else {
            Err(usage.into())
        }
    }

    /// What the registry client takes: credentials or a token.
    fn apply(self, registry: &mut RegistryOptions) -> Result<(), String> {
        match self {
            Authorization::Bearer(token) => registry.bearer_token = Some(token),
            Authorization::Basic(encoded) => {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or("registry.authorization: the Basic credentials are not base64 of UTF-8 text")?;
                let (username, password) = decoded
                    .split_once(':')
                    .ok_or("registry.authorization: the Basic credentials lack a ':'")?;
                registry.credentials = Some(Credentials {
                    username: username.to_string(),
                    password: password.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Why a job was not accepted.
#[derive(Debug)]
pub enum SubmitError {
    /// The request does not name a scannable artifact.
    Invalid(String),
    /// A scan of the same digest is queued or running (notifications only).
    AlreadyPending,
    /// The queue is full: come back later.
    QueueFull,
    /// The job could not be recorded.
    Store(std::io::Error),
}

/// How the service scans: fixed when it starts.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// Base registry options (CA files, insecure hosts, the service's own
    /// credentials for notification pulls, timeouts).
    pub registry: RegistryOptions,
    /// Which platforms of an index to scan.
    pub platform: PlatformChoice,
    /// Findings the operator accepts.
    pub allowlist: Option<Allowlist>,
    /// The gate: a verdict at or above this fails.
    pub fail_on: Severity,
    /// Whether notified images come from the one registry the operator
    /// named; only then do the service's own credentials go with the pulls.
    pub pinned_notification_registry: bool,
}

/// The shared state of the service.
pub struct Service {
    pub(crate) scanner: Scanner,
    pub(crate) settings: ScanSettings,
    pub(crate) store: Store,
    pub(crate) metrics: Metrics,
    jobs: Mutex<HashMap<String, Job>>,
    /// Authorization of queued Harbor jobs, in memory only.
    secrets: Mutex<HashMap<String, Authorization>>,
    queue: mpsc::Sender<String>,
    /// How many jobs may wait for a worker (the `queued` gauge counts them).
    queue_size: usize,
    /// Serialises updates of image records.
    images: Mutex<()>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("scanner", &self.scanner)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Service {
    /// Loads the store, re-queues the jobs a restart interrupted, and starts
    /// `workers` workers on the current tokio runtime.
    pub fn start(
        scanner: Scanner,
        settings: ScanSettings,
        store: Store,
        workers: usize,
        queue_size: usize,
    ) -> std::io::Result<Arc<Service>> {
        let mut jobs: Vec<Job> = store.load_jobs()?;
        // A record is trusted no further than a request would be: its id
        // becomes a file name, its registry and artifact a pull.
        jobs.retain(|job| {
            let sound = valid_id(&job.id) && reference(&job.registry, &job.artifact).is_ok();
            if !sound {
                tracing::warn!(job = %job.id, "skipping a job record that names no valid job");
            }
            sound
        });
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let mut again = Vec::new();
        let mut failed = Vec::new();
        for job in &mut jobs {
            if job.state.ended() {
                continue;
            }
            // Credentials are never written, so a job that needed them
            // cannot be resumed: Harbor's next request scans it again.
            if job.authorized {
                job.state = JobState::Failed;
                job.finished_at = Some(now());
                job.error = Some(
                    "the service restarted before this scan finished; its registry authorization is not kept, so scan again"
                        .into(),
                );
                store::write_json(&store.job_path(&job.id), job)?;
                failed.push(job.clone());
            } else {
                job.state = JobState::Queued;
                again.push(job.id.clone());
            }
        }
        let (tx, rx) = mpsc::channel(queue_size.max(1) + again.len());
        let metrics = Metrics::new();
        let service = Arc::new(Service {
            scanner,
            settings,
            store,
            metrics,
            jobs: Mutex::new(jobs.into_iter().map(|j| (j.id.clone(), j)).collect()),
            secrets: Mutex::new(HashMap::new()),
            queue: tx,
            queue_size: queue_size.max(1),
            images: Mutex::new(()),
        });
        for job in &failed {
            service.record_image(job);
        }
        if !again.is_empty() {
            tracing::info!(
                jobs = again.len(),
                "re-queueing scans a restart interrupted"
            );
        }
        for id in again {
            service.metrics.queued.inc();
            // The channel has room for every one of them.
            let _ = service.queue.try_send(id);
        }
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let (service, rx) = (Arc::clone(&service), Arc::clone(&rx));
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(id) = next else { break };
                    service.run(&id).await;
                }
            });
        }
        Ok(service)
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Option<Job> {
        lock(&self.jobs).get(id).cloned()
    }

    /// The latest record for an image digest.
    pub fn image(&self, digest: &str) -> std::io::Result<Option<ImageRecord>> {
        store::read_json(&self.store.image_path(digest))
    }

    /// Whether the queue has room.
    pub fn accepting(&self) -> bool {
        self.metrics.queued.get() < self.queue_size as i64
    }

    /// Accepts a scan of `artifact` in the registry at `registry` and queues
    /// it; with `unless_pending`, not when a scan of the same digest is
    /// queued or running already.
    pub fn submit(
        &self,
        origin: Origin,
        registry: &str,
        artifact: Artifact,
        authorization: Option<Authorization>,
        unless_pending: bool,
    ) -> Result<Job, SubmitError> {
        reference(registry, &artifact).map_err(SubmitError::Invalid)?;
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            origin,
            registry: registry.trim_end_matches('/').to_string(),
            artifact,
            authorized: authorization.is_some(),
            state: JobState::Queued,
            created_at: now(),
            started_at: None,
            finished_at: None,
            error: None,
            verdict: None,
        };
        // The check and the insertion under one lock: two deliveries of one
        // event at once queue one scan.
        let permit = {
            let mut jobs = lock(&self.jobs);
            if unless_pending
                && jobs
                    .values()
                    .any(|j| j.artifact.digest == job.artifact.digest && !j.state.ended())
            {
                return Err(SubmitError::AlreadyPending);
            }
            if self.metrics.queued.get() >= self.queue_size as i64 {
                return Err(SubmitError::QueueFull);
            }
            let permit = self
                .queue
                .try_reserve()
                .map_err(|_| SubmitError::QueueFull)?;
            jobs.insert(job.id.clone(), job.clone());
            self.metrics.queued.inc();
            permit
        };
        if let Err(e) = store::write_json(&self.store.job_path(&job.id), &job) {
            lock(&self.jobs).remove(&job.id);
            self.metrics.queued.dec();
            return Err(SubmitError::Store(e));
        }
        self.record_image(&job);
        if let Some(authorization) = authorization {
            lock(&self.secrets).insert(job.id.clone(), authorization);
        }
        permit.send(job.id.clone());
        tracing::info!(job = %job.id, origin = origin.as_str(), repository = %job.artifact.repository, digest = %job.artifact.digest, "scan queued");
        Ok(job)
    }

    /// Scans job `id` and records how it ended.
    async fn run(&self, id: &str) {
        self.metrics.queued.dec();
        let Some(mut job) = self.update(id, |job| {
            job.state = JobState::Running;
            job.started_at = Some(now());
        }) else {
            return;
        };
        self.record_image(&job);
        let authorization = lock(&self.secrets).remove(id);
        self.metrics.running.inc();
        let started = Instant::now();
        let outcome = self.scan(&job, authorization).await;
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.running.dec();
        self.metrics.duration.observe(seconds);
        let saved = outcome.and_then(|report| {
            store::write_json(&self.store.report_path(id), &report)
                .map_err(|e| format!("cannot store the report: {e}"))?;
            Ok(report)
        });
        match saved {
            Ok(report) => {
                let verdict = Verdict::of(&report, self.settings.fail_on);
                self.metrics.scan_finished(job.origin, &report);
                tracing::info!(job = %id, digest = %job.artifact.digest, verdict = %verdict.verdict, findings = verdict.findings, layers = verdict.layers, layers_cached = verdict.layers_cached, seconds, "scan finished");
                job = self
                    .update(id, |job| {
                        job.state = JobState::Finished;
                        job.finished_at = Some(now());
                        job.verdict = Some(verdict.clone());
                    })
                    .unwrap_or(job);
            }
            Err(error) => {
                self.metrics.scan_failed(job.origin);
                tracing::warn!(job = %id, digest = %job.artifact.digest, error = %error, seconds, "scan failed");
                job = self
                    .update(id, |job| {
                        job.state = JobState::Failed;
                        job.finished_at = Some(now());
                        job.error = Some(error.clone());
                    })
                    .unwrap_or(job);
            }
        }
        self.record_image(&job);
    }

    /// Pulls and scans a job's artifact; `Err` says why it could not be.
    async fn scan(
        &self,
        job: &Job,
        authorization: Option<Authorization>,
    ) -> Result<Report, String> {
        let (reference, host, plain_http) = reference(&job.registry, &job.artifact)?;
        let mut registry = self.settings.registry.clone();
        // The service's own credentials never go to a registry a caller
        // named: Harbor sends its own, and a notification's URL is the
        // caller's word unless the operator pinned the registry.
        match job.origin {
            Origin::Harbor => {
                registry.credentials = None;
                registry.use_config_files = false;
            }
            Origin::Notification if !self.settings.pinned_notification_registry => {
                registry.credentials = None;
            }
            Origin::Notification => {}
        }
        // Plain HTTP (and unverified TLS) where Harbor or the operator named
        // an http:// registry; a notification's own URL gets it only for
        // loopback hosts and hosts the operator listed as insecure.
        let trusted_url =
            job.origin == Origin::Harbor || self.settings.pinned_notification_registry;
        if plain_http && trusted_url && !registry.insecure_registries.contains(&host) {
            registry.insecure_registries.push(host);
        }
        if let Some(authorization) = authorization {
            authorization.apply(&mut registry)?;
        }
        let request = ScanRequest::new(Target::Registry(reference.clone()), reference)
            .registry(registry)
            .platform(self.settings.platform.clone());
        let mut report = self
            .scanner
            .scan_async(request)
            .await
            .map_err(|e| error_chain(&e))?;
        if let Some(allowlist) = &self.settings.allowlist {
            allowlist.apply_today(&mut report);
        }
        report.finish();
        Ok(report)
    }

    /// Changes job `id` in memory and on disk; returns it as changed.
    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) -> Option<Job> {
        let job = {
            let mut jobs = lock(&self.jobs);
            let job = jobs.get_mut(id)?;
            change(job);
            job.clone()
        };
        if let Err(e) = store::write_json(&self.store.job_path(id), &job) {
            tracing::error!(job = %id, error = %e, "cannot record the job");
        }
        Some(job)
    }

    /// Notes `job` as the latest word on its digest.
    fn record_image(&self, job: &Job) {
        let _serial = lock(&self.images);
        let path = self.store.image_path(&job.artifact.digest);
        let previous: Option<ImageRecord> = store::read_json(&path).ok().flatten();
        // A job that ends after a newer one started does not take the
        // record, but a verdict it reached is still the latest verdict.
        if let Some(mut previous) = previous.clone()
            && previous.job != job.id
            && !previous.status.ended()
            && job.state.ended()
        {
            if let Some(verdict) = &job.verdict {
                previous.verdict = Some(verdict.clone());
                previous.scanned_at = job.finished_at.clone();
                previous.updated_at = now();
                if let Err(e) = store::write_json(&path, &previous) {
                    tracing::error!(digest = %job.artifact.digest, error = %e, "cannot record the image verdict");
                }
            }
            return;
        }
        let (verdict, scanned_at) = match &job.verdict {
            Some(v) => (Some(v.clone()), job.finished_at.clone()),
            None => previous
                .map(|p| (p.verdict, p.scanned_at))
                .unwrap_or_default(),
        };
        let record = ImageRecord {
            digest: job.artifact.digest.clone(),
            repository: job.artifact.repository.clone(),
            registry: job.registry.clone(),
            status: job.state,
            job: job.id.clone(),
            updated_at: now(),
            verdict,
            scanned_at,
            error: job.error.clone(),
        };
        if let Err(e) = store::write_json(&path, &record) {
            tracing::error!(digest = %job.artifact.digest, error = %e, "cannot record the image verdict");
        }
    }

    /// Forgets ended jobs (and their files) older than `max_age`.
    pub fn prune(&self, max_age: Duration) {
        let limit = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(max_age).unwrap_or_default())
            .unwrap_or_default();
        lock(&self.jobs).retain(|_, j| {
            let finished = j.finished_at.as_deref().and_then(|t| t.parse().ok());
            !(j.state.ended() && finished.is_some_and(|t: jiff::Timestamp| t < limit))
        });
        match self.store.prune(max_age) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "pruned old jobs, reports and verdicts"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the state directory"),
        }
    }
}

/// Whether `digest` is `sha256:` and 64 lower-case hex digits (what the
/// OpenAPI pattern says).
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Whether a stored job id can name a file: letters, digits and dashes
/// (ids are UUIDs).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An error and its causes, each once: "a: b: c".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The image reference of `artifact` in the registry at `registry_url`, the
/// registry's `host[:port]`, and whether it speaks plain HTTP.
pub fn reference(
    registry_url: &str,
    artifact: &Artifact,
) -> Result<(String, String, bool), String> {
    let url = registry_url.strip_suffix('/').unwrap_or(registry_url);
    let (plain_http, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else {
        return Err(format!(
            "registry.url {registry_url:?} must start with http:// or https://"
        ));
    };
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return Err(format!(
            "registry.url {registry_url:?} must be a base URL: scheme, host and port only"
        ));
    }
    if !valid_repository(&artifact.repository) {
        return Err(format!(
            "artifact.repository {:?} is not a repository name",
            artifact.repository
        ));
    }
    if !valid_digest(&artifact.digest) {
        return Err(format!(
            "artifact.digest {:?} is not a sha256 digest",
            artifact.digest
        ));
    }
    if let Some(mime) = &artifact.mime_type
        && !mime.is_empty()
        && !crate::harbor::CONSUMES.contains(&mime.as_str())
    {
        return Err(format!(
            "artifact.mime_type {mime:?} is not an image manifest or index"
        ));
    }
    Ok((
        format!("{rest}/{}@{}", artifact.repository, artifact.digest),
        rest.to_string(),
        plain_http,
    ))
}

/// A repository name as the distribution spec allows (and the OpenAPI
/// pattern says): components of lower-case letters and digits, joined inside
/// by `.`, `_`, `__` or a run of `-`, split by `/`; at most 255 bytes.
fn valid_repository(name: &str) -> bool {
    name.len() <= 255
        && name.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
                return false;
            }
            // Every run of separators must be one the grammar allows.
            component
                .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                .all(|sep| {
                    sep.is_empty()
                        || sep == "."
                        || sep == "_"
                        || sep == "__"
                        || sep.bytes().all(|b| b == b'-')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(repository: &str, digest: &str) -> Artifact {
        Artifact {
            repository: repository.into(),
            digest: digest.into(),
            ..Artifact::default()
        }
    }

    #[test]
    fn references_come_from_the_registry_url_and_the_artifact() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let (image, host, plain) =
            reference("http://core:8080/", &artifact("library/app", &digest)).unwrap();
        assert_eq!(image, format!("core:8080/library/app@{digest}"));
        assert_eq!(host, "core:8080");
        assert!(plain);
        assert!(!reference_ok("https://h", "library/app", &digest).2);
        reference_ok("http://h", "a__b/c--d/e.f_g", &digest);
        for (url, repo, digest) in [
            ("ftp://h", "a", digest.as_str()),
            ("http://h/path", "a", digest.as_str()),
            ("http://h", "UPPER", digest.as_str()),
            ("http://h", "a//b", digest.as_str()),
            ("http://h", "a..b", digest.as_str()),
            ("http://h", "a___b", digest.as_str()),
            (" http://h", "a", digest.as_str()),
            ("http://h", "a", "sha256:abc"),
            ("http://h", "a", "latest"),
        ] {
            assert!(
                reference(url, &artifact(repo, digest)).is_err(),
                "{url} {repo} {digest}"
            );
        }
    }

    fn reference_ok(url: &str, repo: &str, digest: &str) -> (String, String, bool) {
        reference(url, &artifact(repo, digest)).unwrap()
    }

    #[test]
    fn authorization_headers_parse() {
        let mut registry = RegistryOptions::default();
        Authorization::parse("Basic dXNlcjpwYTpzcw==")
            .unwrap()
            .apply(&mut registry)
            .unwrap();
        let c = registry.credentials.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pa:ss")
        );
        let mut registry = RegistryOptions::default();
        assert!(
            Authorization::parse("basic !!!")
                .unwrap()
                .apply(&mut registry)
                .is_err()
        );
        assert!(matches!(
            Authorization::parse("Bearer abc.def").unwrap(),
            Authorization::Bearer(t) if t == "abc.def"
        ));
        for bad in ["", "Basic", "Digest x", "Bearer "] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
    }
}
