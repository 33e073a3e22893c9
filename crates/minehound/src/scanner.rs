//! The [`Scanner`]: built once, scans many targets.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minehound_detect::{Detector, Signatures, SignaturesBuilder};
use minehound_oci::{
    BlobLocation, BlobStore, Image, Layer, Opened, PlatformChoice, Pushed, RegistryOptions, Target,
};
use minehound_report::{Report, SignatureSet};
use minehound_unpack::Limits;
use rayon::prelude::*;

use crate::cache::{BlobStamp, CacheKey, Claim, LayerCache};
use crate::config::config_findings;
use crate::layer::{LayerScan, scan_layer_blob, scan_layer_blob_ahead};
use crate::merge::{ScannedImage, build_report};
use crate::progress::{CancelToken, Progress, Watch, WatchedReader};
use crate::{Error, LayerError, fs_scan};

/// Configures a [`Scanner`]. Every option has a default, so new options never
/// break a caller.
#[derive(Debug, Clone)]
pub struct ScannerBuilder {
    signatures: SignaturesBuilder,
    limits: Limits,
    jobs: Option<usize>,
    cache: Option<Arc<LayerCache>>,
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
            cache: None,
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

    /// Worker threads (default: the number of cores).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Compiles the signatures and starts the worker pool.
    pub fn build(self) -> Result<Scanner, Error> {
        let signatures = self.signatures.build()?;
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|i| format!("minehound-worker-{i}"))
            .build()
            .map_err(|source| Error::Workers { jobs, source })?;
        let l = &self.limits;
        // Everything besides the layer's bytes that a layer's result depends
        // on: the engine (this very build, so a fix or a dependency update
        // never serves an old verdict), the signatures, the limits.
        let engine = match &self.cache {
            Some(_) => build_id(),
            None => String::new(),
        };
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
            cache: self.cache,
            cache_settings,
        })
    }
}

/// What to scan, and who watches: built with [`ScanRequest::new`] and its
/// setters.
#[derive(Clone)]
#[non_exhaustive]
pub struct ScanRequest {
    /// The target.
    pub target: Target,
    /// The target as the user wrote it, for the report.
    pub target_name: String,
    /// Which platforms of a multi-platform image.
    pub platform: PlatformChoice,
    /// How to reach registries (credentials, TLS, retries).
    pub registry: RegistryOptions,
    /// Who hears about layer progress, if anyone.
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the scan when cancelled.
    pub cancel: Option<CancelToken>,
}

impl std::fmt::Debug for ScanRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanRequest")
            .field("target", &self.target)
            .field("platform", &self.platform)
            .field("registry", &self.registry)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl ScanRequest {
    /// A request for `target` on the host's platform.
    pub fn new(target: Target, target_name: impl Into<String>) -> Self {
        ScanRequest {
            target,
            target_name: target_name.into(),
            platform: PlatformChoice::Host,
            registry: RegistryOptions::default(),
            progress: None,
            cancel: None,
        }
    }

    /// Stops the scan when `cancel` is cancelled.
    pub fn cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub(crate) fn watch(&self) -> Watch<'_> {
        Watch {
            progress: self.progress.as_ref(),
            cancel: self.cancel.as_ref(),
        }
    }

    /// Reports layer progress to `progress`.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Sets how registries are reached.
    pub fn registry(mut self, registry: RegistryOptions) -> Self {
        self.registry = registry;
        self
    }

    /// Chooses platforms.
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = platform;
        self
    }
}

/// Scans images for miners. Cheap to clone and share across threads: the
/// compiled signatures and the worker pool are shared.
#[derive(Clone)]
pub struct Scanner {
    pub(crate) signatures: Arc<Signatures>,
    pub(crate) limits: Limits,
    pub(crate) pool: Arc<rayon::ThreadPool>,
    cache: Option<Arc<LayerCache>>,
    cache_settings: String,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("signatures", &self.signatures)
            .field("limits", &self.limits)
            .field("jobs", &self.pool.current_num_threads())
            .field("cache", &self.cache)
            .finish()
    }
}

impl Scanner {
    /// The compiled signatures.
    pub fn signatures(&self) -> &Signatures {
        &self.signatures
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Scans a target and returns its report. An `Err` means the scan could not
    /// be completed; a report with findings is still `Ok`.
    pub fn scan(&self, request: &ScanRequest) -> Result<Report, Error> {
        let opened = minehound_oci::open(&request.target, &request.platform, &request.registry)?;
        self.scan_opened(request, opened)
    }

    /// Scans an image and pushes it to `destination` only if `gate` accepts
    /// the report. The images pushed are the ones scanned, read from the same
    /// opened source; the registry checks every blob against its digest.
    /// `gate` may change the report (apply an allowlist) before it decides.
    ///
    /// `registry` reaches the destination; `request.registry` the source.
    pub fn scan_and_push(
        &self,
        request: &ScanRequest,
        destination: &str,
        registry: &RegistryOptions,
        gate: impl FnOnce(&mut Report) -> bool,
    ) -> Result<PushOutcome, Error> {
        let opened = minehound_oci::open(&request.target, &request.platform, &request.registry)?;
        let Opened::Images { store, images } = opened else {
            return Err(Error::NotPushable {
                target: request.target_name.clone(),
                reason: "only images can be pushed (oci:, oci-archive:, docker-archive: or a registry reference)".into(),
            });
        };
        let mut cached = 0;
        let scanned =
            self.scan_images(store.as_ref(), images.clone(), request.watch(), &mut cached)?;
        let mut report = self.finish_report(request, scanned);
        report.stats.layers_cached = cached;
        if !gate(&mut report) {
            return Ok(PushOutcome::Refused(report));
        }
        Ok(
            match minehound_oci::push_images(store.as_ref(), &images, destination, registry) {
                Ok(pushed) => PushOutcome::Pushed(report, pushed),
                Err(err) => PushOutcome::Failed(report, err.into()),
            },
        )
    }

    fn scan_opened(&self, request: &ScanRequest, opened: Opened) -> Result<Report, Error> {
        let mut cached = 0;
        let images = match opened {
            Opened::Images { store, images } => {
                self.scan_images(store.as_ref(), images, request.watch(), &mut cached)?
            }
            Opened::Stream {
                reader,
                name,
                image,
                fallback_file,
            } => match self.scan_stream(reader, &name, image.as_ref(), &request.platform) {
                Err(Error::Source(minehound_oci::Error::NoImage(_))) if fallback_file.is_some() => {
                    vec![fs_scan::scan_file(
                        self,
                        &fallback_file.unwrap_or_default(),
                    )?]
                }
                other => other?,
            },
            Opened::Dir(path) => vec![fs_scan::scan_dir(self, &path)?],
            Opened::File(path) => vec![fs_scan::scan_file(self, &path)?],
        };
        let mut report = self.finish_report(request, images);
        report.stats.layers_cached = cached;
        Ok(report)
    }

    fn finish_report(&self, request: &ScanRequest, images: Vec<ScannedImage>) -> Report {
        self.build_report(&request.target_name, images)
    }

    /// The report of scanned images: findings per layer merged, configs checked.
    pub(crate) fn build_report(&self, target_name: &str, images: Vec<ScannedImage>) -> Report {
        let mut detector = Detector::new(&self.signatures);
        let mut report = build_report(target_name, images, |image| {
            config_findings(image, &mut detector)
        });
        report.signatures = self.signature_set();
        report
    }

    pub(crate) fn signature_set(&self) -> SignatureSet {
        SignatureSet {
            version: self.signatures.version(),
            bundled: self.signatures.bundled(),
            rules: self.signatures.rule_count(),
            hashes: self.signatures.hash_count(),
            extra_files: self
                .signatures
                .extra_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        }
    }

    /// Runs `f` with a fresh detector on each worker of the pool.
    pub(crate) fn par_map<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&mut Detector<'_>, &T) -> R + Sync + Send,
    ) -> Vec<R> {
        let signatures = &*self.signatures;
        self.pool.install(|| {
            items
                .par_iter()
                .map_init(
                    || Detector::new(signatures),
                    |detector, item| f(detector, item),
                )
                .collect()
        })
    }

    /// Scans seekable images: each unique layer once, layers in parallel.
    pub(crate) fn scan_images(
        &self,
        store: &dyn BlobStore,
        images: Vec<Image>,
        watch: Watch<'_>,
        layers_cached: &mut u64,
    ) -> Result<Vec<ScannedImage>, Error> {
        let mut done = self.scan_layers(store, images.iter().flat_map(|i| &i.layers), watch)?;
        *layers_cached += done.cached;
        assemble(images, |layer| {
            take_shared(&mut done.results, &layer.location)
        })
    }

    /// Scans each unique layer of `layers` once, in parallel; a layer the
    /// cache knows is not read. `Err` only when the scan was cancelled: a
    /// layer that fails is an `Err` among the results.
    pub(crate) fn scan_layers<'l>(
        &self,
        store: &dyn BlobStore,
        layers: impl IntoIterator<Item = &'l Layer>,
        watch: Watch<'_>,
    ) -> Result<LayerResults, Error> {
        let mut unique: Vec<&Layer> = Vec::new();
        let mut seen = HashSet::new();
        for layer in layers {
            if seen.insert(&layer.location) {
                unique.push(layer);
            }
        }
        // Layers the cache knows cost nothing; the rest are read and scanned.
        let mut hits = Vec::new();
        let mut to_scan = Vec::new();
        for layer in unique {
            let key = self.cache_key(layer, store.content_addressed());
            match key
                .as_ref()
                .zip(self.cache.as_ref())
                .and_then(|(k, c)| c.get(k))
            {
                Some(scan) => hits.push((layer, key, scan)),
                None => to_scan.push((layer, key)),
            }
        }
        // A local blob can be edited after it was cached: its bytes must still
        // hash to its digest (a hash, not a scan) before the result counts,
        // unless the cache stamped the file as hashed and it has not changed.
        if !store.content_addressed() {
            let checked: Vec<_> = self.pool.install(|| {
                hits.into_par_iter()
                    .map(|(layer, key, scan)| {
                        let stamp = self.blob_stamp(store, layer);
                        let intact = !watch.cancelled()
                            && match (&stamp, &self.cache) {
                                (Some(stamp), Some(cache)) if cache.blob_known(stamp) => true,
                                _ => {
                                    let intact = blob_matches(store, layer);
                                    if intact {
                                        self.remember_blob(stamp.as_ref());
                                    }
                                    intact
                                }
                            };
                        (layer, key, scan, intact)
                    })
                    .collect()
            });
            hits = Vec::new();
            for (layer, key, scan, intact) in checked {
                if intact {
                    hits.push((layer, key, scan));
                } else {
                    to_scan.push((layer, key));
                }
            }
        }
        let mut results: HashMap<_, _> = hits
            .into_iter()
            .map(|(layer, _, scan)| {
                if let Some(progress) = watch.progress {
                    progress.layer_cached(&layer_name(layer));
                }
                (layer.location.clone(), Ok(Arc::new(scan)))
            })
            .collect();
        let cached = results.len() as u64;
        let scanned = to_scan.len() as u64;
        let (started, busy) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let late_hits = AtomicUsize::new(0);
        let jobs = self.pool.current_num_threads();
        results.extend(self.par_map(&to_scan, |detector, (layer, key)| {
            if watch.cancelled() {
                return (layer.location.clone(), Err(LayerError::Cancelled));
            }
            // Another scan in this process may be reading the same layer (a
            // shared base layer of two images): wait for its result rather
            // than read it twice. Only for blobs checked against their
            // digest while read; a local file may differ from its name.
            let _claim = match (key, &self.cache) {
                (Some(key), Some(cache)) if store.content_addressed() => {
                    match cache.claim(key, || watch.cancelled()) {
                        Claim::Cached(scan) => {
                            if let Some(progress) = watch.progress {
                                progress.layer_cached(&layer_name(layer));
                            }
                            late_hits.fetch_add(1, Ordering::Relaxed);
                            return (layer.location.clone(), Ok(Arc::new(scan)));
                        }
                        Claim::Mine(claim) => Some(claim),
                        Claim::Cancelled => {
                            return (layer.location.clone(), Err(LayerError::Cancelled));
                        }
                    }
                }
                _ => None,
            };
            // The last layer to start may inflate on a thread of its own while
            // a worker is idle (an image of one large layer, say); `--jobs`
            // still bounds the busy threads.
            let last = started.fetch_add(1, Ordering::SeqCst) + 1 == to_scan.len();
            let now_busy = busy.fetch_add(1, Ordering::SeqCst) + 1;
            let ahead = last && now_busy < jobs;
            let name = layer_name(layer);
            // Stamped before reading, so a change while reading shows later.
            let stamp = self.blob_stamp(store, layer);
            let scan = store
                .open(&layer.location)
                .map_err(LayerError::from)
                .and_then(|blob| {
                    if let Some(progress) = watch.progress {
                        progress.layer_started(&name, layer.size);
                    }
                    let reader = WatchedReader {
                        inner: blob,
                        layer: &name,
                        watch,
                    };
                    let scan = self.scan_blob(reader, detector, ahead);
                    if let Some(progress) = watch.progress {
                        for finding in scan.iter().flat_map(|s| &s.findings) {
                            progress.finding(&name, finding);
                        }
                        progress.layer_finished(&name);
                    }
                    scan
                });
            // Only a whole layer whose bytes match what the image declares is kept.
            if let (Ok(scan), Some(key), Some(cache)) = (&scan, key, &self.cache)
                && !watch.cancelled()
                && verify(layer, scan).is_ok()
            {
                cache.put(key, scan);
                self.remember_blob(stamp.as_ref());
            }
            busy.fetch_sub(1, Ordering::SeqCst);
            (layer.location.clone(), scan.map(Arc::new))
        }));
        if watch.cancelled() {
            return Err(Error::Cancelled);
        }
        let late_hits = late_hits.into_inner() as u64;
        Ok(LayerResults {
            results,
            cached: cached + late_hits,
            scanned: scanned - late_hits,
        })
    }

    /// Scans a layer blob; `ahead` asks for inflating it on a thread of its
    /// own, ahead of the checks, when more than one thread is allowed.
    fn scan_blob(
        &self,
        blob: impl Read + Send,
        detector: &mut Detector<'_>,
        ahead: bool,
    ) -> Result<LayerScan, LayerError> {
        if ahead && self.pool.current_num_threads() > 1 {
            scan_layer_blob_ahead(blob, detector, &self.limits)
        } else {
            scan_layer_blob(blob, detector, &self.limits)
        }
    }

    /// The stamp of a local layer blob's file, when there is a cache to keep it.
    fn blob_stamp(&self, store: &dyn BlobStore, layer: &Layer) -> Option<BlobStamp> {
        if self.cache.is_none() || store.content_addressed() {
            return None;
        }
        BlobStamp::of(&store.blob_file(&layer.location)?, layer.digest.as_deref()?)
    }

    fn remember_blob(&self, stamp: Option<&BlobStamp>) {
        if let (Some(stamp), Some(cache)) = (stamp, &self.cache) {
            cache.remember_blob(stamp);
        }
    }

    /// A layer's cache key: by blob digest; from a registry also by diff id
    /// for layers without one. Local layers without a blob digest are not
    /// cached: checking them would cost a full decompression.
    fn cache_key(&self, layer: &Layer, content_addressed: bool) -> Option<CacheKey> {
        self.cache.as_ref()?;
        let digest = match (&layer.digest, &layer.diff_id) {
            (Some(digest), _) => digest,
            (None, Some(diff_id)) if content_addressed => diff_id,
            _ => return None,
        };
        Some(CacheKey::new(&self.cache_settings, digest))
    }

    /// Scans an archive that can only be read once, front to back.
    fn scan_stream(
        &self,
        reader: Box<dyn Read + Send>,
        name: &str,
        wanted: Option<&minehound_oci::ImageRef>,
        platform: &PlatformChoice,
    ) -> Result<Vec<ScannedImage>, Error> {
        let limits = &self.limits;
        let (_, tar) = minehound_unpack::decompress(reader, u64::MAX).map_err(|source| {
            Error::Source(minehound_oci::Error::Io {
                path: name.into(),
                source,
            })
        })?;
        let mut streamed_scans: HashMap<String, Result<LayerScan, LayerError>> = HashMap::new();
        let streamed = if self.pool.current_num_threads() > 1 {
            self.read_stream_spooled(tar, name, &mut streamed_scans)?
        } else {
            let mut detector = Detector::new(&self.signatures);
            minehound_oci::read_archive_stream(tar, name, &mut |path, blob| {
                let result = scan_layer_blob(blob, &mut detector, limits);
                streamed_scans.insert(path.to_string(), result);
            })?
        };
        let mut detector = Detector::new(&self.signatures);
        let images = minehound_oci::images_from_archive(&streamed.store, wanted, platform)?;
        // Keyed by archive member: two locations may name one member (links).
        let mut done: HashMap<BlobLocation, Result<Arc<LayerScan>, LayerError>> = HashMap::new();
        assemble(images, |layer| {
            let member = streamed.resolve(&layer.location.member_path()?).to_string();
            let key = BlobLocation::ArchivePath(member.clone());
            if !done.contains_key(&key) {
                let result = match streamed_scans.remove(&member) {
                    Some(scan) => scan,
                    None => streamed
                        .store
                        .open(&key)
                        .map_err(LayerError::from)
                        .and_then(|blob| self.scan_blob(blob, &mut detector, true)),
                };
                done.insert(key.clone(), result.map(Arc::new));
            }
            take_shared(&mut done, &key)
        })
    }

    /// Reads an archive stream on this thread and copies each layer blob into
    /// an unnamed temporary file that a worker scans while the stream goes on,
    /// so the layers of a piped archive are scanned in parallel. The queue is
    /// bounded: at most about twice the workers' count of compressed layers
    /// sit on disk at once, and each is gone once scanned.
    fn read_stream_spooled(
        &self,
        tar: impl Read,
        name: &str,
        scans: &mut HashMap<String, Result<LayerScan, LayerError>>,
    ) -> Result<minehound_oci::StreamedArchive, Error> {
        let jobs = self.pool.current_num_threads();
        let (queue, queued) = std::sync::mpsc::sync_channel::<(String, std::fs::File)>(jobs);
        let queued = std::sync::Mutex::new(queued);
        let streamed = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..jobs)
                .map(|_| {
                    scope.spawn(|| {
                        let mut detector = Detector::new(&self.signatures);
                        let mut done = Vec::new();
                        loop {
                            let next = match queued.lock() {
                                Ok(queued) => queued.recv(),
                                Err(_) => break,
                            };
                            let Ok((path, file)) = next else { break };
                            let blob = std::io::BufReader::new(file);
                            done.push((path, scan_layer_blob(blob, &mut detector, &self.limits)));
                        }
                        done
                    })
                })
                .collect();
            let streamed =
                minehound_oci::read_archive_stream(
                    tar,
                    name,
                    &mut |path, blob| match spool(blob) {
                        Ok(file) => {
                            let _ = queue.send((path.to_string(), file));
                        }
                        Err(source) => {
                            scans.insert(path.to_string(), Err(LayerError::Spool(source)));
                        }
                    },
                );
            drop(queue);
            for worker in workers {
                scans.extend(worker.join().expect("layer workers do not panic"));
            }
            streamed
        })?;
        Ok(streamed)
    }
}

/// Copies a blob into an unnamed temporary file (removed when closed) and
/// rewinds it.
fn spool(blob: &mut dyn Read) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    let mut file = tempfile::tempfile()?;
    std::io::copy(blob, &mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// What [`Scanner::scan_layers`] found: a result per layer location.
pub(crate) struct LayerResults {
    pub results: HashMap<BlobLocation, Result<Arc<LayerScan>, LayerError>>,
    /// Layers whose result came from the cache.
    pub cached: u64,
    /// Layers read and scanned.
    pub scanned: u64,
}

/// How progress events name a layer: its digest, else its position.
fn layer_name(layer: &Layer) -> String {
    layer
        .display_digest()
        .map_or_else(|| format!("layer {}", layer.index), str::to_string)
}

/// SHA-256 of the running executable: changes with any change to the code
/// or its dependencies. Empty if the executable cannot be read.
fn build_id() -> String {
    std::env::current_exe()
        .and_then(std::fs::File::open)
        .and_then(|exe| minehound_unpack::HashingReader::new(exe).finish())
        .map(|(digest, _)| digest)
        .unwrap_or_default()
}

/// Whether a layer's stored bytes still hash to its blob digest.
fn blob_matches(store: &dyn BlobStore, layer: &Layer) -> bool {
    let Some(expected) = &layer.digest else {
        return false;
    };
    let Ok(blob) = store.open(&layer.location) else {
        return false;
    };
    minehound_unpack::HashingReader::new(blob)
        .finish()
        .is_ok_and(|(digest, _)| digest == *expected)
}

/// Pairs every layer of every image with its scan.
pub(crate) fn assemble(
    images: Vec<Image>,
    mut scan_of: impl FnMut(&Layer) -> Result<Arc<LayerScan>, LayerError>,
) -> Result<Vec<ScannedImage>, Error> {
    let mut out = Vec::new();
    for image in images {
        let mut scans = Vec::new();
        for layer in &image.layers {
            let scan = scan_of(layer)
                .and_then(|scan| verify(layer, &scan).map(|()| scan))
                .map_err(|source| Error::Layer {
                    index: layer.index,
                    digest: layer
                        .display_digest()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{:?}", layer.location)),
                    source,
                })?;
            scans.push(scan);
        }
        out.push(ScannedImage { image, scans });
    }
    Ok(out)
}

/// Checks the digests and size a scan measured against what each image that
/// uses the layer declares.
fn verify(layer: &Layer, scan: &LayerScan) -> Result<(), LayerError> {
    if let Some(expected) = &layer.digest
        && *expected != scan.digest
    {
        return Err(LayerError::DigestMismatch {
            expected: expected.clone(),
            actual: scan.digest.clone(),
        });
    }
    if let Some(expected) = layer.size
        && expected != scan.compressed_bytes
    {
        return Err(LayerError::SizeMismatch {
            expected,
            actual: scan.compressed_bytes,
        });
    }
    if let Some(expected) = &layer.diff_id
        && *expected != scan.diff_id
    {
        return Err(LayerError::DiffIdMismatch {
            expected: expected.clone(),
            actual: scan.diff_id.clone(),
        });
    }
    Ok(())
}

/// Hands out a layer's result, keeping a copy for the next image that shares
/// the layer. Errors are not `Clone` (they hold I/O errors): the first image
/// gets the error itself, later ones its text.
pub(crate) fn take_shared(
    results: &mut HashMap<BlobLocation, Result<Arc<LayerScan>, LayerError>>,
    location: &BlobLocation,
) -> Result<Arc<LayerScan>, LayerError> {
    let result = results
        .remove(location)
        .unwrap_or_else(|| Err(LayerError::Unreadable("layer was not scanned".into())));
    let copy = match &result {
        Ok(scan) => Ok(Arc::clone(scan)),
        Err(err) => Err(LayerError::Unreadable(crate::layer::error_chain(err))),
    };
    results.insert(location.clone(), copy);
    result
}

/// What [`Scanner::scan_and_push`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The gate refused the image; nothing was pushed.
    Refused(Report),
    /// The gate passed and the image was pushed.
    Pushed(Report, Pushed),
    /// The gate passed but the push failed (part of it may have arrived).
    Failed(Report, Error),
}
