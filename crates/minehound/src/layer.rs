//! Scanning one layer blob: verify, decompress, walk, classify, detect.

use std::collections::HashSet;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use minehound_detect::{Detection, Detector};
use minehound_oci::BlobFile;
use minehound_unpack::{FileRange, HashingReader, Limits, ReadAt};

use crate::LayerError;
use crate::error::panic_message;
use crate::file_check::{FileChecker, LAYER_READER};
use crate::layer_share::{Helpers, Sharing};

/// Everything one layer yields, independent of the image it belongs to, so a
/// layer shared by many images is scanned once.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LayerScan {
    /// `sha256:` of the blob as read.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// Bytes of the blob.
    pub compressed_bytes: u64,
    /// Bytes after decompression.
    pub uncompressed_bytes: u64,
    /// Regular files, nested archive members included.
    pub files: u64,
    /// Files checked in full.
    pub files_scanned: u64,
    /// ELF files among them.
    pub elf_files: u64,
    /// Nested archives opened.
    pub archives: u64,
    /// Files with at least one detection.
    pub findings: Vec<FileFinding>,
    /// Files not fully checked, with reasons.
    pub skipped: Vec<SkippedFile>,
    /// Paths this layer deletes from the layers below.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer content this layer hides.
    pub opaque_dirs: Vec<String>,
    /// Every path this layer writes (files, directories, links).
    pub paths: HashSet<String>,
}

/// A file with detections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileFinding {
    /// Path in the layer; nested members read `outer!/inner`.
    pub path: String,
    /// SHA-256 of the bytes checked, hex.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// What matched.
    pub detections: Vec<Detection>,
}

/// A file that was not fully checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedFile {
    /// Path in the layer.
    pub path: String,
    /// Declared size.
    pub size: u64,
    /// Why.
    pub reason: String,
    /// The scanner failed on the file (an internal error, a time limit):
    /// it has no verdict. See [`minehound_report::Skipped::failed`].
    pub failed: bool,
}

impl LayerScan {
    /// Whether every file has a verdict: no file the scanner failed on. Only
    /// a complete scan is kept in the layer cache, since a time limit or an
    /// internal error may not strike twice.
    pub fn complete(&self) -> bool {
        !self.skipped.iter().any(|s| s.failed)
    }

    /// The most severe detection in the layer, if there is any.
    pub fn highest_severity(&self) -> Option<minehound_detect::Severity> {
        self.findings
            .iter()
            .flat_map(|f| &f.detections)
            .map(|d| d.severity)
            .max()
    }

    /// The layer's findings in the shape a [`Report`](crate::Report) holds
    /// them: one [`Finding`](crate::Finding) per detection, so an upload
    /// scan and an image scan are handled by the same code.
    ///
    /// (The `findings` field lists files with their detections; this method
    /// flattens them.) A layer alone knows no image: each finding's
    /// `layer` is index 0 with this layer's digest and no `created_by`,
    /// its `status` is `present` and its `platform` empty. In an image scan
    /// the same finding carries the layer's place in the image, and
    /// `deleted` when a later layer removes the file.
    ///
    /// ```
    /// use minehound::{ScannerBuilder, Severity, Status};
    /// use minehound_testdata::{DEMO_DROPPER_PATH, demo_image};
    ///
    /// let image = demo_image().build();
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let scan = scanner.scan_layer(&image.layers[1].bytes[..], "application/octet-stream")?;
    /// let findings = scan.findings();
    /// let dropper = findings.iter().find(|f| f.path == DEMO_DROPPER_PATH).unwrap();
    /// assert!(dropper.severity >= Severity::High);
    /// assert_eq!(dropper.status, Status::Present);
    /// assert_eq!(dropper.layer.digest.as_deref(), Some(scan.digest.as_str()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn findings(&self) -> Vec<minehound_report::Finding> {
        let layer = minehound_report::LayerRef {
            index: 0,
            digest: (!self.digest.is_empty()).then(|| self.digest.clone()),
            created_by: None,
        };
        self.findings
            .iter()
            .flat_map(|file| {
                crate::merge::file_findings(file, &layer, minehound_report::Status::Present, None)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Adds another partial scan of the same layer or directory.
    pub(crate) fn absorb(&mut self, other: LayerScan) {
        self.compressed_bytes += other.compressed_bytes;
        self.uncompressed_bytes += other.uncompressed_bytes;
        self.files += other.files;
        self.files_scanned += other.files_scanned;
        self.elf_files += other.elf_files;
        self.archives += other.archives;
        self.findings.extend(other.findings);
        self.skipped.extend(other.skipped);
        self.whiteouts.extend(other.whiteouts);
        self.opaque_dirs.extend(other.opaque_dirs);
        self.paths.extend(other.paths);
    }
}

/// Streams one layer blob through the pipeline, hashing it (as stored and
/// uncompressed) on the way. The caller compares the digests with the manifest.
pub fn scan_layer_blob(
    blob: impl Read,
    detector: &mut Detector<'_>,
    limits: &Limits,
) -> Result<LayerScan, LayerError> {
    scan_layer_blob_helped(blob, detector, limits, None)
}

/// [`scan_layer_blob`], with idle workers checking files beside this one
/// when `helpers` lends some.
pub(crate) fn scan_layer_blob_helped<'s>(
    blob: impl Read,
    detector: &mut Detector<'s>,
    limits: &Limits,
    helpers: Option<&Helpers<'_, 's>>,
) -> Result<LayerScan, LayerError> {
    let mut raw = HashingReader::new(blob);
    let (_, decompressed) = minehound_unpack::decompress(&mut raw, limits.max_layer_size)
        .map_err(minehound_unpack::Error::from_io)?;
    let mut scan = check_layer_tar(decompressed, detector, limits, helpers, Sharing::WhenIdle)?;
    let (digest, bytes) = raw.finish().map_err(minehound_unpack::Error::from_io)?;
    scan.digest = digest;
    scan.compressed_bytes = bytes;
    Ok(scan)
}

/// [`scan_layer_blob`] on two threads: this one walks and checks the files
/// while another reads, hashes and inflates the blob ahead of it. Inflating is
/// about half the work, so a layer scans in about half the time when a core
/// is free (an image of one large layer, or the last layer of an image). A
/// zstd layer's frames are decoded side by side by `frames`.
pub(crate) fn scan_layer_blob_ahead<'s>(
    blob: impl Read + Send,
    detector: &mut Detector<'s>,
    limits: &Limits,
    helpers: Option<&Helpers<'_, 's>>,
    decoders: Decoders<'_>,
) -> Result<LayerScan, LayerError> {
    // Read-ahead never takes the file buffers' half of the budget, so
    // several layers read ahead at once (a service's jobs) leave room for
    // files, and always one file's room for the reader that frees them.
    let keep_free = limits.max_file_size.max(limits.memory_budget.total() / 2);
    let (pump, inflated) = minehound_unpack::read_ahead_within(&limits.memory_budget, keep_free);
    std::thread::scope(|scope| {
        let inflater = scope.spawn(move || {
            let mut raw = HashingReader::new(blob);
            let limit = limits.max_layer_size;
            let pumped = match decoders.gzip {
                Some((at, inflaters)) => minehound_unpack::pump_decompressed_at(
                    &mut raw,
                    at,
                    inflaters,
                    limit,
                    decoders.frames,
                    &pump,
                ),
                None => {
                    minehound_unpack::pump_decompressed(&mut raw, limit, decoders.frames, &pump)
                }
            };
            decoders
                .frames_decoded
                .fetch_add(pumped.frames, Ordering::Relaxed);
            decoders
                .gzip_chunks
                .fetch_add(pumped.gzip_chunks, Ordering::Relaxed);
            if !pumped.complete {
                return None;
            }
            // The blob's trailing bytes count too, as in `scan_layer_blob`.
            match raw.finish() {
                Ok(digest) => Some(digest),
                Err(e) => {
                    pump.fail(e);
                    None
                }
            }
        });
        // Dropping the reader (when this returns, even early) stops the inflater.
        let checked = check_layer_tar(inflated, detector, limits, helpers, Sharing::WalkOnly);
        let blob_digest = inflater.join();
        let mut scan = checked?;
        let Ok(Some((digest, bytes))) = blob_digest else {
            return Err(LayerError::Unpack(minehound_unpack::Error::from_io(
                std::io::Error::other("the layer blob could not be read to its end"),
            )));
        };
        scan.digest = digest;
        scan.compressed_bytes = bytes;
        Ok(scan)
    })
}

/// Where a layer blob's bytes can also be read at any offset.
pub(crate) enum BlobAt {
    /// A file a store names, opened only when wanted.
    Named(BlobFile),
    /// A file already open: a piped archive's layer, spooled.
    Spooled(std::fs::File),
    /// A registry blob arriving in a spool file.
    Arriving(minehound_oci::SpooledBlob),
}

/// A [`minehound_oci::SpooledBlob`] as the inflaters read it.
struct Arriving(minehound_oci::SpooledBlob);

impl ReadAt for Arriving {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn size(&self) -> u64 {
        self.0.size()
    }
}

impl BlobAt {
    /// The blob, to be read at any offset.
    pub(crate) fn open(&self) -> std::io::Result<Arc<dyn ReadAt>> {
        let (opened, range) = match self {
            BlobAt::Named(file) => (std::fs::File::open(&file.path)?, file.range),
            // `read_at` leaves the file's position (its reader's) alone.
            BlobAt::Spooled(file) => (file.try_clone()?, None),
            BlobAt::Arriving(blob) => return Ok(Arc::new(Arriving(blob.clone()))),
        };
        let meta = opened.metadata()?;
        // The store opened it as a regular file already; it still must be one.
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        // A member may claim more than its archive holds: what is there, as
        // a stream reading it would find.
        let (offset, len) = match range {
            Some((offset, len)) => (offset, len.min(meta.len().saturating_sub(offset))),
            None => (0, meta.len()),
        };
        Ok(Arc::new(FileRange::new(opened, offset, len)))
    }
}

/// Threads to decode a zstd layer's frames, and a gzip layer file with the
/// threads to inflate it side by side; the scanner's counts of their work.
pub(crate) struct Decoders<'a> {
    pub(crate) frames: usize,
    pub(crate) frames_decoded: &'a AtomicU64,
    pub(crate) gzip: Option<(Arc<dyn ReadAt>, usize)>,
    pub(crate) gzip_chunks: &'a AtomicU64,
}

/// Runs one layer's scan so that a panic in it (a decompressor, the tar walk)
/// ends that layer's scan with [`LayerError::Internal`], not the process;
/// panics inside one file's check are contained closer, per file.
pub(crate) fn contain_layer_panic<'s>(
    detector: &mut Detector<'s>,
    scan: impl FnOnce(&mut Detector<'s>) -> Result<LayerScan, LayerError>,
) -> Result<LayerScan, LayerError> {
    match catch_unwind(AssertUnwindSafe(|| scan(detector))) {
        Ok(result) => result,
        Err(panic) => {
            detector.reset();
            Err(LayerError::Internal {
                component: LAYER_READER,
                message: panic_message(&*panic).to_string(),
            })
        }
    }
}

/// Walks an uncompressed layer tar and checks every file (with `helpers`,
/// on idle workers too, shared as `how` says); fills in the diff id.
fn check_layer_tar<'s>(
    tar: impl Read,
    detector: &mut Detector<'s>,
    limits: &Limits,
    helpers: Option<&Helpers<'_, 's>>,
    how: Sharing,
) -> Result<LayerScan, LayerError> {
    let mut scan = LayerScan::default();
    let mut plain = HashingReader::new(tar);
    match helpers {
        None => {
            let mut checker = FileChecker::new(detector, limits, &mut scan);
            minehound_unpack::walk_layer_tar(&mut plain, limits, &mut checker)?;
        }
        Some(helpers) => {
            let ((walked, mut ordered), helped) = helpers.share_layer(limits, how, |sharing| {
                let mut checker = FileChecker::new(detector, limits, &mut scan).sharing(sharing);
                let walked = minehound_unpack::walk_layer_tar(&mut plain, limits, &mut checker);
                (walked, checker.take_ordered())
            });
            walked?;
            ordered.extend(helped);
            ordered.sort_by_key(|(place, _)| *place);
            for (_, part) in ordered {
                scan.absorb(part);
            }
        }
    }
    let (diff_id, bytes) = plain.finish().map_err(minehound_unpack::Error::from_io)?;
    scan.diff_id = diff_id;
    scan.uncompressed_bytes = bytes;
    Ok(scan)
}
