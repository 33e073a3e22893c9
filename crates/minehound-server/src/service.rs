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
    Allowlist, ErrorKind, PlatformChoice, RegistryOptions, Report, ScanRequest, Scanner, Severity,
    Target,
};
use tokio::sync::{mpsc, watch};

use crate::authorization::Authorization;
use crate::checks::{error_chain, reference, valid_id};
use crate::harbor::Artifact;
use crate::job::{ImageRecord, Job, JobState, Origin, Verdict};
use crate::metrics::{Metrics, ScanFailure};
use crate::store::{self, Store};

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

/// Why a job with an incomplete report failed: how many files, the first few.
fn incomplete_reason(report: &Report) -> String {
    let failed: Vec<String> = report
        .skipped
        .iter()
        .filter(|s| s.failed)
        .take(3)
        .map(|s| format!("{}: {}", s.path, s.reason))
        .collect();
    format!(
        "the scan is incomplete: the scanner failed on {} file(s), which have no verdict ({})",
        report.stats.files_failed,
        failed.join("; ")
    )
}

/// `90 s`, `1.5 s`.
fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
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
    /// The longest one job may take.
    pub job_timeout: Duration,
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
    /// Counts ended jobs, so callers can wait for a verdict.
    ended: watch::Sender<u64>,
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
            ended: watch::Sender::new(0),
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
            // A report with files the scanner failed on vouches for nothing:
            // the job fails (its report is kept for whoever looks).
            if report.incomplete() {
                self.metrics
                    .scan_failure(ScanFailure::Files, report.stats.files_failed);
                return Err(incomplete_reason(&report));
            }
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
        self.ended.send_modify(|n| *n += 1);
    }

    /// Waits until the latest scan of `digest` has ended, or `deadline`
    /// passes; returns the image's record as it is then.
    pub async fn wait_for_image(
        &self,
        digest: &str,
        deadline: tokio::time::Instant,
    ) -> std::io::Result<Option<ImageRecord>> {
        let mut ended = self.ended.subscribe();
        loop {
            // Subscribed first, so an end between the read and the wait is seen.
            ended.borrow_and_update();
            let record = self.image(digest)?;
            if record.as_ref().is_none_or(|r| r.status.ended()) {
                return Ok(record);
            }
            if tokio::time::timeout_at(deadline, ended.changed())
                .await
                .is_err()
            {
                return Ok(record);
            }
        }
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
            // Images a pod names: the Docker config's credentials go to the
            // registry they are filed under; --username, given for one
            // registry, goes to none of the hosts pods name.
            Origin::Admission => registry.credentials = None,
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
        let mut report = self.scan_within_deadline(request).await?;
        if let Some(allowlist) = &self.settings.allowlist {
            allowlist.apply_today(&mut report);
        }
        report.finish();
        Ok(report)
    }

    /// Runs one scan on a task of its own, so that its panic is this job's
    /// failure and never a worker's end, and cancels it at the job deadline.
    async fn scan_within_deadline(&self, request: ScanRequest) -> Result<Report, String> {
        let scanner = self.scanner.clone();
        let limit = self.settings.job_timeout;
        let scan = tokio::spawn(async move {
            // Dropping the scan at the deadline cancels it: its threads stop
            // at their next block or file.
            tokio::time::timeout(limit, scanner.scan_async(request)).await
        });
        match scan.await {
            Ok(Ok(Ok(report))) => Ok(report),
            Ok(Ok(Err(err))) => {
                if err.kind() == ErrorKind::Engine {
                    self.metrics.scan_failure(ScanFailure::Engine, 1);
                }
                Err(error_chain(&err))
            }
            Ok(Err(_elapsed)) => {
                self.metrics.scan_failure(ScanFailure::Deadline, 1);
                Err(format!(
                    "the scan ran past the job time limit of {} and was stopped (--job-timeout)",
                    seconds(limit)
                ))
            }
            Err(join) => {
                self.metrics.scan_failure(ScanFailure::Panic, 1);
                let reason = match join.try_into_panic() {
                    Ok(panic) => minehound::panic_message(&*panic).to_string(),
                    Err(_) => "the scan's task was stopped".to_string(),
                };
                tracing::error!(error = %reason, "a scan panicked; the job fails, the service goes on");
                Err(format!("internal error: {reason}"))
            }
        }
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
