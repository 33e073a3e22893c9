//! Layer results in the database, behind each machine's layer cache
//! ([`minehound::SharedLayerStore`]).
//!
//! The scanner calls the store from its worker threads and blocks, so the
//! store runs its own small runtime on a thread of its own: callers hand it
//! a query and wait for the answer, whatever runtime (if any) they belong to.
//! Claims on layers being read are leases a background task renews; a
//! machine that dies mid-layer holds the others back for one lease at most.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Database, error, interval, other};

/// How long a claim on a layer lasts unless renewed.
const LEASE: Duration = Duration::from_secs(30);
/// How long one query may take before the scanner goes on without the store.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Layer results shared through a PostgreSQL database.
pub struct SharedLayers {
    database: Database,
    tasks: tokio::sync::mpsc::UnboundedSender<Task>,
    /// Who this process is, in the claims table.
    owner: String,
    /// The layers this process holds claims on.
    held: Arc<Mutex<HashSet<[u8; 32]>>>,
}

impl std::fmt::Debug for SharedLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLayers")
            .field("database", &self.database)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl SharedLayers {
    /// Connects to the database at `url`, brings its schema up to date and
    /// starts renewing this process's claims. Callable from anywhere (it
    /// blocks until connected).
    pub fn connect(url: &str) -> std::io::Result<SharedLayers> {
        let (tasks, mut queue) = tokio::sync::mpsc::unbounded_channel::<Task>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("minehound-shared-layers".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(task) = queue.recv().await {
                        tokio::spawn(task);
                    }
                });
            })?;
        let url = url.to_string();
        let database = run(&tasks, async move { Database::connect(&url, 8).await })??;
        let store = SharedLayers {
            database,
            tasks,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            held: Arc::default(),
        };
        store.renew_claims();
        Ok(store)
    }

    /// Renews this process's claims every third of a lease, for as long as
    /// the store lives.
    fn renew_claims(&self) {
        let database = self.database.clone();
        let owner = self.owner.clone();
        let held = Arc::downgrade(&self.held);
        let renew = async move {
            let mut every = tokio::time::interval(LEASE / 3);
            loop {
                every.tick().await;
                let Some(held) = held.upgrade() else { break };
                // Only the claims held now: one whose release failed runs out.
                let keys: Vec<Vec<u8>> = held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|k| k.to_vec())
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                let renewed = async {
                    database
                        .client()
                        .await?
                        .execute(
                            "UPDATE minehound_layer_claims SET until = now() + $2::text::interval
                             WHERE owner = $1 AND key = ANY($3)",
                            &[&owner, &interval(LEASE), &keys],
                        )
                        .await
                        .map_err(|e| error(&e))
                };
                if let Err(e) = renewed.await {
                    tracing::warn!(error = %e, "cannot renew claims on layers being read");
                }
            }
        };
        let _ = self.tasks.send(Box::pin(renew));
    }

    /// How many layer results the database holds, and their bytes.
    pub fn usage(&self) -> std::io::Result<(u64, u64)> {
        let database = self.database.clone();
        self.run(async move {
            let row = database
                .client()
                .await?
                .query_one(
                    "SELECT count(*), coalesce(sum(length(entry)), 0)::bigint FROM minehound_layers",
                    &[],
                )
                .await
                .map_err(|e| error(&e))?;
            Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
        })
        .map_err(other)
    }

    /// Removes layer results unused for longer than `older_than`, then the
    /// least recently used until at most `max_bytes` remain (as the layer
    /// cache's own `prune`). Returns how many went, and their bytes.
    pub fn prune(
        &self,
        max_bytes: Option<u64>,
        older_than: Option<Duration>,
    ) -> std::io::Result<(u64, u64)> {
        let database = self.database.clone();
        let age = older_than.map(interval);
        let max = max_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        self.run(async move {
            let row = database
                .client()
                .await?
                .query_one(
                    "WITH ranked AS (
                         SELECT key, length(entry) AS bytes, used_at,
                                sum(length(entry)) OVER (ORDER BY used_at DESC, key) AS kept
                         FROM minehound_layers
                     ), gone AS (
                         DELETE FROM minehound_layers l USING ranked r
                         WHERE l.key = r.key
                           AND (($1::text IS NOT NULL AND r.used_at < now() - $1::text::interval)
                                OR ($2::bigint IS NOT NULL AND r.kept > $2::bigint))
                         RETURNING r.bytes
                     )
                     SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM gone",
                    &[&age, &max],
                )
                .await
                .map_err(|e| error(&e))?;
            Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
        })
        .map_err(other)
    }

    /// Runs `work` on the store's runtime, within the query time limit.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = std::io::Result<T>> + Send + 'static,
    ) -> Result<T, String> {
        let limited = async move {
            tokio::time::timeout(QUERY_TIMEOUT, work)
                .await
                .unwrap_or_else(|_| Err(other("the database did not answer in time")))
        };
        match run(&self.tasks, limited) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{}: {e}", self.database.shown())),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl minehound::SharedLayerStore for SharedLayers {
    fn get(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
        let (database, key) = (self.database.clone(), key.to_vec());
        self.run(async move {
            let row = database
                .client()
                .await?
                .query_opt(
                    "UPDATE minehound_layers SET used_at = now() WHERE key = $1 RETURNING entry",
                    &[&key],
                )
                .await
                .map_err(|e| error(&e))?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn put(&self, key: &[u8; 32], entry: &[u8]) -> Result<(), String> {
        let (database, key, entry) = (self.database.clone(), key.to_vec(), entry.to_vec());
        self.run(async move {
            database
                .client()
                .await?
                .execute(
                    "INSERT INTO minehound_layers (key, entry) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE
                     SET entry = excluded.entry, written_at = now(), used_at = now()",
                    &[&key, &entry],
                )
                .await
                .map_err(|e| error(&e))?;
            Ok(())
        })
    }

    fn try_claim(&self, key: &[u8; 32]) -> Result<bool, String> {
        let (database, owner, bytes) = (self.database.clone(), self.owner.clone(), key.to_vec());
        // A claim nobody holds, or whose lease ran out, is taken over.
        let taken = self.run(async move {
            let row = database
                .client()
                .await?
                .query_opt(
                    "INSERT INTO minehound_layer_claims (key, owner, until)
                     VALUES ($1, $2, now() + $3::text::interval)
                     ON CONFLICT (key) DO UPDATE
                     SET owner = excluded.owner, until = excluded.until
                     WHERE minehound_layer_claims.until < now()
                        OR minehound_layer_claims.owner = excluded.owner
                     RETURNING owner",
                    &[&bytes, &owner, &interval(LEASE)],
                )
                .await
                .map_err(|e| error(&e))?;
            Ok(row.is_some())
        })?;
        if taken {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*key);
        }
        Ok(taken)
    }

    fn release(&self, key: &[u8; 32]) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let (database, owner, key) = (self.database.clone(), self.owner.clone(), key.to_vec());
        let released = self.run(async move {
            database
                .client()
                .await?
                .execute(
                    "DELETE FROM minehound_layer_claims WHERE key = $1 AND owner = $2",
                    &[&key, &owner],
                )
                .await
                .map_err(|e| error(&e))?;
            Ok(())
        });
        // Not released: the lease runs out on its own.
        if let Err(e) = released {
            tracing::warn!(error = %e, "cannot release a claim on a layer");
        }
    }
}

/// Runs `work` on the runtime behind `tasks` and waits for its outcome.
fn run<T: Send + 'static>(
    tasks: &tokio::sync::mpsc::UnboundedSender<Task>,
    work: impl Future<Output = T> + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    tasks
        .send(Box::pin(async move {
            let _ = tx.send(work.await);
        }))
        .map_err(|_| other("the shared layer store has stopped"))?;
    rx.recv()
        .map_err(|_| other("the shared layer store has stopped"))
}
