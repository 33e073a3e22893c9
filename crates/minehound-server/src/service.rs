//! The service's core: jobs, the bounded queue they wait in, the workers that
//! scan them, and the verdict each image digest ends with.
//!
//! A job is accepted only if the queue has room (else the caller is told to
//! come back later), recorded in the store (files, or a database replicas
//! share) before it is queued, and scanned by one of a fixed number of
//! workers. Every worker shares one [`Scanner`], hence one
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
use tokio::sync::watch;

use crate::authorization::Authorization;
use crate::checks::{error_chain, reference};
use crate::harbor::Artifact;
use crate::job::{ImageRecord, Job, JobState, Origin, Verdict};
use crate::metrics::{Metrics, ScanFailure};
use crate::store::{Claimed, JobStore, lock, now};

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
    pub(crate) store: JobStore,
    pub(crate) metrics: Metrics,
    /// Authorization of queued Harbor jobs, in memory only.
    secrets: Mutex<HashMap<String, Authorization>>,
    /// How many jobs may wait for a worker.
    queue_size: usize,
    /// Counts ended jobs, so callers can wait for a verdict.
    ended: watch::Sender<u64>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("scanner", &self.scanner)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// How often a caller waiting for a verdict looks at a shared store, where
/// another replica may end the scan.
const SHARED_POLL: Duration = Duration::from_millis(250);

impl Service {
    /// Starts `workers` workers on the current tokio runtime, taking jobs
    /// from `store`; `ended` are jobs the store ended while opening, whose
    /// images' records must say so.
    pub(crate) async fn start(
        scanner: Scanner,
        settings: ScanSettings,
        store: JobStore,
        ended: Vec<Job>,
        workers: usize,
        queue_size: usize,
    ) -> Arc<Service> {
        let mut metrics = Metrics::new();
        if let JobStore::Database(db) = &store {
            metrics.register_database(db.leases_lost.clone(), db.errors.clone());
        }
        let service = Arc::new(Service {
            scanner,
            settings,
            store,
            metrics,
            secrets: Mutex::new(HashMap::new()),
            queue_size: queue_size.max(1),
            ended: watch::Sender::new(0),
        });
        for job in &ended {
            service.record_image(job).await;
        }
        for _ in 0..workers.max(1) {
            let service = Arc::clone(&service);
            tokio::spawn(async move {
                while let Some(claimed) = service.store.next().await {
                    service.run(claimed).await;
                }
            });
        }
        if let JobStore::Database(_) = &service.store {
            let beating = Arc::clone(&service);
            tokio::spawn(async move { beating.heartbeat().await });
        }
        service
    }

    /// Keeps this replica's leases and presence alive in a shared store.
    async fn heartbeat(self: Arc<Self>) {
        let JobStore::Database(db) = &self.store else {
            return;
        };
        let mut every = tokio::time::interval(db.heartbeat_every());
        loop {
            every.tick().await;
            match db.beat().await {
                Ok(ended) => {
                    for job in &ended {
                        tracing::warn!(job = %job.id, "a scan ended: the replica holding its registry authorization is gone");
                        self.record_image(job).await;
                    }
                    if !ended.is_empty() {
                        self.ended.send_modify(|n| *n += 1);
                    }
                }
                Err(e) => {
                    db.errors.inc();
                    tracing::warn!(error = %e, "the database is out of reach; leases run out unless it comes back");
                }
            }
        }
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> std::io::Result<Option<Job>> {
        self.store.job(id).await
    }

    /// A finished job's report.
    pub async fn report(&self, id: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.store.report(id).await
    }

    /// The latest record for an image digest.
    pub async fn image(&self, digest: &str) -> std::io::Result<Option<ImageRecord>> {
        self.store.image(digest).await
    }

    /// Whether the queue has room (`Err` when the store cannot say).
    pub async fn accepting(&self) -> std::io::Result<bool> {
        let queued = self.store.queued().await?;
        self.metrics.queued.set(queued as i64);
        Ok(queued < self.queue_size)
    }

    /// Accepts a scan of `artifact` in the registry at `registry` and queues
    /// it; with `unless_pending`, not when a scan of the same digest is
    /// queued or running already.
    pub async fn submit(
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
        // Kept before the job can reach a worker.
        if let Some(authorization) = authorization {
            lock(&self.secrets).insert(job.id.clone(), authorization);
        }
        if let Err(e) = self
            .store
            .submit(&job, unless_pending, self.queue_size)
            .await
        {
            lock(&self.secrets).remove(&job.id);
            return Err(e);
        }
        self.record_image(&job).await;
        tracing::info!(job = %job.id, origin = origin.as_str(), repository = %job.artifact.repository, digest = %job.artifact.digest, "scan queued");
        Ok(job)
    }

    /// Scans a claimed job and records how it ended.
    async fn run(&self, claimed: Claimed) {
        let Claimed { mut job, lost } = claimed;
        let id = job.id.clone();
        self.record_image(&job).await;
        let authorization = lock(&self.secrets).remove(&id);
        self.metrics.running.inc();
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = self.scan(&job, authorization) => Some(outcome),
            () = lost.notified() => None,
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.running.dec();
        self.metrics.duration.observe(seconds);
        // Another replica runs the job now: its record is theirs.
        let Some(outcome) = outcome else {
            self.store.done(&id);
            return;
        };
        let saved = match outcome {
            Ok(report) => self.keep_report(&id, report).await,
            Err(error) => Err(error),
        };
        match saved {
            Ok(report) => {
                let verdict = Verdict::of(&report, self.settings.fail_on);
                self.metrics.scan_finished(job.origin, &report);
                tracing::info!(job = %id, digest = %job.artifact.digest, verdict = %verdict.verdict, findings = verdict.findings, layers = verdict.layers, layers_cached = verdict.layers_cached, seconds, "scan finished");
                job.state = JobState::Finished;
                job.verdict = Some(verdict);
            }
            Err(error) => {
                self.metrics.scan_failed(job.origin);
                tracing::warn!(job = %id, digest = %job.artifact.digest, error = %error, seconds, "scan failed");
                job.state = JobState::Failed;
                job.error = Some(error);
            }
        }
        job.finished_at = Some(now());
        let kept = self.finish(&job).await;
        self.store.done(&id);
        if kept {
            self.record_image(&job).await;
        }
        self.ended.send_modify(|n| *n += 1);
    }

    /// Stores a scan's report; a report with files the scanner failed on
    /// vouches for nothing, so the job fails (its report kept for whoever
    /// looks).
    async fn keep_report(&self, id: &str, report: Report) -> Result<Report, String> {
        let bytes =
            serde_json::to_vec(&report).map_err(|e| format!("cannot store the report: {e}"))?;
        let kept = retry("store the report", || {
            self.store.put_report(id, bytes.clone())
        })
        .await
        .map_err(|e| format!("cannot store the report: {e}"))?;
        if !kept {
            return Err("this replica lost the job's lease; another replica runs it".into());
        }
        if report.incomplete() {
            self.metrics
                .scan_failure(ScanFailure::Files, report.stats.files_failed);
            return Err(incomplete_reason(&report));
        }
        Ok(report)
    }

    /// Records how a job ended, trying again while the store is away (a
    /// database restarting): an accepted job ends once it is back. `false`
    /// when the job's lease was lost meanwhile.
    async fn finish(&self, job: &Job) -> bool {
        match retry("record the job", || self.store.save(job)).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "cannot record the job");
                false
            }
        }
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
            let record = self.image(digest).await?;
            if record.as_ref().is_none_or(|r| r.status.ended()) {
                return Ok(record);
            }
            // Another replica may end it: a shared store is looked at again
            // now and then.
            let wake = match self.store.shared() {
                true => deadline.min(tokio::time::Instant::now() + SHARED_POLL),
                false => deadline,
            };
            if tokio::time::timeout_at(wake, ended.changed())
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
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

    /// Notes `job` as the latest word on its digest.
    async fn record_image(&self, job: &Job) {
        if let Err(e) = self.store.record_image(job).await {
            tracing::error!(digest = %job.artifact.digest, error = %e, "cannot record the image verdict");
        }
    }

    /// Forgets ended jobs, their reports and verdicts older than `max_age`.
    pub async fn prune(&self, max_age: Duration) {
        match self.store.prune(max_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "pruned old jobs, reports and verdicts"),
            Err(e) => tracing::warn!(error = %e, "cannot prune old jobs, reports and verdicts"),
        }
    }
}

/// Runs `write` until it succeeds, waiting longer each time (up to 10 s),
/// for at most [`STORE_RETRY_FOR`].
async fn retry<T, F: Future<Output = std::io::Result<T>>>(
    what: &str,
    mut write: impl FnMut() -> F,
) -> std::io::Result<T> {
    let give_up = Instant::now() + STORE_RETRY_FOR;
    let mut wait = Duration::from_millis(200);
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() + wait < give_up => {
                tracing::warn!(error = %e, "cannot {what} yet; trying again in {} ms", wait.as_millis());
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long a finished scan keeps trying to record itself.
const STORE_RETRY_FOR: Duration = Duration::from_secs(15 * 60);
