//! The store of one machine: jobs, their reports and the latest verdict per
//! image digest, one JSON file each under the state directory, and a queue
//! in memory (jobs a restart interrupted are queued again at start).
//!
//! Each file is written aside and renamed into place (the layer cache does the
//! same), so a crash never leaves a half-written record and a damaged file
//! costs only that record: it is logged and skipped, never a failed start.
//! Registry credentials are never written.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::{Claimed, lock, next_image_record, now};
use crate::checks::{reference, valid_id};
use crate::job::{ImageRecord, Job, JobState};
use crate::service::SubmitError;

/// Jobs in memory and in the state directory, and the queue they wait in.
#[derive(Debug)]
pub(crate) struct FileStore {
    store: Store,
    jobs: Mutex<HashMap<String, Job>>,
    queue: mpsc::Sender<String>,
    waiting: tokio::sync::Mutex<mpsc::Receiver<String>>,
    queued: AtomicUsize,
    /// Serialises updates of image records.
    images: Mutex<()>,
}

impl FileStore {
    /// Opens the state directory in `dir` and queues again the jobs a
    /// restart interrupted. Jobs that needed registry authorization cannot
    /// be resumed (it is never written): they end failed, and are returned
    /// so their images' records can say so.
    pub fn open(dir: &Path, queue_size: usize) -> io::Result<(FileStore, Vec<Job>)> {
        let store = Store::open(dir)?;
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
                job.error = Some(RESTARTED_WITHOUT_AUTHORIZATION.into());
                write_json(&store.job_path(&job.id), job)?;
                failed.push(job.clone());
            } else {
                job.state = JobState::Queued;
                again.push(job.id.clone());
            }
        }
        let (tx, rx) = mpsc::channel(queue_size.max(1) + again.len());
        if !again.is_empty() {
            tracing::info!(
                jobs = again.len(),
                "re-queueing scans a restart interrupted"
            );
        }
        let queued = AtomicUsize::new(again.len());
        for id in again {
            // The channel has room for every one of them.
            let _ = tx.try_send(id);
        }
        let files = FileStore {
            store,
            jobs: Mutex::new(jobs.into_iter().map(|j| (j.id.clone(), j)).collect()),
            queue: tx,
            waiting: tokio::sync::Mutex::new(rx),
            queued,
            images: Mutex::new(()),
        };
        Ok((files, failed))
    }

    pub fn submit(
        &self,
        job: &Job,
        unless_pending: bool,
        queue_size: usize,
    ) -> Result<(), SubmitError> {
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
            if self.queued.load(Ordering::SeqCst) >= queue_size {
                return Err(SubmitError::QueueFull);
            }
            let permit = self
                .queue
                .try_reserve()
                .map_err(|_| SubmitError::QueueFull)?;
            jobs.insert(job.id.clone(), job.clone());
            self.queued.fetch_add(1, Ordering::SeqCst);
            permit
        };
        if let Err(e) = write_json(&self.store.job_path(&job.id), job) {
            lock(&self.jobs).remove(&job.id);
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Store(e));
        }
        permit.send(job.id.clone());
        Ok(())
    }

    pub async fn next(&self) -> Option<Claimed> {
        loop {
            let id = self.waiting.lock().await.recv().await?;
            self.queued.fetch_sub(1, Ordering::SeqCst);
            let job = {
                let mut jobs = lock(&self.jobs);
                let Some(job) = jobs.get_mut(&id) else {
                    continue;
                };
                job.state = JobState::Running;
                job.started_at = Some(now());
                job.clone()
            };
            if let Err(e) = write_json(&self.store.job_path(&id), &job) {
                tracing::error!(job = %id, error = %e, "cannot record the job");
            }
            // Nobody else runs this machine's jobs: the lease is never lost.
            return Some(Claimed {
                job,
                lost: Arc::default(),
            });
        }
    }

    pub fn job(&self, id: &str) -> Option<Job> {
        lock(&self.jobs).get(id).cloned()
    }

    pub fn save(&self, job: &Job) -> io::Result<()> {
        lock(&self.jobs).insert(job.id.clone(), job.clone());
        write_json(&self.store.job_path(&job.id), job)
    }

    pub fn put_report(&self, id: &str, report: &[u8]) -> io::Result<()> {
        write_bytes(&self.store.report_path(id), report)
    }

    pub async fn report(&self, id: &str) -> io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.store.report_path(id)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn image(&self, digest: &str) -> io::Result<Option<ImageRecord>> {
        read_json(&self.store.image_path(digest))
    }

    pub fn record_image(&self, job: &Job) -> io::Result<()> {
        let _serial = lock(&self.images);
        let path = self.store.image_path(&job.artifact.digest);
        let previous: Option<ImageRecord> = read_json(&path).ok().flatten();
        match next_image_record(previous, job) {
            Some(record) => write_json(&path, &record),
            None => Ok(()),
        }
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    pub fn writable(&self) -> bool {
        self.store.writable()
    }

    /// Forgets ended jobs (in memory and on disk) older than `max_age`.
    pub fn prune(&self, max_age: Duration) -> io::Result<u64> {
        let limit = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(max_age).unwrap_or_default())
            .unwrap_or_default();
        lock(&self.jobs).retain(|_, j| {
            let finished = j.finished_at.as_deref().and_then(|t| t.parse().ok());
            !(j.state.ended() && finished.is_some_and(|t: jiff::Timestamp| t < limit))
        });
        self.store.prune(max_age).map(|n| n as u64)
    }
}

/// Why a job that needed registry authorization ended when its service did.
pub(crate) const RESTARTED_WITHOUT_AUTHORIZATION: &str = "the service restarted before this scan finished; its registry authorization is not kept, so scan again";

/// The state directory's layout.
#[derive(Debug, Clone)]
struct Store {
    jobs: PathBuf,
    reports: PathBuf,
    images: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`, private to this user.
    pub fn open(dir: &Path) -> io::Result<Store> {
        let store = Store {
            jobs: dir.join("jobs-v1"),
            reports: dir.join("reports-v1"),
            images: dir.join("images-v1"),
        };
        for d in [dir, &store.jobs, &store.reports, &store.images] {
            create_private_dir(d)?;
        }
        Ok(store)
    }

    /// Whether the store can take a write now (for `/readyz`).
    pub fn writable(&self) -> bool {
        let probe = self.jobs.join(".probe");
        let ok = fs::write(&probe, b"ok").is_ok();
        let _ = fs::remove_file(probe);
        ok
    }

    /// The file of job `id`'s record.
    pub fn job_path(&self, id: &str) -> PathBuf {
        self.jobs.join(format!("{id}.json"))
    }

    /// The file of job `id`'s minehound report.
    pub fn report_path(&self, id: &str) -> PathBuf {
        self.reports.join(format!("{id}.json"))
    }

    /// The file of the verdict for image `digest` (`sha256:…`).
    pub fn image_path(&self, digest: &str) -> PathBuf {
        self.images
            .join(format!("{}.json", digest.replace(':', "-")))
    }

    /// Every record in the jobs directory; damaged ones are logged and left out.
    pub fn load_jobs<T: DeserializeOwned>(&self) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.jobs)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_json(&path) {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a damaged job record")
                }
            }
        }
        Ok(out)
    }

    /// Removes jobs, reports and verdicts last written before `max_age` ago.
    /// Returns how many files went.
    pub fn prune(&self, max_age: Duration) -> io::Result<usize> {
        let Some(limit) = SystemTime::now().checked_sub(max_age) else {
            return Ok(0);
        };
        let mut removed = 0;
        for dir in [&self.jobs, &self.reports, &self.images] {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < limit);
                if old && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Reads a JSON record: `Ok(None)` when there is no such file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `value` as JSON to `path`: into a private temporary file beside
/// it, then renamed into place (as the layer cache writes its entries). No
/// fsync: a record lost to a power cut only costs a scan (Harbor asks again;
/// a damaged file is skipped), and accepting a job must stay cheap.
pub fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_bytes(path, &bytes)
}

/// Writes `bytes` aside and renames them into place.
fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut staged = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    staged.write_all(bytes)?;
    staged.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_records_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        write_json(&store.job_path("a"), &serde_json::json!({"id": "a"})).unwrap();
        fs::write(store.job_path("b"), b"{\"id\": \"b\", trunc").unwrap();
        let jobs: Vec<serde_json::Value> = store.load_jobs().unwrap();
        assert_eq!(jobs, vec![serde_json::json!({"id": "a"})]);
        assert!(store.writable());
        assert!(
            read_json::<serde_json::Value>(&store.job_path("none"))
                .unwrap()
                .is_none()
        );
    }
}
