//! Stamps of local files: what a file is and when it last changed, so a file
//! hashed once need not be hashed again while unchanged: a blob known to match
//! its digest, or the running executable (whose SHA-256 keys the cache).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use minehound_oci::BlobFile;
use sha2::{Digest, Sha256};

use super::{LayerCache, SETTLE_TIME, fan_out, write_atomically};

/// A local blob file as it is now: what it is, how big, when last changed.
#[derive(Debug, Clone)]
pub(crate) struct BlobStamp {
    pub(super) key: [u8; 32],
    pub(super) digest: String,
    /// Changed long enough ago for the stamp to tell a later change.
    pub(super) settled: bool,
}

impl BlobStamp {
    /// The stamp of the file holding blob `digest`; take it before reading.
    pub(crate) fn of(file: &BlobFile, digest: &str) -> Option<BlobStamp> {
        let (mut hash, settled) = identity(b"minehound blob stamp v1\0", &file.path, file.range)?;
        hash.update(digest.as_bytes());
        Some(BlobStamp {
            key: hash.finalize().into(),
            digest: digest.to_string(),
            settled,
        })
    }
}

impl LayerCache {
    /// The SHA-256 (`sha256:…`) of the file at `path`, taken from its stamp
    /// when the file was hashed before and has not changed since; else
    /// `hash` computes it, and a settled file's stamp keeps it. The running
    /// executable keys the cache, and hashing a large one cost a warm
    /// rescan most of its time.
    pub(crate) fn file_digest(
        &self,
        path: &Path,
        hash: impl FnOnce() -> Option<String>,
    ) -> Option<String> {
        let stamp = identity(b"minehound file digest stamp v1\0", path, None)
            .map(|(hash, settled)| (fan_out(&self.builds, &hash.finalize().into()), settled));
        if let Some((held, _)) = &stamp
            && let Ok(digest) = fs::read_to_string(held)
            && digest.starts_with("sha256:")
        {
            // Marked used, so pruning keeps the stamp of a binary in use.
            if let Ok(file) = fs::File::options().write(true).open(held) {
                let _ = file.set_modified(SystemTime::now());
            }
            return Some(digest);
        }
        let digest = hash()?;
        if let Some((held, true)) = &stamp {
            let _ = write_atomically(held, digest.as_bytes());
        }
        Some(digest)
    }
}

/// A hash over what a file is now (its canonical path, device, inode, size,
/// modification and change times, and the byte range read), to go on with
/// what the stamp is for; and whether the file changed long enough ago for a
/// later change to show. The kernel sets the change time on every write and
/// nobody can set it back.
#[cfg(unix)]
fn identity(kind: &[u8], path: &Path, range: Option<(u64, u64)>) -> Option<(Sha256, bool)> {
    use std::os::unix::fs::MetadataExt;
    let path = path.canonicalize().ok()?;
    let meta = fs::metadata(&path).ok()?;
    let mut hash = Sha256::new();
    hash.update(kind);
    hash.update(path.as_os_str().as_encoded_bytes());
    hash.update([0]);
    let (offset, len) = range.unwrap_or((0, meta.size()));
    let numbers = [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
        offset,
        len,
    ];
    for n in numbers {
        hash.update(n.to_le_bytes());
    }
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(meta.ctime().max(meta.mtime()).max(0) as u64, 0)
        + Duration::from_secs(1);
    let settled = SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age >= SETTLE_TIME);
    Some((hash, settled))
}

/// Without inode and change time there is no trustworthy stamp.
#[cfg(not(unix))]
fn identity(_kind: &[u8], _path: &Path, _range: Option<(u64, u64)>) -> Option<(Sha256, bool)> {
    None
}
