//! Scanning what is not an image: a root filesystem directory or one file.
//! Both become one pseudo-layer so the report reads the same.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minehound_oci::{BlobLocation, Image, Layer};
use minehound_unpack::{FileEntry, Visitor};

use crate::file_check::{FileChecker, error_chain};
use crate::layer::{FileFinding, LayerScan, SkippedFile};
use crate::merge::ScannedImage;
use crate::{Error, Scanner};

/// Scans every regular file under `root`, in parallel. Symlinks are recorded,
/// never followed, so a scan cannot leave the directory. A file with several
/// names (hard links) is read once and reported under each name: ten thousand
/// links to one large file must not cost ten thousand reads.
pub(crate) fn scan_dir(scanner: &Scanner, root: &Path) -> Result<ScannedImage, Error> {
    let mut files = Vec::new();
    let mut others = Vec::new();
    // (device, inode) of multiply linked files -> the first name met.
    let mut linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut aliases = Vec::new();
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
                match entry.metadata().ok().and_then(|meta| shared_inode(&meta)) {
                    Some(inode) => match linked.entry(inode) {
                        Entry::Occupied(first) => aliases.push((entry.path(), first.get().clone())),
                        Entry::Vacant(slot) => {
                            slot.insert(entry.path());
                            files.push(entry.path());
                        }
                    },
                    None => files.push(entry.path()),
                }
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
        let read = check_path(
            &mut checker,
            path,
            &report_path(root, path),
            limits.max_file_size,
        );
        scan.uncompressed_bytes = read;
        scan
    });
    let mut scan = LayerScan::default();
    for (alias, first) in &aliases {
        let index = files.binary_search(first).expect("first names are scanned");
        let (from, to) = (report_path(root, first), report_path(root, alias));
        scan.absorb(renamed(&parts[index], &from, &to));
    }
    for part in parts {
        scan.absorb(part);
    }
    scan.paths
        .extend(others.iter().map(|p| report_path(root, p)));
    Ok(pseudo_image(root, scan))
}

/// `(device, inode)` of a file with more than one name.
#[cfg(unix)]
fn shared_inode(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn shared_inode(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The scan of file `from` as the scan of its hard link `to`.
fn renamed(part: &LayerScan, from: &str, to: &str) -> LayerScan {
    // Nested members read `from!/…`: only the leading name changes.
    let rename = |path: &str| match path.strip_prefix(from) {
        Some(rest) => format!("{to}{rest}"),
        None => path.to_string(),
    };
    LayerScan {
        findings: part
            .findings
            .iter()
            .map(|f| FileFinding {
                path: rename(&f.path),
                ..f.clone()
            })
            .collect(),
        skipped: part
            .skipped
            .iter()
            .map(|s| SkippedFile {
                path: rename(&s.path),
                ..s.clone()
            })
            .collect(),
        paths: part.paths.iter().map(|p| rename(p)).collect(),
        ..part.clone()
    }
}

/// Scans one file (which may be an archive of files).
pub(crate) fn scan_file(scanner: &Scanner, path: &Path) -> Result<ScannedImage, Error> {
    let limits = scanner.limits();
    let mut parts = scanner.par_map(&[path.to_path_buf()], |detector, path| {
        let mut scan = LayerScan::default();
        let mut checker = FileChecker::new(detector, limits, &mut scan);
        let read = check_path(
            &mut checker,
            path,
            &path.display().to_string(),
            limits.max_file_size,
        );
        scan.uncompressed_bytes = read;
        scan
    });
    let scan = parts.pop().unwrap_or_default();
    Ok(pseudo_image(path, scan))
}

/// Reads a file (up to the size limit) and hands it to the checker; a file that
/// cannot be read is listed as skipped, never dropped. Returns the bytes read:
/// a directory's "uncompressed" bytes in the report.
fn check_path(checker: &mut FileChecker<'_, '_>, path: &Path, shown: &str, max: u64) -> u64 {
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
                checker.skipped(shown, size, &error_chain(&err));
            }
            data.len() as u64
        }
        Err(err) => {
            checker.skipped(shown, 0, &format!("cannot read: {err}"));
            0
        }
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
