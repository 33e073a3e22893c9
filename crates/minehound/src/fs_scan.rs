//! Scanning what is not an image: a root filesystem directory or one file.
//! Both become one pseudo-layer so the report reads the same.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minehound_oci::{BlobLocation, Image, Layer};
use minehound_unpack::{FileEntry, Visitor};

use crate::layer::{FileChecker, LayerScan};
use crate::merge::ScannedImage;
use crate::{Error, Scanner};

/// Scans every regular file under `root`, in parallel. Symlinks are recorded,
/// never followed, so a scan cannot leave the directory.
pub(crate) fn scan_dir(scanner: &Scanner, root: &Path) -> Result<ScannedImage, Error> {
    let mut files = Vec::new();
    let mut others = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let kind = entry.file_type().map_err(|source| Error::Io {
                path: entry.path(),
                source,
            })?;
            if kind.is_dir() {
                stack.push(entry.path());
                others.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            } else {
                others.push(entry.path());
            }
        }
    }
    files.sort();
    let limits = scanner.limits();
    let parts = scanner.par_map(&files, |detector, path| {
        let mut scan = LayerScan::default();
        let mut checker = FileChecker::new(detector, limits, &mut scan);
        check_path(
            &mut checker,
            path,
            &report_path(root, path),
            limits.max_file_size,
        );
        scan
    });
    let mut scan = LayerScan::default();
    for part in parts {
        scan.absorb(part);
    }
    scan.paths
        .extend(others.iter().map(|p| report_path(root, p)));
    Ok(pseudo_image(root, scan))
}

/// Scans one file (which may be an archive of files).
pub(crate) fn scan_file(scanner: &Scanner, path: &Path) -> Result<ScannedImage, Error> {
    let limits = scanner.limits();
    let mut parts = scanner.par_map(&[path.to_path_buf()], |detector, path| {
        let mut scan = LayerScan::default();
        let mut checker = FileChecker::new(detector, limits, &mut scan);
        check_path(
            &mut checker,
            path,
            &path.display().to_string(),
            limits.max_file_size,
        );
        scan
    });
    let scan = parts.pop().unwrap_or_default();
    Ok(pseudo_image(path, scan))
}

/// Reads a file (up to the size limit) and hands it to the checker; a file that
/// cannot be read is listed as skipped, never dropped.
fn check_path(checker: &mut FileChecker<'_, '_>, path: &Path, shown: &str, max: u64) {
    let result = File::open(path).and_then(|file| {
        let size = file.metadata()?.len();
        let mut data = Vec::new();
        file.take(max).read_to_end(&mut data)?;
        Ok((size, data))
    });
    match result {
        Ok((size, data)) => {
            let outcome = checker.file(FileEntry {
                path: shown,
                mode: 0,
                size,
                truncated: size > data.len() as u64,
                data: &data,
                depth: 0,
            });
            if let Err(err) = outcome {
                checker.skipped(shown, size, &crate::layer::error_chain(&err));
            }
        }
        Err(err) => checker.skipped(shown, 0, &format!("cannot read: {err}")),
    }
}

/// `/usr/bin/x` for `ROOT/usr/bin/x`.
fn report_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    format!("/{}", rel.display())
}

fn pseudo_image(path: &Path, mut scan: LayerScan) -> ScannedImage {
    scan.compressed_bytes = 0;
    let scan = Arc::new(scan);
    ScannedImage {
        image: Image {
            reference: None,
            manifest_digest: None,
            config_digest: None,
            platform: None,
            config: Vec::new(),
            process: Default::default(),
            layers: vec![Layer {
                index: 0,
                location: BlobLocation::ArchivePath(PathBuf::from(path).display().to_string()),
                digest: None,
                diff_id: None,
                media_type: None,
                size: None,
                created_by: None,
            }],
        },
        scans: vec![scan],
    }
}
