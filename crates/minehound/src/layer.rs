//! Scanning one layer blob: verify, decompress, walk, classify, detect.

use std::collections::HashSet;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use minehound_detect::{CheckedFile, Detection, Detector, FileKind, classify, hidden_path, sha256};
use minehound_unpack::{ArchiveFormat, FileEntry, HashingReader, Limits, Visitor, walk_nested};

use crate::LayerError;
use crate::error::panic_message;

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
    let mut raw = HashingReader::new(blob);
    let (_, decompressed) = minehound_unpack::decompress(&mut raw, limits.max_layer_size)
        .map_err(minehound_unpack::Error::from_io)?;
    let mut scan = check_layer_tar(decompressed, detector, limits)?;
    let (digest, bytes) = raw.finish().map_err(minehound_unpack::Error::from_io)?;
    scan.digest = digest;
    scan.compressed_bytes = bytes;
    Ok(scan)
}

/// [`scan_layer_blob`] on two threads: this one walks and checks the files
/// while another reads, hashes and inflates the blob ahead of it. Inflating is
/// about half the work, so a layer scans in about half the time when a core
/// is free (an image of one large layer, or the last layer of an image).
pub(crate) fn scan_layer_blob_ahead(
    blob: impl Read + Send,
    detector: &mut Detector<'_>,
    limits: &Limits,
) -> Result<LayerScan, LayerError> {
    let (pump, inflated) = minehound_unpack::read_ahead();
    std::thread::scope(|scope| {
        let inflater = scope.spawn(move || {
            let mut raw = HashingReader::new(blob);
            let pumped = minehound_unpack::decompress(&mut raw, limits.max_layer_size)
                .map(|(_, mut decompressed)| pump.pump(&mut decompressed));
            match pumped {
                // The blob's trailing bytes count too, as in `scan_layer_blob`.
                Ok(true) => match raw.finish() {
                    Ok(digest) => Some(digest),
                    Err(e) => {
                        pump.fail(e);
                        None
                    }
                },
                Ok(false) => None,
                Err(e) => {
                    pump.fail(e);
                    None
                }
            }
        });
        // Dropping the reader (when this returns, even early) stops the inflater.
        let checked = check_layer_tar(inflated, detector, limits);
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

/// Walks an uncompressed layer tar and checks every file; fills in the diff id.
fn check_layer_tar(
    tar: impl Read,
    detector: &mut Detector<'_>,
    limits: &Limits,
) -> Result<LayerScan, LayerError> {
    let mut scan = LayerScan::default();
    let mut checker = FileChecker::new(detector, limits, &mut scan);
    let mut plain = HashingReader::new(tar);
    minehound_unpack::walk_layer_tar(&mut plain, limits, &mut checker)?;
    let (diff_id, bytes) = plain.finish().map_err(minehound_unpack::Error::from_io)?;
    scan.diff_id = diff_id;
    scan.uncompressed_bytes = bytes;
    Ok(scan)
}

/// The [`Visitor`] that checks each file of a layer, directory or nested archive.
pub(crate) struct FileChecker<'a, 's> {
    detector: &'a mut Detector<'s>,
    limits: &'a Limits,
    scan: &'a mut LayerScan,
    nesting: u32,
    /// Bytes that archives inside this layer may still decompress to.
    nested_budget: u64,
    /// What is at work on the current file: what a panic is blamed on.
    component: Component,
}

/// The component that last took a file in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Classifier,
    NestedArchive,
    /// The detector names its own stage.
    Detector,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Classifier => "classifier",
            Component::NestedArchive => "nested archive reader",
            Component::Detector => "detector",
        }
    }
}

/// What a panic while reading a layer (decompression, the tar walk) is blamed on.
pub(crate) const LAYER_READER: &str = "layer reader";

impl<'a, 's> FileChecker<'a, 's> {
    pub(crate) fn new(
        detector: &'a mut Detector<'s>,
        limits: &'a Limits,
        scan: &'a mut LayerScan,
    ) -> Self {
        FileChecker {
            detector,
            limits,
            scan,
            nesting: 0,
            nested_budget: limits.max_layer_size,
            component: Component::Classifier,
        }
    }

    fn skip(&mut self, path: &str, size: u64, reason: String) {
        self.scan.skipped.push(SkippedFile {
            path: path.to_string(),
            size,
            reason,
            failed: false,
        });
    }

    /// Lists a file the scanner failed on: it has no verdict.
    fn fail(&mut self, path: &str, size: u64, reason: String) {
        self.scan.skipped.push(SkippedFile {
            path: path.to_string(),
            size,
            reason,
            failed: true,
        });
    }

    /// Checks one file: opens it when it is an archive, else runs the detectors.
    fn check(&mut self, file: &FileEntry<'_>) {
        self.component = Component::Classifier;
        minehound_detect::fault::inject(Component::Classifier.name(), file.data);
        let kind = classify(file.data);
        if kind == FileKind::Elf {
            self.scan.elf_files += 1;
        }
        let mut not_read = None;
        if kind == FileKind::Archive
            && !file.truncated
            && let Some(format) = ArchiveFormat::sniff(file.data)
        {
            self.component = Component::NestedArchive;
            match self.open_archive(file, format) {
                Ok(()) => {
                    self.scan.files_scanned += 1;
                    return;
                }
                // Not (fully) an archive after all: check its bytes like any file.
                Err(reason) => not_read = Some(reason),
            }
        }
        if file.truncated {
            not_read = Some(format!(
                "larger than the file size limit of {} bytes: only the first {} bytes were checked, not hashed",
                self.limits.max_file_size, self.limits.max_file_size
            ));
        }
        // Every file goes through the rules, whatever it looks like: a NUL byte or
        // a tar magic must not be enough to hide a script or config. Hashes and
        // ELF parsing need whole candidate files.
        let whole = !file.truncated && kind.is_candidate();
        self.component = Component::Detector;
        match self.detector.check_file(kind, file.data, whole) {
            Ok(CheckedFile {
                mut detections,
                sha256: digest,
            }) => {
                if let Some(hidden) = hidden_path(file.path, kind, &detections) {
                    detections.push(hidden);
                }
                if !detections.is_empty() {
                    // A finding names its file's hash (for allowlists and
                    // lookups) even when no hash list needed it.
                    let digest = digest.or_else(|| whole.then(|| sha256(file.data)));
                    self.scan.findings.push(FileFinding {
                        path: file.path.to_string(),
                        sha256: digest.map(hex::encode),
                        size: file.size,
                        detections,
                    });
                }
                match not_read {
                    Some(reason) => self.skip(file.path, file.size, reason),
                    None => self.scan.files_scanned += 1,
                }
            }
            Err(err) if err.is_timeout() => {
                let reason = format!(
                    "the rules ran past their time limit of {} s on this file; the file was not checked",
                    self.detector.timeout().as_secs_f64()
                );
                self.fail(file.path, file.size, reason);
            }
            Err(err) => {
                let reason = format!("detectors failed: {}", error_chain(&err));
                self.fail(file.path, file.size, reason);
            }
        }
    }

    /// Walks an archive found in the layer. `Err` carries why its members could
    /// not all be read; the caller then checks the archive's own bytes.
    fn open_archive(&mut self, file: &FileEntry<'_>, format: ArchiveFormat) -> Result<(), String> {
        if file.depth >= self.limits.max_depth {
            return Err(format!(
                "archive nested deeper than the limit of {} levels: members not scanned",
                self.limits.max_depth
            ));
        }
        minehound_detect::fault::inject(Component::NestedArchive.name(), file.data);
        self.scan.archives += 1;
        self.nesting += 1;
        // Every archive of a layer draws on one decompression budget, so a layer
        // of many small bombs costs no more than one large one.
        let limits = Limits {
            max_layer_size: self.nested_budget,
            ..self.limits.clone()
        };
        let result = walk_nested(file.path, file.data, format, file.depth + 1, &limits, self);
        self.nesting -= 1;
        match result {
            Ok(counts) => {
                self.nested_budget = self.nested_budget.saturating_sub(counts.uncompressed_bytes);
                Ok(())
            }
            Err(err) => {
                if matches!(err, minehound_unpack::Error::LayerTooLarge { .. }) {
                    self.nested_budget = 0;
                }
                Err(format!("archive not fully read: {}", error_chain(&err)))
            }
        }
    }
}

impl Visitor for FileChecker<'_, '_> {
    fn file(&mut self, file: FileEntry<'_>) -> Result<(), minehound_unpack::Error> {
        self.scan.files += 1;
        if self.nesting == 0 {
            self.scan.paths.insert(file.path.to_string());
        }
        minehound_detect::fault::inject(LAYER_READER, file.data);
        // A member of a nested archive hands the archive back to its reader.
        let outer = self.component;
        // One file's panic (a parser, a decompressor, the rules engine) ends
        // that file's check, not the layer's: the file is listed as failed.
        let (nesting, budget) = (self.nesting, self.nested_budget);
        let checked = catch_unwind(AssertUnwindSafe(|| self.check(&file)));
        if let Err(panic) = checked {
            let component = match self.component {
                Component::Detector => self.detector.stage().component(),
                other => other.name(),
            };
            self.detector.reset();
            self.nesting = nesting;
            self.nested_budget = budget.min(self.nested_budget);
            let reason = format!(
                "internal error in the {component}: {}; the file was not checked",
                panic_message(&*panic)
            );
            self.fail(file.path, file.size, reason);
        }
        self.component = outer;
        Ok(())
    }
    fn skipped(&mut self, path: &str, size: u64, reason: &str) {
        self.scan.files += 1;
        if self.nesting == 0 {
            self.scan.paths.insert(path.to_string());
        }
        self.skip(path, size, reason.to_string());
    }

    fn whiteout(&mut self, path: &str) {
        self.scan.whiteouts.push(path.to_string());
    }

    fn opaque_dir(&mut self, dir: &str) {
        self.scan.opaque_dirs.push(dir.to_string());
    }

    fn other_entry(&mut self, path: &str) {
        if self.nesting == 0 {
            self.scan.paths.insert(path.to_string());
        }
    }
}

/// An error and its causes on one line: `a: b: c`.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::ErrorChain(err).to_string()
}
