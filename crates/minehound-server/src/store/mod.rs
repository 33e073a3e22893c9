//! Where the service keeps its jobs, their reports and the verdict per image
//! digest, and how jobs reach a worker: files in a state directory for one
//! machine ([`files`]), or a PostgreSQL database that many replicas share
//! ([`postgres`]). Both keep the same records and answer the same questions;
//! the service does not know which one it talks to.

use std::time::Duration;

use crate::job::{ImageRecord, Job, JobState};
use crate::service::SubmitError;

pub(crate) mod files;
pub(crate) mod postgres;

pub(crate) use files::FileStore;
pub(crate) use postgres::DatabaseStore;

/// The service's records, in files or in a database.
#[derive(Debug)]
pub(crate) enum JobStore {
    /// One machine: a state directory and an in-memory queue.
    Files(FileStore),
    /// Many replicas: one database, one queue.
    Database(DatabaseStore),
}

/// What a store tells a worker that asked for the next job.
pub(crate) struct Claimed {
    /// The job, now `running` for this worker.
    pub job: Job,
    /// Fires if this replica loses the job's lease (another replica may run
    /// it now): the worker stops the scan and records nothing.
    pub lost: std::sync::Arc<tokio::sync::Notify>,
}

impl JobStore {
    /// Records a new `queued` job, unless `unless_pending` and a scan of the
    /// same digest is queued or running, or `queue_size` jobs wait already.
    pub async fn submit(
        &self,
        job: &Job,
        unless_pending: bool,
        queue_size: usize,
    ) -> Result<(), SubmitError> {
        match self {
            JobStore::Files(s) => s.submit(job, unless_pending, queue_size),
            JobStore::Database(s) => s.submit(job, unless_pending, queue_size).await,
        }
    }

    /// Waits for the next job this replica may run and marks it running.
    /// `None` once the store is closing.
    pub async fn next(&self) -> Option<Claimed> {
        match self {
            JobStore::Files(s) => s.next().await,
            JobStore::Database(s) => s.next().await,
        }
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> std::io::Result<Option<Job>> {
        match self {
            JobStore::Files(s) => Ok(s.job(id)),
            JobStore::Database(s) => s.job(id).await,
        }
    }

    /// Records how a job this worker runs ended (or changed). `Ok(false)`:
    /// the job's lease was lost, and the record belongs to someone else now.
    pub async fn save(&self, job: &Job) -> std::io::Result<bool> {
        match self {
            JobStore::Files(s) => s.save(job).map(|()| true),
            JobStore::Database(s) => s.save(job).await,
        }
    }

    /// Keeps a finished job's report (the scanner's JSON, byte for byte).
    /// `Ok(false)`: the job's lease was lost, and its report is someone else's.
    pub async fn put_report(&self, id: &str, report: Vec<u8>) -> std::io::Result<bool> {
        match self {
            JobStore::Files(s) => s.put_report(id, &report).map(|()| true),
            JobStore::Database(s) => s.put_report(id, report).await,
        }
    }

    /// The worker is done with job `id`, however it ended.
    pub fn done(&self, id: &str) {
        if let JobStore::Database(s) = self {
            s.done(id);
        }
    }

    /// A finished job's report.
    pub async fn report(&self, id: &str) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            JobStore::Files(s) => s.report(id).await,
            JobStore::Database(s) => s.report(id).await,
        }
    }

    /// The latest record for an image digest.
    pub async fn image(&self, digest: &str) -> std::io::Result<Option<ImageRecord>> {
        match self {
            JobStore::Files(s) => s.image(digest),
            JobStore::Database(s) => s.image(digest).await,
        }
    }

    /// Notes `job` as the latest word on its digest (see [`next_image_record`]).
    pub async fn record_image(&self, job: &Job) -> std::io::Result<()> {
        match self {
            JobStore::Files(s) => s.record_image(job),
            JobStore::Database(s) => s.record_image(job).await,
        }
    }

    /// How many jobs wait for a worker (every replica's, for a database).
    pub async fn queued(&self) -> std::io::Result<usize> {
        match self {
            JobStore::Files(s) => Ok(s.queued()),
            JobStore::Database(s) => s.queued().await,
        }
    }

    /// Whether the store can take a write now (for `/readyz`).
    pub async fn ready(&self) -> bool {
        match self {
            JobStore::Files(s) => s.writable(),
            JobStore::Database(s) => s.ready().await,
        }
    }

    /// Forgets ended jobs, their reports and verdicts older than `max_age`;
    /// returns how many records went.
    pub async fn prune(&self, max_age: Duration) -> std::io::Result<u64> {
        match self {
            JobStore::Files(s) => s.prune(max_age),
            JobStore::Database(s) => s.prune(max_age).await,
        }
    }

    /// Whether records written by other processes can change under this one
    /// (a shared database): waits then also poll.
    pub fn shared(&self) -> bool {
        matches!(self, JobStore::Database(_))
    }
}

/// A mutex's guard, also after a panic elsewhere poisoned it (the data it
/// guards stays consistent: every update is a single insert or remove).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now, as records write it (RFC 3339).
pub(crate) fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// The image record after `job` changed, given the `previous` one; `None`
/// when the record stays as it is.
///
/// A job that ends after a newer one started does not take the record, but
/// a verdict it reached is still the latest verdict.
pub(crate) fn next_image_record(previous: Option<ImageRecord>, job: &Job) -> Option<ImageRecord> {
    let now = now();
    // Writers race (replicas, a late `queued` after a quick scan): a job's
    // own record only moves forward, queued → running → ended.
    let rank = |state: JobState| match state {
        JobState::Queued => 0,
        JobState::Running => 1,
        JobState::Finished | JobState::Failed => 2,
    };
    if let Some(previous) = &previous
        && previous.job == job.id
        && rank(previous.status) > rank(job.state)
    {
        return None;
    }
    if let Some(mut previous) = previous.clone()
        && previous.job != job.id
        && !previous.status.ended()
        && job.state.ended()
    {
        let verdict = job.verdict.as_ref()?;
        previous.verdict = Some(verdict.clone());
        previous.scanned_at = job.finished_at.clone();
        previous.updated_at = now;
        return Some(previous);
    }
    let (verdict, scanned_at) = match &job.verdict {
        Some(v) => (Some(v.clone()), job.finished_at.clone()),
        None => previous
            .map(|p| (p.verdict, p.scanned_at))
            .unwrap_or_default(),
    };
    Some(ImageRecord {
        digest: job.artifact.digest.clone(),
        repository: job.artifact.repository.clone(),
        registry: job.registry.clone(),
        status: job.state,
        job: job.id.clone(),
        updated_at: now,
        verdict,
        scanned_at,
        error: job.error.clone(),
    })
}
