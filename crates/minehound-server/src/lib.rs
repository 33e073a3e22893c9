//! minehound as a service for registries.
//!
//! - **Harbor's Pluggable Scanner API** (v1.1, accepting the 1.0 media types):
//!   `GET /api/v1/metadata`, `POST /api/v1/scan` (202 with an id; the pull and
//!   scan run in the background), `GET /api/v1/scan/{id}/report` (302 with
//!   `Refresh-After` while pending, then Harbor's vulnerability report or the
//!   raw minehound JSON). Each finding is an item whose id is the rule, so
//!   Harbor's "prevent vulnerable images from running" blocks miner images and
//!   its allowlist works by rule id.
//! - **CNCF Distribution notifications**: `POST /api/v1/notifications` queues a
//!   scan per manifest push; `GET /api/v1/images/{digest}` answers the latest
//!   verdict.
//! - **Kubernetes admission**: `POST /k8s/admission` (a validating webhook,
//!   `AdmissionReview` v1) and `POST /k8s/imagereview` (the API server's
//!   ImagePolicyWebhook): pods and the pod templates of workloads are judged
//!   by the verdict of every image they name (scanned within a budget when
//!   unknown) and by how each container is launched. Over HTTPS with a
//!   certificate read again when its files change.
//! - `/healthz`, `/readyz`, `/metrics` (Prometheus), `/api/openapi.json`.
//!
//! Jobs wait in a bounded queue for a fixed number of workers that share one
//! [`Scanner`] (one layer cache: a base layer is read once for every image
//! that has it). Jobs, reports and verdicts persist in a state directory
//! across restarts, or, with [`ServerBuilder::database`], in a PostgreSQL
//! database that many replicas share: one queue, one verdict per digest, any
//! replica answering any request. Registry credentials are never written.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use minehound::{LayerCache, ScannerBuilder};
//! use minehound_server::ServerBuilder;
//!
//! let cache = LayerCache::open(std::path::Path::new("/var/cache/minehound"))?;
//! let scanner = ScannerBuilder::new().cache(cache).build()?;
//! let server = ServerBuilder::new(scanner, "/var/lib/minehound").workers(4).start().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod admission;
mod api;
mod authorization;
mod checks;
pub mod harbor;
mod job;
mod metrics;
pub mod notify;
mod service;
mod store;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use minehound::{Allowlist, PlatformChoice, RegistryOptions, Scanner, Severity};

pub use admission::{AdmissionSettings, PendingPolicy, UnresolvedPolicy};
pub use job::{FindingBrief, ImageRecord, Job, JobState, Origin, Verdict};

/// The OpenAPI description of the service's API (YAML).
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// How long one job may take unless told otherwise: ten minutes.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a replica's claim on a job lasts without a heartbeat, unless told
/// otherwise: 30 seconds.
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(30);

/// The OpenAPI description as JSON.
pub fn openapi_json() -> serde_json::Value {
    // The file is part of the build and checked by a test: it parses.
    serde_yaml_ng::from_str(OPENAPI_YAML).unwrap_or_default()
}

/// Which registry authorization the service asks Harbor for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorizationType {
    /// Robot account credentials, `Basic base64(user:password)`.
    Basic,
    /// A pull token Harbor issued, `Bearer JWT` (what Harbor's own adapters ask for).
    #[default]
    Bearer,
}

/// Configures a [`Server`]. Its `Debug` hides the API token.
pub struct ServerBuilder {
    scanner: Scanner,
    state_dir: PathBuf,
    registry: RegistryOptions,
    platform: PlatformChoice,
    allowlist: Option<Allowlist>,
    fail_on: Severity,
    workers: usize,
    queue_size: usize,
    api_token: Option<String>,
    harbor_authorization: AuthorizationType,
    refresh_after: Duration,
    notification_registry: Option<String>,
    database: Option<String>,
    job_lease: Duration,
    keep: Duration,
    job_timeout: Duration,
    admission: AdmissionSettings,
    tls: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("scanner", &self.scanner)
            .field("state_dir", &self.state_dir)
            .field("registry", &self.registry)
            .field("workers", &self.workers)
            .field("queue_size", &self.queue_size)
            .field("admission", &self.admission)
            .field("tls", &self.tls)
            .field("api_token", &self.api_token.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// A service scanning with `scanner`, keeping its state in `state_dir`.
    pub fn new(scanner: Scanner, state_dir: impl Into<PathBuf>) -> Self {
        ServerBuilder {
            scanner,
            state_dir: state_dir.into(),
            registry: RegistryOptions::default(),
            platform: PlatformChoice::All,
            allowlist: None,
            fail_on: Severity::High,
            workers: 2,
            queue_size: 1000,
            api_token: None,
            harbor_authorization: AuthorizationType::default(),
            refresh_after: Duration::from_secs(5),
            notification_registry: None,
            keep: Duration::from_secs(7 * 24 * 3600),
            database: None,
            job_lease: DEFAULT_JOB_LEASE,
            job_timeout: DEFAULT_JOB_TIMEOUT,
            admission: AdmissionSettings::default(),
            tls: None,
        }
    }

    /// How admission reviews are judged.
    pub fn admission(mut self, admission: AdmissionSettings) -> Self {
        self.admission = admission;
        self
    }

    /// Serves HTTPS with this certificate chain and key (PEM files), read
    /// again whenever they change.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// Base registry options: CA files, insecure hosts, timeouts, and
    /// credentials. Harbor's scans use only the authorization Harbor sends;
    /// notified pulls use the Docker config's credentials for the registry
    /// named, and `credentials` only when
    /// [`notification_registry`](Self::notification_registry) pins it.
    pub fn registry(mut self, registry: RegistryOptions) -> Self {
        self.registry = registry;
        self
    }

    /// Which platforms of a multi-platform image to scan (default: all).
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = platform;
        self
    }

    /// Findings the operator accepts: suppressed in every report.
    pub fn allowlist(mut self, allowlist: Option<Allowlist>) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// The severity at which an image's verdict says it fails (default: high).
    pub fn fail_on(mut self, severity: Severity) -> Self {
        self.fail_on = severity;
        self
    }

    /// How many images are scanned at once (default 2). Layers of all of
    /// them share the scanner's threads. Build the scanner with at least as
    /// many [task threads](minehound::ScannerBuilder::tasks), better twice
    /// as many: a scan waiting for one is already within its job deadline.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How many jobs may wait (default 1000); beyond it requests get 503.
    pub fn queue_size(mut self, size: usize) -> Self {
        self.queue_size = size.max(1);
        self
    }

    /// Requires `Authorization: Bearer TOKEN` on the API (not on health and metrics).
    pub fn api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token.filter(|t| !t.is_empty());
        self
    }

    /// The registry authorization asked of Harbor (default: Bearer).
    pub fn harbor_authorization(mut self, kind: AuthorizationType) -> Self {
        self.harbor_authorization = kind;
        self
    }

    /// The `Refresh-After` given while a report is pending (default 5 s).
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = after;
        self
    }

    /// Where notified images are pulled from (`http://registry:5000`),
    /// instead of the URL in each event.
    pub fn notification_registry(mut self, url: Option<String>) -> Self {
        self.notification_registry = url;
        self
    }

    /// Keeps jobs, reports and verdicts in the PostgreSQL database at `url`
    /// instead of the state directory, shared with every replica pointed at
    /// it: one queue, one verdict per digest. The schema is created or
    /// brought up to date at start.
    pub fn database(mut self, url: Option<String>) -> Self {
        self.database = url;
        self
    }

    /// How long a replica's claim on a job lasts without a heartbeat
    /// (default [`DEFAULT_JOB_LEASE`]): how soon another replica takes over
    /// the jobs of one that died. Only with a [`database`](Self::database).
    pub fn job_lease(mut self, lease: Duration) -> Self {
        self.job_lease = lease.max(Duration::from_secs(1));
        self
    }

    /// How long ended jobs, their reports and verdicts are kept (default 7 days).
    pub fn keep(mut self, keep: Duration) -> Self {
        self.keep = keep;
        self
    }

    /// The longest one job may take (default [`DEFAULT_JOB_TIMEOUT`]): past
    /// it the scan is cancelled and the job ends failed with that reason,
    /// so a stalled scan never holds a verdict (or an admission review
    /// waiting on it) back.
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Opens the store (the state directory, re-queueing jobs a restart
    /// interrupted, or the database) and starts the workers. Needs a tokio
    /// runtime.
    pub async fn start(self) -> std::io::Result<Server> {
        let tls = match &self.tls {
            Some((cert, key)) => {
                let certificate = tls::ReloadingCertificate::load(cert, key).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot use the TLS certificate: {e}"))
                })?;
                Some(tls::server_config(Arc::new(certificate))?)
            }
            None => None,
        };
        // Images pods name are resolved with the Docker config's
        // credentials for their registry only (as they are pulled).
        let resolver = minehound::DigestResolver::new(self.registry.clone());
        let (store, ended) = match &self.database {
            Some(url) => {
                // Workers, the heartbeat and requests in flight.
                let connections = self.workers * 2 + 8;
                let database = minehound_postgres::Database::connect(url, connections).await?;
                let store = store::DatabaseStore::open(database, self.job_lease).await?;
                (store::JobStore::Database(store), Vec::new())
            }
            None => {
                let (store, ended) = store::FileStore::open(&self.state_dir, self.queue_size)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "cannot use the state directory {}: {e}",
                                self.state_dir.display()
                            ),
                        )
                    })?;
                (store::JobStore::Files(store), ended)
            }
        };
        if self.scanner.tasks() < self.workers {
            tracing::warn!(
                workers = self.workers,
                tasks = self.scanner.tasks(),
                "the scanner runs fewer scans at once than there are workers: jobs will wait for a task thread, their deadline running"
            );
        }
        let settings = service::ScanSettings {
            registry: self.registry,
            platform: self.platform,
            allowlist: self.allowlist,
            fail_on: self.fail_on,
            pinned_notification_registry: self.notification_registry.is_some(),
            job_timeout: self.job_timeout,
        };
        let service = service::Service::start(
            self.scanner,
            settings,
            store,
            ended,
            self.workers,
            self.queue_size,
        )
        .await;
        service.prune(self.keep).await;
        let pruner = Arc::clone(&service);
        let keep = self.keep;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            every.tick().await;
            loop {
                every.tick().await;
                pruner.prune(keep).await;
            }
        });
        Ok(Server {
            state: Arc::new(ServerState {
                service,
                api_token: self.api_token,
                harbor_authorization: self.harbor_authorization,
                refresh_after: self.refresh_after,
                notification_registry: self.notification_registry,
                admission: self.admission,
                resolver,
            }),
            tls,
        })
    }
}

/// What every request handler sees.
pub(crate) struct ServerState {
    service: Arc<service::Service>,
    api_token: Option<String>,
    harbor_authorization: AuthorizationType,
    refresh_after: Duration,
    notification_registry: Option<String>,
    admission: AdmissionSettings,
    /// Tags of the images admission reviews name to digests, one client per
    /// registry host.
    resolver: minehound::DigestResolver,
}

/// A started service.
pub struct Server {
    state: Arc<ServerState>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// The service's routes, to serve or to nest in another router.
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.state))
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> std::io::Result<Option<Job>> {
        self.state.service.job(id).await
    }

    /// Whether the service speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves on `listener` (HTTPS when a certificate was given) until
    /// `shutdown` completes; requests in flight finish first. Jobs still
    /// queued stay recorded and resume on restart.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        match self.tls {
            Some(config) => {
                axum::serve(tls::TlsListener::new(listener, config)?, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    }
}
