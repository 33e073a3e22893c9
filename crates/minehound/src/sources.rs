//! Scans of what a registry holds: an image from an [`ImageSource`] by
//! manifest digest, many manifests at once (each unique layer once), a
//! whole Distribution storage tree.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use minehound_oci::{
    BlobLocation, DistributionStorage, ImageSource, PlatformChoice, SourceStore, StoredManifest,
    images_from_source,
};
use minehound_report::{Report, SkippedImage, StorageReport, StoredImage};

use crate::file_check::error_chain;
use crate::layer::LayerScan;
use crate::progress::{CancelToken, Progress, Watch};
use crate::scanner::{assemble, take_shared};
use crate::{Error, LayerError, Scanner};

/// How to scan images of an [`ImageSource`] or a storage tree, and who
/// watches.
#[derive(Clone)]
#[non_exhaustive]
pub struct SourceRequest {
    /// The name reports give the target (or, for many manifests, the store).
    pub name: String,
    /// Which platforms of a multi-platform image (default: all).
    pub platform: PlatformChoice,
    /// Whether a storage scan also takes manifests no tag reaches.
    pub untagged: bool,
    /// Who hears about layer progress, if anyone.
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the scan when cancelled.
    pub cancel: Option<CancelToken>,
}

impl std::fmt::Debug for SourceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRequest")
            .field("name", &self.name)
            .field("platform", &self.platform)
            .field("untagged", &self.untagged)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl SourceRequest {
    /// Every platform, tagged manifests only, nobody watching.
    pub fn new(name: impl Into<String>) -> Self {
        SourceRequest {
            name: name.into(),
            platform: PlatformChoice::All,
            untagged: false,
            progress: None,
            cancel: None,
        }
    }

    /// Chooses platforms.
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = platform;
        self
    }

    /// Also scans manifests no tag reaches (storage scans).
    pub fn untagged(mut self, yes: bool) -> Self {
        self.untagged = yes;
        self
    }

    /// Reports layer progress to `progress`.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
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
}

impl Scanner {
    /// Scans the image (every platform `request` picks) under manifest or
    /// index `digest` of `source`. Manifests, configs and layers are verified
    /// against their digests as they are read.
    pub fn scan_source(
        &self,
        source: &dyn ImageSource,
        digest: &str,
        request: &SourceRequest,
    ) -> Result<Report, Error> {
        let images = images_from_source(source, digest, &request.platform)?;
        let mut cached = 0;
        let scanned = self.scan_images(
            &SourceStore::new(source),
            images,
            request.watch(),
            &mut cached,
        )?;
        let mut report = self.build_report(&request.name, scanned)?;
        report.stats.layers_cached = cached;
        Ok(report)
    }

    /// Scans a whole CNCF Distribution storage tree: every repository, every
    /// tag (and untagged manifests if `request` asks), every platform it
    /// picks, each unique layer once. An image that cannot be scanned is
    /// listed with its error; only cancellation or an unreadable tree fails
    /// the whole scan. With a layer cache, a scan run again after an
    /// interruption reads only the layers not yet done.
    pub fn scan_storage(
        &self,
        storage: &DistributionStorage,
        request: &SourceRequest,
    ) -> Result<StorageReport, Error> {
        let started = Instant::now();
        let listing = storage.list(request.untagged)?;
        let mut report = self.scan_manifests(storage, &listing.manifests, request)?;
        report.summary.repositories = listing.repositories.len() as u64;
        report.skipped = listing
            .skipped
            .into_iter()
            .map(|s| SkippedImage {
                what: s.what,
                reason: s.reason,
            })
            .collect();
        report.summary.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Scans many images of one source, one report each, reading each
    /// unique layer once: the images are resolved first, then scanned in
    /// batches, and a layer's result is dropped after its last image, so
    /// memory stays bounded however many images share it.
    pub fn scan_manifests(
        &self,
        source: &dyn ImageSource,
        manifests: &[StoredManifest],
        request: &SourceRequest,
    ) -> Result<StorageReport, Error> {
        let started = Instant::now();
        let watch = request.watch();
        let store = SourceStore::new(source);
        let mut report = StorageReport::new(source.name(), self.signature_set());
        let mut resolved = Vec::with_capacity(manifests.len());
        let mut remaining: HashMap<BlobLocation, usize> = HashMap::new();
        for manifest in manifests {
            if watch.cancelled() {
                return Err(Error::Cancelled);
            }
            let images = images_from_source(source, &manifest.digest, &request.platform);
            for layer in images.iter().flatten().flat_map(|i| &i.layers) {
                *remaining.entry(layer.location.clone()).or_default() += 1;
            }
            resolved.push(Some(images));
        }
        let summary = &mut report.summary;
        summary.repositories = manifests
            .iter()
            .map(|m| &m.repository)
            .collect::<HashSet<_>>()
            .len() as u64;
        summary.layer_references = remaining.values().map(|&n| n as u64).sum();
        summary.unique_layers = remaining.len() as u64;

        let batch_layers = self.pool.current_num_threads() * 4;
        let mut done = HashMap::new();
        let mut next = 0;
        while next < resolved.len() {
            // The next images, until they bring enough new layers to keep
            // every worker busy.
            let mut end = next;
            let mut fresh = Vec::new();
            let mut fresh_seen = HashSet::new();
            while end < resolved.len() && (end == next || fresh.len() < batch_layers) {
                if let Some(Ok(images)) = &resolved[end] {
                    for layer in images.iter().flat_map(|i| &i.layers) {
                        if !done.contains_key(&layer.location) && fresh_seen.insert(&layer.location)
                        {
                            fresh.push(layer);
                        }
                    }
                }
                end += 1;
            }
            let scanned = self.scan_layers(&store, fresh, watch)?;
            report.summary.layers_scanned += scanned.scanned;
            report.summary.layers_cached += scanned.cached;
            for (location, result) in scanned.results {
                if let Ok(scan) = &result {
                    report.summary.bytes += scan.compressed_bytes;
                    report.summary.bytes_uncompressed += scan.uncompressed_bytes;
                }
                done.insert(location, result);
            }
            for (index, slot) in resolved[next..end].iter_mut().enumerate() {
                let manifest = &manifests[next + index];
                let images = slot.take().expect("each image is taken once");
                report
                    .images
                    .push(self.finish_stored(manifest, images, &mut done, &mut remaining));
            }
            next = end;
        }
        report.summary.seconds = started.elapsed().as_secs_f64();
        report.finish();
        Ok(report)
    }

    /// One image's report from the layer results, releasing each result
    /// its last image has used.
    fn finish_stored(
        &self,
        manifest: &StoredManifest,
        images: Result<Vec<minehound_oci::Image>, minehound_oci::Error>,
        done: &mut HashMap<BlobLocation, Result<Arc<LayerScan>, LayerError>>,
        remaining: &mut HashMap<BlobLocation, usize>,
    ) -> StoredImage {
        let failed = |error: String| {
            StoredImage::failed(
                manifest.repository.clone(),
                manifest.tag.clone(),
                manifest.digest.clone(),
                error,
            )
        };
        let images = match images {
            Ok(images) => images,
            Err(err) => return failed(error_chain(&Error::from(err))),
        };
        let locations: Vec<BlobLocation> = images
            .iter()
            .flat_map(|i| &i.layers)
            .map(|l| l.location.clone())
            .collect();
        let scanned = assemble(images, |layer| take_shared(done, &layer.location));
        for location in locations {
            if let Some(count) = remaining.get_mut(&location) {
                *count -= 1;
                if *count == 0 {
                    remaining.remove(&location);
                    done.remove(&location);
                }
            }
        }
        match scanned.and_then(|scanned| self.build_report(&manifest.reference(), scanned)) {
            Ok(report) => StoredImage::scanned(
                manifest.repository.clone(),
                manifest.tag.clone(),
                manifest.digest.clone(),
                report,
            ),
            Err(err) => failed(error_chain(&err)),
        }
    }
}
