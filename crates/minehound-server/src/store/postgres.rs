//! The store replicas share: jobs, reports and verdicts in PostgreSQL, and
//! one queue every replica takes jobs from.
//!
//! A worker claims the oldest job nobody runs (`FOR UPDATE SKIP LOCKED`, so
//! replicas never wait on each other's claims) under a lease its replica's
//! heartbeat extends. A replica that dies stops extending: once the lease has
//! run out another replica takes the job, up to [`MAX_ATTEMPTS`] times. A
//! replica that cannot extend a lease in time (the database was away) stops
//! that scan, so a job never runs on two replicas at once.
//!
//! Harbor's registry authorization stays in the memory of the replica that
//! accepted the scan: its job is pinned to that replica, and fails with the
//! reason if the replica goes away before running it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minehound_postgres::{Database, error, interval, tokio_postgres};
use tokio::sync::Notify;

use super::files::RESTARTED_WITHOUT_AUTHORIZATION;
use super::{Claimed, lock, next_image_record, now};
use crate::job::{ImageRecord, Job, JobState};
use crate::service::SubmitError;

/// How many times a job is started before it ends failed: each start that
/// did not finish was a replica lost mid-scan.
pub(crate) const MAX_ATTEMPTS: i32 = 3;
/// How often an idle worker looks for a job another replica queued.
const POLL: Duration = Duration::from_millis(500);

/// Jobs, reports and verdicts in a database shared by replicas.
pub(crate) struct DatabaseStore {
    database: Database,
    /// This replica's name in the database (new at every start).
    replica: String,
    /// How long a claim on a job lasts unless the heartbeat extends it.
    lease: Duration,
    /// Wakes this replica's idle workers when it queues a job itself.
    queued_here: Notify,
    /// The jobs this replica runs, and how to tell each worker it lost one.
    running: Mutex<HashMap<String, Arc<Notify>>>,
    /// When the last heartbeat that reached the database started: leases
    /// run until at least then plus a lease.
    renewed_at: Mutex<Instant>,
    /// Counts leases this replica lost and database errors (for metrics).
    pub(crate) leases_lost: prometheus_client::metrics::counter::Counter,
    pub(crate) errors: prometheus_client::metrics::counter::Counter,
}

impl std::fmt::Debug for DatabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseStore")
            .field("database", &self.database)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Finished => "finished",
        JobState::Failed => "failed",
    }
}

fn to_value(job: &Job) -> std::io::Result<serde_json::Value> {
    serde_json::to_value(job).map_err(std::io::Error::other)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> std::io::Result<T> {
    serde_json::from_str(text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl DatabaseStore {
    /// Registers this replica in `database`; its heartbeat starts with
    /// [`start_heartbeat`](Self::start_heartbeat).
    pub async fn open(database: Database, lease: Duration) -> std::io::Result<DatabaseStore> {
        let replica = uuid::Uuid::new_v4().to_string();
        database
            .client()
            .await?
            .execute(
                "INSERT INTO minehound_replicas (id) VALUES ($1)",
                &[&replica],
            )
            .await
            .map_err(|e| error(&e))?;
        tracing::info!(replica = %replica, database = %database.shown(), "sharing jobs, verdicts and layers through the database");
        Ok(DatabaseStore {
            database,
            replica,
            lease: lease.max(Duration::from_secs(1)),
            queued_here: Notify::new(),
            running: Mutex::default(),
            renewed_at: Mutex::new(Instant::now()),
            leases_lost: Default::default(),
            errors: Default::default(),
        })
    }

    /// One heartbeat, within a third of a lease. When the database has not
    /// heard from this replica for so long that its leases may run out
    /// before the next beat, the replica stops every scan it runs itself:
    /// another replica may take those jobs, and a job must never run twice
    /// at once.
    pub async fn beat(&self) -> std::io::Result<Vec<Job>> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.heartbeat_every(), self.heartbeat())
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::other(
                    "the database did not answer the heartbeat in time",
                ))
            });
        match &outcome {
            Ok(_) => *lock(&self.renewed_at) = started,
            Err(_) => {
                let silent = lock(&self.renewed_at).elapsed();
                if silent + self.heartbeat_every() >= self.lease {
                    let held: Vec<String> = lock(&self.running).keys().cloned().collect();
                    for id in held {
                        self.lose(&id);
                    }
                }
            }
        }
        outcome
    }

    /// Every third of a lease: tells the database this replica lives,
    /// extends the leases of the jobs it runs (stopping those it lost), and
    /// ends the jobs of replicas gone with registry authorization only they
    /// held. Returns the jobs it ended, so their images' records follow.
    async fn heartbeat(&self) -> std::io::Result<Vec<Job>> {
        let client = self.database.client().await?;
        client
            .execute(
                "UPDATE minehound_replicas SET seen_at = now() WHERE id = $1",
                &[&self.replica],
            )
            .await
            .map_err(|e| error(&e))?;
        let held: Vec<String> = lock(&self.running).keys().cloned().collect();
        if !held.is_empty() {
            let rows = client
                .query(
                    "UPDATE minehound_jobs SET lease_until = now() + $2::text::interval
                     WHERE lease_owner = $1 AND state = 'running' AND id = ANY($3)
                     RETURNING id",
                    &[&self.replica, &interval(self.lease), &held],
                )
                .await
                .map_err(|e| error(&e))?;
            let renewed: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            for id in held.iter().filter(|id| !renewed.contains(id)) {
                self.lose(id);
            }
        }
        let ended = client
            .query(
                "UPDATE minehound_jobs j SET state = 'failed', lease_owner = NULL, updated_at = now(),
                     record = j.record || jsonb_build_object('state', 'failed', 'finished_at', $2::text, 'error', $3::text)
                 WHERE j.state IN ('queued', 'running') AND j.pinned_to IS NOT NULL AND j.pinned_to <> $1
                   AND NOT EXISTS (SELECT 1 FROM minehound_replicas r
                                   WHERE r.id = j.pinned_to AND r.seen_at > now() - $4::text::interval)
                 RETURNING j.record::text",
                &[&self.replica, &now(), &RESTARTED_WITHOUT_AUTHORIZATION, &interval(self.lease)],
            )
            .await
            .map_err(|e| error(&e))?;
        Ok(ended
            .iter()
            .filter_map(|row| from_json(row.get(0)).ok())
            .collect())
    }

    /// How often the heartbeat runs: a third of a lease, so two missed beats
    /// still keep it.
    pub fn heartbeat_every(&self) -> Duration {
        self.lease / 3
    }

    /// This replica lost the lease on job `id`: its worker stops.
    fn lose(&self, id: &str) {
        if let Some(lost) = lock(&self.running).remove(id) {
            self.leases_lost.inc();
            tracing::warn!(job = %id, replica = %self.replica, "lost the lease on a job (the database was out of reach too long); stopping its scan, another replica takes it");
            lost.notify_one();
        }
    }

    /// The worker is done with job `id`, however it ended: its lease is no
    /// longer extended.
    pub fn done(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    pub async fn submit(
        &self,
        job: &Job,
        unless_pending: bool,
        queue_size: usize,
    ) -> Result<(), SubmitError> {
        let mut client = self.database.client().await.map_err(SubmitError::Store)?;
        let record = to_value(job).map_err(SubmitError::Store)?;
        let store = |e: tokio_postgres::Error| SubmitError::Store(error(&e));
        let transaction = client.transaction().await.map_err(store)?;
        // One digest at a time across replicas: two deliveries of one event
        // to two replicas queue one scan.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&job.artifact.digest],
            )
            .await
            .map_err(store)?;
        if unless_pending {
            let pending = transaction
                .query_opt(
                    "SELECT 1 FROM minehound_jobs WHERE digest = $1 AND state IN ('queued', 'running') LIMIT 1",
                    &[&job.artifact.digest],
                )
                .await
                .map_err(store)?;
            if pending.is_some() {
                return Err(SubmitError::AlreadyPending);
            }
        }
        let queued: i64 = transaction
            .query_one(
                "SELECT count(*) FROM minehound_jobs WHERE state = 'queued'",
                &[],
            )
            .await
            .map_err(store)?
            .get(0);
        if queued >= queue_size as i64 {
            return Err(SubmitError::QueueFull);
        }
        let pinned = job.authorized.then_some(self.replica.as_str());
        transaction
            .execute(
                "INSERT INTO minehound_jobs (id, digest, state, record, pinned_to) VALUES ($1, $2, 'queued', $3::text::jsonb, $4)",
                &[&job.id, &job.artifact.digest, &record.to_string(), &pinned],
            )
            .await
            .map_err(store)?;
        transaction.commit().await.map_err(store)?;
        self.queued_here.notify_one();
        Ok(())
    }

    pub async fn next(&self) -> Option<Claimed> {
        let mut backoff = POLL;
        loop {
            match self.claim().await {
                Ok(Some(claimed)) => return Some(claimed),
                Ok(None) => backoff = POLL,
                Err(e) => {
                    self.errors.inc();
                    tracing::warn!(error = %e, "cannot take a job from the database; trying again");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            let _ = tokio::time::timeout(backoff, self.queued_here.notified()).await;
        }
    }

    /// Claims the oldest job this replica may run, if any.
    async fn claim(&self) -> std::io::Result<Option<Claimed>> {
        let client = self.database.client().await?;
        loop {
            // Never a job this replica runs already, even if its lease ran
            // out while the database was away.
            let held: Vec<String> = lock(&self.running).keys().cloned().collect();
            let row = client
                .query_opt(
                    "WITH next AS (
                         SELECT id FROM minehound_jobs
                         WHERE (state = 'queued' OR (state = 'running' AND lease_until < now()))
                           AND (pinned_to IS NULL OR pinned_to = $1)
                           AND NOT (id = ANY($4))
                         ORDER BY created_at
                         LIMIT 1
                         FOR UPDATE SKIP LOCKED
                     )
                     UPDATE minehound_jobs j
                     SET state = 'running', lease_owner = $1, lease_until = now() + $2::text::interval,
                         attempts = j.attempts + 1, updated_at = now(),
                         record = j.record || jsonb_build_object('state', 'running', 'started_at', $3::text)
                     FROM next WHERE j.id = next.id
                     RETURNING j.id, j.record::text, j.attempts",
                    &[&self.replica, &interval(self.lease), &now(), &held],
                )
                .await
                .map_err(|e| error(&e))?;
            let Some(row) = row else { return Ok(None) };
            let id: String = row.get(0);
            let attempts: i32 = row.get(2);
            let mut job: Job = match from_json(row.get(1)) {
                Ok(job) => job,
                Err(e) => {
                    // A record nobody can run ends now, not at every claim.
                    tracing::error!(job = %id, error = %e, "a job record in the database does not parse; ending it failed");
                    client
                        .execute(
                            "UPDATE minehound_jobs SET state = 'failed', lease_owner = NULL, updated_at = now() WHERE id = $1",
                            &[&id],
                        )
                        .await
                        .map_err(|e| error(&e))?;
                    continue;
                }
            };
            let lost = Arc::new(Notify::new());
            lock(&self.running).insert(job.id.clone(), Arc::clone(&lost));
            if attempts > MAX_ATTEMPTS {
                // Every replica that took it went away mid-scan.
                job.state = JobState::Failed;
                job.finished_at = Some(now());
                job.error = Some(format!(
                    "the scan was started {MAX_ATTEMPTS} times and each time the replica running it stopped before it finished; not trying again"
                ));
                let saved = self.save(&job).await;
                self.done(&job.id);
                saved?;
                self.record_image(&job).await?;
                continue;
            }
            if attempts > 1 {
                tracing::info!(job = %job.id, attempt = attempts, "taking over a job whose replica stopped mid-scan");
            }
            return Ok(Some(Claimed { job, lost }));
        }
    }

    pub async fn job(&self, id: &str) -> std::io::Result<Option<Job>> {
        let row = self
            .database
            .client()
            .await?
            .query_opt(
                "SELECT record::text FROM minehound_jobs WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| error(&e))?;
        row.map(|row| from_json(row.get(0))).transpose()
    }

    /// Writes a job this replica runs; `Ok(false)` when its lease is gone.
    pub async fn save(&self, job: &Job) -> std::io::Result<bool> {
        let record = to_value(job)?.to_string();
        let ended = job.state.ended();
        let updated = self
            .database
            .client()
            .await?
            .execute(
                "UPDATE minehound_jobs SET record = $2::text::jsonb, state = $3, updated_at = now(),
                     lease_owner = CASE WHEN $4 THEN NULL ELSE lease_owner END
                 WHERE id = $1 AND lease_owner = $5",
                &[&job.id, &record, &state_name(job.state), &ended, &self.replica],
            )
            .await
            .map_err(|e| error(&e))?;
        if updated == 0 {
            self.lose(&job.id);
        } else if ended {
            lock(&self.running).remove(&job.id);
        }
        Ok(updated == 1)
    }

    /// Keeps the report of a job this replica runs; `Ok(false)` when its
    /// lease is gone (the report of whoever runs it now stands).
    pub async fn put_report(&self, id: &str, report: Vec<u8>) -> std::io::Result<bool> {
        let written = self
            .database
            .client()
            .await?
            .execute(
                "INSERT INTO minehound_reports (job, report)
                 SELECT $1, $2 WHERE EXISTS (
                     SELECT 1 FROM minehound_jobs WHERE id = $1 AND lease_owner = $3)
                 ON CONFLICT (job) DO UPDATE SET report = excluded.report, created_at = now()",
                &[&id, &report, &self.replica],
            )
            .await
            .map_err(|e| error(&e))?;
        Ok(written == 1)
    }

    pub async fn report(&self, id: &str) -> std::io::Result<Option<Vec<u8>>> {
        let row = self
            .database
            .client()
            .await?
            .query_opt(
                "SELECT report FROM minehound_reports WHERE job = $1",
                &[&id],
            )
            .await
            .map_err(|e| error(&e))?;
        Ok(row.map(|row| row.get(0)))
    }

    pub async fn image(&self, digest: &str) -> std::io::Result<Option<ImageRecord>> {
        let row = self
            .database
            .client()
            .await?
            .query_opt(
                "SELECT record::text FROM minehound_images WHERE digest = $1",
                &[&digest],
            )
            .await
            .map_err(|e| error(&e))?;
        row.map(|row| from_json(row.get(0))).transpose()
    }

    pub async fn record_image(&self, job: &Job) -> std::io::Result<()> {
        let mut client = self.database.client().await?;
        let transaction = client.transaction().await.map_err(|e| error(&e))?;
        let digest = &job.artifact.digest;
        transaction
            .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[digest])
            .await
            .map_err(|e| error(&e))?;
        let previous = transaction
            .query_opt(
                "SELECT record::text FROM minehound_images WHERE digest = $1",
                &[digest],
            )
            .await
            .map_err(|e| error(&e))?
            .and_then(|row| from_json(row.get(0)).ok());
        if let Some(record) = next_image_record(previous, job) {
            let text = serde_json::to_string(&record).map_err(std::io::Error::other)?;
            transaction
                .execute(
                    "INSERT INTO minehound_images (digest, record) VALUES ($1, $2::text::jsonb)
                     ON CONFLICT (digest) DO UPDATE SET record = excluded.record, updated_at = now()",
                    &[digest, &text],
                )
                .await
                .map_err(|e| error(&e))?;
        }
        transaction.commit().await.map_err(|e| error(&e))
    }

    pub async fn queued(&self) -> std::io::Result<usize> {
        let row = self
            .database
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM minehound_jobs WHERE state = 'queued'",
                &[],
            )
            .await
            .map_err(|e| error(&e))?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    pub async fn ready(&self) -> bool {
        self.database.answers().await
    }

    pub async fn prune(&self, max_age: Duration) -> std::io::Result<u64> {
        let client = self.database.client().await?;
        let age = interval(max_age);
        let mut removed = 0;
        for sql in [
            "DELETE FROM minehound_jobs WHERE state IN ('finished', 'failed') AND updated_at < now() - $1::text::interval",
            "DELETE FROM minehound_reports WHERE created_at < now() - $1::text::interval",
            "DELETE FROM minehound_images WHERE updated_at < now() - $1::text::interval",
            "DELETE FROM minehound_replicas WHERE seen_at < now() - $1::text::interval",
        ] {
            removed += client.execute(sql, &[&age]).await.map_err(|e| error(&e))?;
        }
        Ok(removed)
    }
}
