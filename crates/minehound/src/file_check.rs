//! Checking the files a walk finds: [`FileChecker`], the [`Visitor`] of a
//! layer, a directory or a nested archive.

use std::panic::{AssertUnwindSafe, catch_unwind};

use minehound_detect::{
    CheckedFile, Detection, Detector, FileKind, PACKER_RULES, classify, hidden_path, sha256,
};
use minehound_unpack::{
    ArchiveFormat, FileBuffer, FileEntry, Limits, OwnedFile, Visitor, join_nested, upx, walk_nested,
};

use crate::error::panic_message;
use crate::layer::{FileFinding, LayerScan, SkippedFile};

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
    /// Other workers checking this layer's files beside this one.
    sharing: Option<&'a mut dyn ShareFiles>,
    /// With sharing: the next file's place in the layer, and the results of
    /// the files checked here, each under its place (see [`Ordered`]).
    next_place: u64,
    ordered: Ordered,
}

/// Results of single files, each under the file's place in its layer, to be
/// merged in layer order: however the files were spread over workers, the
/// layer's findings and skipped files come out as one thread would list them.
pub(crate) type Ordered = Vec<(u64, LayerScan)>;

/// Where a layer's reader hands files to other workers (see `layer_share`).
pub(crate) trait ShareFiles {
    /// Takes the file at `place`, its buffer and all, to be checked by
    /// another worker, or gives it back when none has room for it.
    fn hand_off<'f>(&mut self, place: u64, file: OwnedFile<'f>) -> Result<(), OwnedFile<'f>>;
}

/// The component that last took a file in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Classifier,
    NestedArchive,
    Unpacker,
    /// The detector names its own stage.
    Detector,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Classifier => "classifier",
            Component::NestedArchive => "nested archive reader",
            Component::Unpacker => "UPX unpacker",
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
            sharing: None,
            next_place: 0,
            ordered: Vec::new(),
        }
    }

    /// Hands files to `sharing` where it takes them; the results of the files
    /// checked here are then kept apart, see [`take_ordered`](Self::take_ordered).
    pub(crate) fn sharing(mut self, sharing: &'a mut dyn ShareFiles) -> Self {
        self.sharing = Some(sharing);
        self
    }

    /// With sharing, the results of the files checked here, each under its
    /// place in the layer; counts and paths stay in the scan.
    pub(crate) fn take_ordered(&mut self) -> Ordered {
        std::mem::take(&mut self.ordered)
    }

    /// Runs `record` on one top-level entry; with sharing, the findings and
    /// skipped files it adds are kept under the entry's place.
    fn in_order(&mut self, record: impl FnOnce(&mut Self)) {
        if self.sharing.is_none() {
            return record(self);
        }
        let place = self.next_place;
        self.next_place += 1;
        let (findings, skipped) = (self.scan.findings.len(), self.scan.skipped.len());
        record(self);
        let part = LayerScan {
            findings: self.scan.findings.split_off(findings),
            skipped: self.scan.skipped.split_off(skipped),
            ..LayerScan::default()
        };
        self.ordered.push((place, part));
    }

    fn skip(&mut self, path: &str, size: u64, reason: String) {
        self.list_unchecked(path, size, reason, false);
    }

    /// Lists a file the scanner failed on: it has no verdict.
    fn fail(&mut self, path: &str, size: u64, reason: String) {
        self.list_unchecked(path, size, reason, true);
    }

    fn list_unchecked(&mut self, path: &str, size: u64, reason: String, failed: bool) {
        self.scan.skipped.push(SkippedFile {
            path: path.to_string(),
            size,
            reason,
            failed,
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
                let packed = whole && kind == FileKind::Elf && is_packed(&detections);
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
                if packed && let Err(reason) = self.unpack(file) {
                    not_read = Some(reason);
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

    /// Checks what a packed ELF unpacks to, as a member of it named
    /// `path!upx-unpacked`. `Err` carries why it was not unpacked: only the
    /// packed bytes were checked.
    fn unpack(&mut self, file: &FileEntry<'_>) -> Result<(), String> {
        let not_unpacked = |why: String| {
            format!("packed, and not unpacked: {why}; only the packed bytes were checked")
        };
        if file.depth >= self.limits.max_depth {
            return Err(not_unpacked(format!(
                "nested deeper than the limit of {} levels",
                self.limits.max_depth
            )));
        }
        self.component = Component::Unpacker;
        minehound_detect::fault::inject(Component::Unpacker.name(), file.data);
        let packed = upx::Packed::find(file.data).map_err(|err| match err {
            upx::UpxError::NotPacked => {
                not_unpacked("no UPX block structure (another packer, or UPX's removed)".into())
            }
            other => not_unpacked(other.to_string()),
        })?;
        // What it unpacks to is a file like any other, bounded by the file
        // size limit, and drawn, before any work and whatever comes of it,
        // from what archives of the layer may expand to and from the
        // memory budget.
        let limit = self.limits.max_file_size.min(self.nested_budget);
        if packed.size() > limit {
            return Err(not_unpacked(
                upx::UpxError::TooLarge {
                    size: packed.size(),
                    limit,
                }
                .to_string(),
            ));
        }
        self.nested_budget -= packed.size();
        let _reserved = self.limits.memory_budget.reserve(packed.size());
        let image = packed
            .unpack(limit)
            .map_err(|err| not_unpacked(err.to_string()))?;
        let path = join_nested(file.path, "upx-unpacked");
        self.nesting += 1;
        let checked = self.file(FileEntry {
            path: &path,
            mode: file.mode,
            size: image.len() as u64,
            data: &image,
            truncated: false,
            depth: file.depth + 1,
        });
        self.nesting -= 1;
        checked.map_err(|err| format!("unpacked, and not checked: {}", error_chain(&err)))
    }

    /// Checks one file, so that a panic (a parser, a decompressor, the rules
    /// engine) ends that file's check, not the layer's: the file is listed
    /// as failed.
    pub(crate) fn check_contained(&mut self, file: &FileEntry<'_>) {
        // A member of a nested archive hands the archive back to its reader.
        let outer = self.component;
        let (nesting, budget) = (self.nesting, self.nested_budget);
        let checked = catch_unwind(AssertUnwindSafe(|| self.check(file)));
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
    }
}

/// Whether the ELF detector found the file packed (UPX, or UPX with its
/// marks removed, or packed bytes of no known packer): worth unpacking.
fn is_packed(detections: &[Detection]) -> bool {
    detections
        .iter()
        .any(|detection| PACKER_RULES.contains(&detection.rule.as_str()))
}

/// Whether the checks would open the file (an archive, or a UPX-packed
/// ELF to unpack): its contents are read where the file was, since all that
/// a layer's files expand to draws on one budget, in layer order.
fn opens_where_read(file: &FileEntry<'_>) -> bool {
    if file.truncated {
        return false;
    }
    match classify(file.data) {
        FileKind::Archive => ArchiveFormat::sniff(file.data).is_some(),
        FileKind::Elf => upx::Packed::find(file.data).is_ok(),
        _ => false,
    }
}

impl FileChecker<'_, '_> {
    /// Counts a file; checks it when it is a member of a nested archive.
    /// Returns whether it is a file of the layer itself, still to check.
    fn enter(&mut self, file: &FileEntry<'_>) -> bool {
        self.scan.files += 1;
        minehound_detect::fault::inject(LAYER_READER, file.data);
        if self.nesting > 0 {
            self.check_contained(file);
            return false;
        }
        self.scan.paths.insert(file.path.to_string());
        true
    }
}

impl Visitor for FileChecker<'_, '_> {
    fn file(&mut self, file: FileEntry<'_>) -> Result<(), minehound_unpack::Error> {
        if self.enter(&file) {
            self.in_order(|me| me.check_contained(&file));
        }
        Ok(())
    }

    fn owned_file(
        &mut self,
        file: OwnedFile<'_>,
    ) -> Result<Option<FileBuffer>, minehound_unpack::Error> {
        if !self.enter(&file.entry()) {
            return Ok(Some(file.buffer));
        }
        let file = match self.sharing.as_deref_mut() {
            Some(sharing) if !opens_where_read(&file.entry()) => {
                match sharing.hand_off(self.next_place, file) {
                    Ok(()) => {
                        self.next_place += 1;
                        return Ok(None);
                    }
                    Err(file) => file,
                }
            }
            _ => file,
        };
        let entry = file.entry();
        self.in_order(|me| me.check_contained(&entry));
        Ok(Some(file.buffer))
    }

    fn skipped(&mut self, path: &str, size: u64, reason: &str) {
        self.scan.files += 1;
        if self.nesting > 0 {
            return self.skip(path, size, reason.to_string());
        }
        self.scan.paths.insert(path.to_string());
        self.in_order(|me| me.skip(path, size, reason.to_string()));
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
