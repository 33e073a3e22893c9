//! [`ScannerBuilder`]: every option of a [`Scanner`], with defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use minehound_detect::SignaturesBuilder;
use minehound_unpack::Limits;

use crate::cache::LayerCache;
use crate::task_pool::TaskPool;
use crate::{Error, Scanner};

/// Configures a [`Scanner`]. Every option has a default, so new options never
/// break a caller.
#[derive(Debug, Clone)]
pub struct ScannerBuilder {
    signatures: SignaturesBuilder,
    limits: Limits,
    jobs: Option<usize>,
    tasks: Option<usize>,
    cache: Option<Arc<LayerCache>>,
    file_timeout: Duration,
    share_files: bool,
    gzip_inflaters: Option<usize>,
}

impl Default for ScannerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ScannerBuilder {
    /// Bundled signatures, default limits, one worker per core.
    pub fn new() -> Self {
        ScannerBuilder {
            signatures: SignaturesBuilder::new(),
            limits: Limits::default(),
            jobs: None,
            tasks: None,
            cache: None,
            file_timeout: minehound_detect::DEFAULT_FILE_TIMEOUT,
            share_files: true,
            gzip_inflaters: None,
        }
    }

    /// Keeps layer results in `cache` and reuses them: a layer scanned once
    /// (by this or any process sharing the cache) is not read again.
    pub fn cache(mut self, cache: LayerCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Whether to use the bundled signature set (default: yes).
    pub fn bundled_signatures(mut self, yes: bool) -> Self {
        self.signatures = self.signatures.bundled(yes);
        self
    }

    /// Adds a YARA rule file or a directory of them.
    pub fn rules(mut self, path: impl Into<PathBuf>) -> Self {
        self.signatures = self.signatures.rules(path);
        self
    }

    /// Adds a SHA-256 hash list (TSV).
    pub fn hashes(mut self, path: impl Into<PathBuf>) -> Self {
        self.signatures = self.signatures.hashes(path);
        self
    }

    /// Sets all limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// What the buffers of the files being checked may hold at once, across
    /// every scan this scanner runs (default
    /// [`MemoryBudget::DEFAULT`](minehound_unpack::MemoryBudget::DEFAULT),
    /// 512 MiB): a file waits for room rather than grow the process past
    /// it. Set after [`limits`](Self::limits), which carry one too.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.limits.memory_budget = minehound_unpack::MemoryBudget::new(bytes);
        self
    }

    /// How long the rules may run on one file (default
    /// [`DEFAULT_FILE_TIMEOUT`](minehound_detect::DEFAULT_FILE_TIMEOUT)):
    /// past it the file is listed in `skipped` as failed and the report is
    /// [incomplete](minehound_report::Report::incomplete). A crafted file
    /// must not hold a worker for long.
    pub fn file_timeout(mut self, timeout: Duration) -> Self {
        self.file_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Whether idle workers help check the files of a layer another worker
    /// reads (default: yes): an image of one large layer then uses every
    /// core for its checks. Off, each layer's files are checked by the
    /// worker reading it, with a thread inflating ahead of it when a worker
    /// is idle. Reports are the same either way; this is for comparisons.
    pub fn share_files(mut self, yes: bool) -> Self {
        self.share_files = yes;
        self
    }

    /// Threads that inflate one gzip layer side by side, when the layer is a
    /// file (an OCI layout, an image archive) read ahead of its checks.
    /// Default: half the workers, at most 8, from 6 workers up; none below.
    /// A thread inflating from an offset runs at a half to two thirds of
    /// zlib's speed, and checking a byte costs about twice inflating it, so
    /// one inflating thread keeps a few cores busy: the extra work pays from
    /// about six cores. Reports are the same either way.
    pub fn gzip_inflaters(mut self, threads: usize) -> Self {
        self.gzip_inflaters = Some(threads);
        self
    }

    /// Worker threads (default: the number of cores).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Task threads (default: as many as workers): how many calls started
    /// from async code ([`Scanner::spawn_task`], [`Scanner::scan_async`],
    /// [`Scanner::scan_layer_async`], [`Scanner::scan_layer_stream`],
    /// [`Scanner::scan_async_source`]) run at once. The others wait in one
    /// queue, first come first served; none starts a thread of its own.
    ///
    /// An image scan holds its task thread for its whole run (it runs its
    /// layers on the workers, and waits for them and, from an async store,
    /// for every read its future serves), while a layer upload scans on its
    /// task thread. So set this above the number of image scans that may
    /// run at once: while they hold every task thread, upload scans queue
    /// behind them and wait for one to end. [`Scanner::scan_async_source`]
    /// and [`Scanner::scan_layer_stream`] are queued when their future is
    /// first polled, and go on only while it is polled.
    pub fn tasks(mut self, tasks: usize) -> Self {
        self.tasks = Some(tasks.max(1));
        self
    }

    /// Compiles the signatures (or, with a [`cache`](Self::cache), loads
    /// them as this build compiled them before) and starts the worker pool.
    pub fn build(self) -> Result<Scanner, Error> {
        // Everything besides the layer's bytes that a layer's result depends
        // on: the engine (this very build, so a fix or a dependency update
        // never serves an old verdict), the signatures, the limits.
        let engine = match &self.cache {
            Some(cache) => crate::version::build_id_cached(cache),
            None => "",
        };
        let signatures = match &self.cache {
            // Compiled rules are only safe to load into the build that wrote them.
            Some(cache) if !engine.is_empty() => {
                self.signatures.build_with_store(&**cache, engine)?
            }
            _ => self.signatures.build()?,
        };
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|i| format!("minehound-worker-{i}"))
            .build()
            .map_err(|source| Error::Workers { jobs, source })?;
        let l = &self.limits;
        let cache_settings = format!(
            "minehound {} {engine}; signatures {}; limits {} {} {} {}",
            env!("CARGO_PKG_VERSION"),
            signatures.fingerprint(),
            l.max_file_size,
            l.max_layer_size,
            l.max_entries,
            l.max_depth
        );
        Ok(Scanner {
            signatures: Arc::new(signatures),
            limits: self.limits,
            pool: Arc::new(pool),
            busy: Arc::default(),
            files_shared: Arc::default(),
            zstd_frames: Arc::default(),
            gzip_chunks: Arc::default(),
            gzip_inflaters: self.gzip_inflaters.unwrap_or(if jobs >= 6 {
                (jobs / 2).min(8)
            } else {
                0
            }),
            share_files: self.share_files,
            tasks: TaskPool::new(self.tasks.unwrap_or(jobs)),
            cache: self.cache,
            file_timeout: self.file_timeout,
            cache_settings,
        })
    }
}
