//! The [`Scanner`]: built once, scans many targets.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use minehound_detect::{Detector, Signatures};
use minehound_oci::{BlobLocation, BlobStore, Image, Layer, Opened, Pushed, RegistryOptions};
use minehound_report::{Report, SignatureSet};
use minehound_unpack::Limits;
use rayon::prelude::*;

use crate::cache::{BlobStamp, CacheKey, Claim, LayerCache};
use crate::config::config_findings;
use crate::layer::{
    BlobAt, Decoders, LayerScan, contain_layer_panic, scan_layer_blob_ahead, scan_layer_blob_helped,
};
use crate::layer_share::{Helpers, Release};
use crate::merge::{ScannedImage, build_report};
use crate::progress::{Watch, WatchedReader};
use crate::task_pool::TaskPool;
use crate::{Error, LayerError, ScanRequest, fs_scan};

/// Threads decoding one zstd layer's frames at most: zstd decodes several
/// times faster than the files are checked, so a few keep up with any pool.
const MAX_FRAME_DECODERS: usize = 4;

/// Scans images for miners. Cheap to clone and share across threads: the
/// compiled signatures and the worker pool are shared.
#[derive(Clone)]
pub struct Scanner {
    pub(crate) signatures: Arc<Signatures>,
    pub(crate) limits: Limits,
    /// Workers: layers and files in parallel.
    pub(crate) pool: Arc<rayon::ThreadPool>,
    /// Workers at work on layers or on their files, across every scan.
    pub(crate) busy: Arc<AtomicUsize>,
    /// Files checked by a worker other than their layer's reader.
    pub(crate) files_shared: Arc<AtomicU64>,
    /// zstd frames decoded side by side.
    pub(crate) zstd_frames: Arc<AtomicU64>,
    /// Chunks of gzip layers inflated side by side.
    pub(crate) gzip_chunks: Arc<AtomicU64>,
    /// Threads inflating one gzip layer file side by side.
    pub(crate) gzip_inflaters: usize,
    /// Whether idle workers help check the files of layers being read.
    pub(crate) share_files: bool,
    /// Task threads: blocking calls started from async code.
    pub(crate) tasks: Arc<TaskPool>,
    pub(crate) cache: Option<Arc<LayerCache>>,
    /// How long the rules may run on one file.
    pub(crate) file_timeout: std::time::Duration,
    /// What besides a layer's digest its cached result depends on.
    pub(crate) cache_settings: String,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("signatures", &self.signatures)
            .field("limits", &self.limits)
            .field("jobs", &self.pool.current_num_threads())
            .field("tasks", &self.tasks.limit())
            .field("cache", &self.cache)
            .field("file_timeout", &self.file_timeout)
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
        let mut report = self.finish_report(request, scanned)?;
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
        let mut report = self.finish_report(request, images)?;
        report.stats.layers_cached = cached;
        Ok(report)
    }

    fn finish_report(
        &self,
        request: &ScanRequest,
        images: Vec<ScannedImage>,
    ) -> Result<Report, Error> {
        self.build_report(&request.target_name, images)
    }

    /// The report of scanned images: findings per layer merged, configs
    /// checked. `Err` when the config check panicked: a crafted config
    /// fails its scan, not the process.
    pub(crate) fn build_report(
        &self,
        target_name: &str,
        images: Vec<ScannedImage>,
    ) -> Result<Report, Error> {
        let mut detector = self.detector();
        let mut panicked = None;
        let mut report = build_report(target_name, images, |image| {
            if panicked.is_some() {
                return Vec::new();
            }
            let checked = catch_unwind(AssertUnwindSafe(|| config_findings(image, &mut detector)));
            checked.unwrap_or_else(|panic| {
                panicked = Some(Error::Internal {
                    component: detector.stage().component(),
                    what: "the image config",
                    message: crate::panic_message(&*panic).to_string(),
                });
                detector.reset();
                Vec::new()
            })
        });
        if let Some(err) = panicked {
            return Err(err);
        }
        report.signatures = self.signature_set();
        Ok(report)
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

    /// Files of a layer checked by a worker other than the one reading the
    /// layer, since this scanner was built: how much of the work on large
    /// layers spread over idle workers. Reports are the same either way.
    pub fn files_shared(&self) -> u64 {
        self.files_shared.load(Ordering::Relaxed)
    }

    /// zstd frames decoded by threads beside the layer's reader, several
    /// frames at once, since this scanner was built: a layer of many frames
    /// (`zstd:chunked`, `pzstd`) read ahead of its checks. Reports are the
    /// same either way.
    pub fn zstd_frames_decoded(&self) -> u64 {
        self.zstd_frames.load(Ordering::Relaxed)
    }

    /// Chunks of gzip layers inflated by threads beside the layer's reader
    /// and joined in order, since this scanner was built (see
    /// [`ScannerBuilder::gzip_inflaters`](crate::ScannerBuilder::gzip_inflaters)).
    /// Reports are the same either way.
    pub fn gzip_chunks_inflated(&self) -> u64 {
        self.gzip_chunks.load(Ordering::Relaxed)
    }

    /// How many blocking calls run at once on the task threads (see
    /// [`ScannerBuilder::tasks`](crate::ScannerBuilder::tasks)).
    pub fn tasks(&self) -> usize {
        self.tasks.limit()
    }

    /// This scanner's workers, lent to a layer's reader to check its files;
    /// `layers_waiting` says whether layers of the same scan still wait for
    /// a worker (they go first).
    pub(crate) fn helpers<'p, 's: 'p>(
        &'s self,
        detector: &'p (dyn Fn() -> Detector<'s> + Sync),
        layers_waiting: &'p (dyn Fn() -> bool + Sync),
    ) -> Helpers<'p, 's> {
        Helpers {
            jobs: self.pool.current_num_threads(),
            busy: &self.busy,
            shared: &self.files_shared,
            detector,
            layers_waiting,
        }
    }

    /// A detector over this scanner's signatures, with its time limit per file.
    pub(crate) fn detector(&self) -> Detector<'_> {
        Detector::with_timeout(&self.signatures, self.file_timeout)
    }

    /// Runs `f` with a fresh detector on each worker of the pool.
    pub(crate) fn par_map<'a, T: Sync, R: Send>(
        &'a self,
        items: &[T],
        f: impl Fn(&mut Detector<'a>, &T) -> R + Sync + Send,
    ) -> Vec<R> {
        self.pool.install(|| {
            items
                .par_iter()
                .map_init(|| self.detector(), |detector, item| f(detector, item))
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
        let started = AtomicUsize::new(0);
        let late_hits = AtomicUsize::new(0);
        let jobs = self.pool.current_num_threads();
        // Once every layer has a worker, idle workers help check the files
        // of those still being read.
        let detector = || self.detector();
        let layers_waiting = || started.load(Ordering::SeqCst) < to_scan.len();
        let helpers = self.helpers(&detector, &layers_waiting);
        results.extend(self.par_map(&to_scan, |detector, (layer, key)| {
            if watch.cancelled() {
                started.fetch_add(1, Ordering::SeqCst);
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
                            started.fetch_add(1, Ordering::SeqCst);
                            return (layer.location.clone(), Ok(Arc::new(scan)));
                        }
                        Claim::Mine(claim) => Some(claim),
                        Claim::Cancelled => {
                            started.fetch_add(1, Ordering::SeqCst);
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
            let now_busy = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            // Given back however this layer ends, a panic in a user's
            // `Progress` included: the count is the whole scanner's.
            let _busy = Release(&self.busy);
            let ahead = last && now_busy < jobs;
            let name = layer_name(layer);
            // Stamped before reading, so a change while reading shows later.
            let stamp = self.blob_stamp(store, layer);
            // A layer file can also be inflated from several offsets at once;
            // a large registry layer is fetched into one for that.
            let (file, opened) = self.open_layer(store, layer, ahead);
            let scan = opened.map_err(LayerError::from).and_then(|blob| {
                if let Some(progress) = watch.progress {
                    progress.layer_started(&name, layer.size);
                }
                let reader = WatchedReader {
                    inner: blob,
                    layer: &name,
                    watch,
                };
                // Idle workers help with the files; a thread inflates
                // ahead only where there are cores to spare for it: on
                // two, three busy threads only slow the inflating down.
                let scan = match self.share_files {
                    true => self.scan_blob(reader, file, detector, ahead, Some(&helpers)),
                    false => self.scan_blob(reader, file, detector, ahead, None),
                };
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

    /// Opens a layer blob to stream it and, where it will be inflated ahead
    /// by several threads, where they read it at offsets: a local file, or
    /// a registry blob arriving in a spool file by several range requests.
    fn open_layer<'a>(
        &self,
        store: &'a dyn BlobStore,
        layer: &Layer,
        ahead: bool,
    ) -> (
        Option<BlobAt>,
        Result<Box<dyn Read + Send + 'a>, minehound_oci::Error>,
    ) {
        let parallel = ahead && self.gzip_inflaters > 0 && self.pool.current_num_threads() > 1;
        if !parallel {
            return (None, store.open(&layer.location));
        }
        if let Some(file) = store.blob_file(&layer.location) {
            return (Some(BlobAt::Named(file)), store.open(&layer.location));
        }
        match layer
            .size
            .and_then(|size| store.spool(&layer.location, size))
        {
            Some(spooled) => {
                let reader: Box<dyn Read + Send> = Box::new(spooled.reader());
                (Some(BlobAt::Arriving(spooled)), Ok(reader))
            }
            None => (None, store.open(&layer.location)),
        }
    }

    /// Scans a layer blob; `ahead` asks for inflating it on a thread of its
    /// own, ahead of the checks, when more than one thread is allowed, and
    /// `helpers` (called on a worker of the pool) lets idle workers check
    /// its files too.
    pub(crate) fn scan_blob<'s>(
        &'s self,
        blob: impl Read + Send,
        file: Option<BlobAt>,
        detector: &mut Detector<'s>,
        ahead: bool,
        helpers: Option<&Helpers<'_, 's>>,
    ) -> Result<LayerScan, LayerError> {
        let threads = self.pool.current_num_threads() > 1;
        let (ahead, helpers) = (ahead && threads, helpers.filter(|_| threads));
        contain_layer_panic(detector, |detector| {
            if ahead {
                // A zstd layer's frames decode side by side, a few at a
                // time: decoding is several times faster than checking.
                let decoders = Decoders {
                    frames: self.pool.current_num_threads().min(MAX_FRAME_DECODERS),
                    frames_decoded: &self.zstd_frames,
                    gzip: file
                        .filter(|_| self.gzip_inflaters > 0)
                        .and_then(|file| file.open().ok())
                        .map(|at| (at, self.gzip_inflaters)),
                    gzip_chunks: &self.gzip_chunks,
                };
                scan_layer_blob_ahead(blob, detector, &self.limits, helpers, decoders)
            } else {
                scan_layer_blob_helped(blob, detector, &self.limits, helpers)
            }
        })
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
    pub(crate) fn cache_key(&self, layer: &Layer, content_addressed: bool) -> Option<CacheKey> {
        self.cache.as_ref()?;
        let digest = match (&layer.digest, &layer.diff_id) {
            (Some(digest), _) => digest,
            (None, Some(diff_id)) if content_addressed => diff_id,
            _ => return None,
        };
        Some(CacheKey::new(&self.cache_settings, digest))
    }
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
        Err(err) => Err(LayerError::Again {
            kind: err.kind(),
            message: crate::file_check::error_chain(err),
        }),
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
