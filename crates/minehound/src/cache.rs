//! The layer cache: a layer's scan, kept by layer digest on disk, so a layer
//! seen once costs nothing the next time, in this process or any other sharing
//! the directory.
//!
//! An entry's key covers everything its verdict depends on: the layer's digest,
//! the signature set's fingerprint (every rule and hash list text), the engine
//! version and the limits. Entries carry their own SHA-256; one that does not
//! check out, or does not decode, is a miss: the layer is scanned again and the
//! entry rewritten. The cache can only save work, never change a verdict.
//!
//! Local blobs (layouts, archives) can be edited after they were scanned, so a
//! hit on one counts only once its bytes hash to the digest again, unless the
//! cache holds a stamp of the very file as it was hashed: device, inode, size,
//! modification and change times. The kernel sets the change time on every
//! write and nobody can set it back, so an unchanged stamp means unchanged
//! bytes (the same reasoning as git's index). Stamps of files changed in the
//! last seconds are not kept, since a write in the same clock tick would not
//! show.
//!
//! Each entry is one file, written aside and renamed into place, so any number
//! of processes can share a directory without locks and a crash leaves no
//! half-written entry. (An embedded B-tree store was tried first; a damaged file
//! made it panic, and a cache must never take the scanner down.)

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime};

use minehound_detect::{Detection, Severity};
use minehound_oci::BlobFile;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layer::{FileFinding, LayerScan, SkippedFile};

/// Subdirectory of the cache directory; a new entry format gets a new one.
const ENTRIES: &str = "layers-v1";
/// Subdirectory for stamps of local blob files already hashed.
const STAMPS: &str = "stamps-v1";
/// A file changed more recently than this is not stamped.
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// A layer cache in a directory. Cheap to share.
#[derive(Debug)]
pub struct LayerCache {
    dir: PathBuf,
    stamps: PathBuf,
    /// Layers some scan in this process is reading now.
    in_flight: InFlight,
}

/// Layers being scanned in this process, so that concurrent scans of images
/// sharing a layer (a service's jobs, say) read it once: the others wait for
/// the first and take its result from the cache.
#[derive(Debug, Default)]
struct InFlight {
    keys: Mutex<HashSet<CacheKey>>,
    released: Condvar,
}

/// What [`LayerCache::claim`] found.
pub(crate) enum Claim<'c> {
    /// Another scan stored the layer while this one waited.
    Cached(LayerScan),
    /// This caller scans the layer; others wait until the claim is dropped.
    Mine(ScanClaim<'c>),
    /// The scan was cancelled while waiting.
    Cancelled,
}

/// The right to scan one layer; dropping it lets waiting scans go on.
pub(crate) struct ScanClaim<'c> {
    in_flight: &'c InFlight,
    key: CacheKey,
}

impl Drop for ScanClaim<'_> {
    fn drop(&mut self) {
        let mut keys = self
            .in_flight
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.remove(&self.key);
        self.in_flight.released.notify_all();
    }
}

/// Why a cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the layer cache at {path}: {source}")]
pub struct CacheError {
    /// The cache directory.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

impl LayerCache {
    /// The default directory: `$XDG_CACHE_HOME/minehound`, else `~/.cache/minehound`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("minehound"))
    }

    /// Opens (or creates) the cache in `dir`, private to the user. A
    /// directory another user owns or may write is refused: whoever can write
    /// the cache decides the verdicts it serves.
    pub fn open(dir: &Path) -> Result<LayerCache, CacheError> {
        let entries = dir.join(ENTRIES);
        let stamps = dir.join(STAMPS);
        let fail = |source| CacheError {
            path: dir.to_path_buf(),
            source,
        };
        create_private_dir(&entries).map_err(fail)?;
        create_private_dir(&stamps).map_err(fail)?;
        for d in [dir, entries.as_path(), stamps.as_path()] {
            check_private(d).map_err(fail)?;
        }
        Ok(LayerCache {
            dir: entries,
            stamps,
            in_flight: InFlight::default(),
        })
    }

    /// The directory holding the entries.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, key: &CacheKey) -> PathBuf {
        fan_out(&self.dir, &key.0)
    }

    /// Whether the blob file was hashed to its digest before and has not
    /// changed since.
    pub(crate) fn blob_known(&self, stamp: &BlobStamp) -> bool {
        let path = fan_out(&self.stamps, &stamp.key);
        let known = fs::read(&path).is_ok_and(|held| held == stamp.digest.as_bytes());
        if known && let Ok(file) = fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        known
    }

    /// Notes that the blob file hashed to its digest, unless it changed too
    /// recently for its stamp to be trusted.
    pub(crate) fn remember_blob(&self, stamp: &BlobStamp) {
        if stamp.settled {
            let _ = write_atomically(&fan_out(&self.stamps, &stamp.key), stamp.digest.as_bytes());
        }
    }

    /// The scan stored under `key`, if there is a sound one. A hit marks the
    /// entry as used now, so pruning drops the least recently used first.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<LayerScan> {
        let path = self.entry_path(key);
        let scan = decode(&fs::read(&path).ok()?)?;
        if let Ok(file) = fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(scan)
    }

    /// Claims layer `key` for scanning. While another scan in this process
    /// holds it, waits (checking `cancelled` now and then); once released,
    /// its stored result is the answer, or, if it stored none (it failed or
    /// was cancelled), this caller gets the claim.
    pub(crate) fn claim(&self, key: &CacheKey, cancelled: impl Fn() -> bool) -> Claim<'_> {
        let mut keys = self
            .in_flight
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut waited = false;
        while keys.contains(key) {
            if cancelled() {
                return Claim::Cancelled;
            }
            waited = true;
            keys = self
                .in_flight
                .released
                .wait_timeout(keys, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if waited {
            drop(keys);
            if let Some(scan) = self.get(key) {
                return Claim::Cached(scan);
            }
            // The other scan stored nothing: claim it again, unless yet
            // another scan got there first.
            return self.claim(key, cancelled);
        }
        keys.insert(key.clone());
        drop(keys);
        let claim = ScanClaim {
            in_flight: &self.in_flight,
            key: key.clone(),
        };
        // A scan that finished between the caller's lookup and now.
        match self.get(key) {
            Some(scan) => Claim::Cached(scan),
            None => Claim::Mine(claim),
        }
    }

    /// How many entries (layer results and blob stamps) the cache holds, and
    /// their bytes.
    pub fn usage(&self) -> std::io::Result<CacheUsage> {
        let mut usage = CacheUsage::default();
        for file in self.files()? {
            usage.add(&file);
        }
        Ok(usage)
    }

    /// Removes entries unused for longer than `older_than`, then the least
    /// recently used until at most `max_bytes` remain. Safe while other
    /// processes use the cache: a removed entry is only a future miss.
    /// Returns what was removed.
    pub fn prune(
        &self,
        max_bytes: Option<u64>,
        older_than: Option<Duration>,
    ) -> std::io::Result<CacheUsage> {
        let mut files = self.files()?;
        // Newest first: whatever is left over at the end goes.
        files.sort_by_key(|file| std::cmp::Reverse(file.used));
        let oldest_kept = older_than.and_then(|age| SystemTime::now().checked_sub(age));
        let (mut kept, mut removed) = (0u64, CacheUsage::default());
        for file in files {
            let too_old = oldest_kept.is_some_and(|limit| file.used < limit);
            let too_big = max_bytes.is_some_and(|max| kept + file.bytes > max);
            if too_old || too_big {
                match fs::remove_file(&file.path) {
                    Ok(()) => removed.add(&file),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            } else {
                kept += file.bytes;
            }
        }
        Ok(removed)
    }

    /// Every file under the entry and stamp directories.
    fn files(&self) -> std::io::Result<Vec<CacheFile>> {
        let mut out = Vec::new();
        for (top, stamp) in [(&self.dir, false), (&self.stamps, true)] {
            for fan in fs::read_dir(top)? {
                let fan = fan?;
                if !fan.file_type()?.is_dir() {
                    continue;
                }
                for entry in fs::read_dir(fan.path())? {
                    let entry = entry?;
                    // Gone since listed: another process pruned it.
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_file() {
                        out.push(CacheFile {
                            path: entry.path(),
                            stamp,
                            bytes: meta.len(),
                            used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Stores `scan` under `key`, when it is complete (see
    /// [`LayerScan::complete`]). A failure to store costs only a future rescan.
    pub(crate) fn put(&self, key: &CacheKey, scan: &LayerScan) {
        if !scan.complete() {
            return;
        }
        if let Ok(bytes) = encode(scan) {
            let _ = self.put_bytes(key, &bytes);
        }
    }

    fn put_bytes(&self, key: &CacheKey, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.entry_path(key), bytes)
    }

    /// Overwrites the entry for `key` with `bytes` (tests of damaged entries).
    #[cfg(test)]
    pub(crate) fn put_raw(&self, key: &CacheKey, bytes: &[u8]) {
        self.put_bytes(key, bytes).unwrap();
    }
}

/// `dir/ab/cdef…`: a fan-out keeps directories small.
fn fan_out(dir: &Path, key: &[u8; 32]) -> PathBuf {
    let hex = hex::encode(key);
    dir.join(&hex[..2]).join(&hex[2..])
}

/// Writes `bytes` aside and renames them into place: readers see all or nothing.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().expect("entries sit in a fan-out directory");
    create_private_dir(parent)?;
    let mut staged = tempfile::NamedTempFile::new_in(parent)?;
    staged.write_all(bytes)?;
    staged.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A local blob file as it is now: what it is, how big, when last changed.
#[derive(Debug, Clone)]
pub(crate) struct BlobStamp {
    key: [u8; 32],
    digest: String,
    /// Changed long enough ago for the stamp to tell a later change.
    settled: bool,
}

impl BlobStamp {
    /// The stamp of the file holding blob `digest`; take it before reading.
    #[cfg(unix)]
    pub(crate) fn of(file: &BlobFile, digest: &str) -> Option<BlobStamp> {
        use std::os::unix::fs::MetadataExt;
        let path = file.path.canonicalize().ok()?;
        let meta = fs::metadata(&path).ok()?;
        let mut hash = Sha256::new();
        hash.update(b"minehound blob stamp v1\0");
        hash.update(path.as_os_str().as_encoded_bytes());
        hash.update([0]);
        let (offset, len) = file.range.unwrap_or((0, meta.size()));
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
        hash.update(digest.as_bytes());
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(meta.ctime().max(meta.mtime()).max(0) as u64, 0)
            + Duration::from_secs(1);
        let settled = SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= SETTLE_TIME);
        Some(BlobStamp {
            key: hash.finalize().into(),
            digest: digest.to_string(),
            settled,
        })
    }

    /// Without inode and change time there is no trustworthy stamp.
    #[cfg(not(unix))]
    pub(crate) fn of(_file: &BlobFile, _digest: &str) -> Option<BlobStamp> {
        None
    }
}

/// A count of cache entries and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Layer results.
    pub layers: u64,
    /// Stamps of local blob files known to match their digests.
    pub stamps: u64,
    /// Total size of both.
    pub bytes: u64,
}

impl CacheUsage {
    fn add(&mut self, file: &CacheFile) {
        if file.stamp {
            self.stamps += 1;
        } else {
            self.layers += 1;
        }
        self.bytes += file.bytes;
    }
}

struct CacheFile {
    path: PathBuf,
    stamp: bool,
    bytes: u64,
    /// Last written or hit.
    used: SystemTime,
}

/// What a layer's cached scan is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of layer `digest` scanned under `settings` (signatures, engine, limits).
    pub(crate) fn new(settings: &str, digest: &str) -> CacheKey {
        let mut hash = Sha256::new();
        hash.update(settings.as_bytes());
        hash.update([0]);
        hash.update(digest.as_bytes());
        CacheKey(hash.finalize().into())
    }
}

/// Fails unless `dir` belongs to this process's user and no one else may write it.
fn check_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(dir)?;
        // /proc/self belongs to the process's user.
        if let Ok(me) = fs::metadata("/proc/self")
            && me.uid() != meta.uid()
        {
            return Err(std::io::Error::other(format!(
                "{} belongs to another user",
                dir.display()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(std::io::Error::other(format!(
                "{} may be written by other users",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

/// Stored form: SHA-256 of the JSON, then the JSON.
fn encode(scan: &LayerScan) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec(&Stored::from(scan))?;
    let mut out = Sha256::digest(&json).to_vec();
    out.extend_from_slice(&json);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Option<LayerScan> {
    let (sum, json) = bytes.split_at_checked(32)?;
    if Sha256::digest(json).as_slice() != sum {
        return None;
    }
    serde_json::from_slice::<Stored>(json).ok()?.into_scan()
}

/// [`LayerScan`] as stored: its own serde shape, so the library's types stay
/// free to change without breaking old cache files (they just miss).
#[derive(Serialize, Deserialize)]
struct Stored {
    digest: String,
    diff_id: String,
    compressed_bytes: u64,
    uncompressed_bytes: u64,
    files: u64,
    files_scanned: u64,
    elf_files: u64,
    archives: u64,
    findings: Vec<StoredFinding>,
    skipped: Vec<(String, u64, String)>,
    whiteouts: Vec<String>,
    opaque_dirs: Vec<String>,
    paths: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredFinding {
    path: String,
    sha256: Option<String>,
    size: u64,
    detections: Vec<StoredDetection>,
}

#[derive(Serialize, Deserialize)]
struct StoredDetection {
    rule: String,
    detector: String,
    severity: Severity,
    family: Option<String>,
    description: String,
}

impl From<&LayerScan> for Stored {
    fn from(s: &LayerScan) -> Stored {
        let mut paths: Vec<String> = s.paths.iter().cloned().collect();
        paths.sort();
        Stored {
            digest: s.digest.clone(),
            diff_id: s.diff_id.clone(),
            compressed_bytes: s.compressed_bytes,
            uncompressed_bytes: s.uncompressed_bytes,
            files: s.files,
            files_scanned: s.files_scanned,
            elf_files: s.elf_files,
            archives: s.archives,
            findings: s
                .findings
                .iter()
                .map(|f| StoredFinding {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                    detections: f
                        .detections
                        .iter()
                        .map(|d| StoredDetection {
                            rule: d.rule.clone(),
                            detector: d.detector.to_string(),
                            severity: d.severity,
                            family: d.family.clone(),
                            description: d.description.clone(),
                        })
                        .collect(),
                })
                .collect(),
            skipped: s
                .skipped
                .iter()
                .map(|k| (k.path.clone(), k.size, k.reason.clone()))
                .collect(),
            whiteouts: s.whiteouts.clone(),
            opaque_dirs: s.opaque_dirs.clone(),
            paths,
        }
    }
}

impl Stored {
    /// `None` when an entry names a detector this build does not know.
    fn into_scan(self) -> Option<LayerScan> {
        let mut findings = Vec::with_capacity(self.findings.len());
        for f in self.findings {
            let mut detections = Vec::with_capacity(f.detections.len());
            for d in f.detections {
                detections.push(Detection {
                    rule: d.rule,
                    detector: minehound_detect::DETECTORS
                        .iter()
                        .find(|known| **known == d.detector)?,
                    severity: d.severity,
                    family: d.family,
                    description: d.description,
                });
            }
            findings.push(FileFinding {
                path: f.path,
                sha256: f.sha256,
                size: f.size,
                detections,
            });
        }
        Some(LayerScan {
            digest: self.digest,
            diff_id: self.diff_id,
            compressed_bytes: self.compressed_bytes,
            uncompressed_bytes: self.uncompressed_bytes,
            files: self.files,
            files_scanned: self.files_scanned,
            elf_files: self.elf_files,
            archives: self.archives,
            findings,
            skipped: self
                .skipped
                .into_iter()
                .map(|(path, size, reason)| SkippedFile {
                    path,
                    size,
                    reason,
                    // Failed scans are never stored.
                    failed: false,
                })
                .collect(),
            whiteouts: self.whiteouts,
            opaque_dirs: self.opaque_dirs,
            paths: self.paths.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LayerScan {
        LayerScan {
            digest: "sha256:aa".into(),
            diff_id: "sha256:bb".into(),
            files: 2,
            findings: vec![FileFinding {
                path: "/usr/bin/xmrig".into(),
                sha256: Some("cc".into()),
                size: 9,
                detections: vec![Detection {
                    rule: "MH-XMRIG-ELF".into(),
                    detector: "yara",
                    severity: Severity::Critical,
                    family: Some("xmrig".into()),
                    description: "XMRig".into(),
                }],
            }],
            paths: ["/usr/bin/xmrig".to_string()].into_iter().collect(),
            ..LayerScan::default()
        }
    }

    #[test]
    fn entries_round_trip_and_corrupt_ones_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(dir.path()).unwrap();
        let key = CacheKey::new("settings", "sha256:aa");
        assert!(cache.get(&key).is_none());
        cache.put(&key, &sample());
        let back = cache.get(&key).unwrap();
        assert_eq!(back.findings, sample().findings);
        assert_eq!(back.paths, sample().paths);
        assert!(
            cache
                .get(&CacheKey::new("other settings", "sha256:aa"))
                .is_none()
        );

        let mut bytes = encode(&sample()).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        cache.put_raw(&key, &bytes);
        assert!(cache.get(&key).is_none(), "a flipped bit is a miss");
        cache.put_raw(&key, b"short");
        assert!(cache.get(&key).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let err = LayerCache::open(&shared).unwrap_err();
        assert!(err.to_string().contains("other users"), "{err}");
    }

    #[test]
    fn the_cache_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(&dir.path().join("c")).unwrap();
        let key = CacheKey::new("s", "d");
        cache.put(&key, &sample());
        assert!(cache.get(&key).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [
                dir.path().join("c"),
                cache.path().to_path_buf(),
                cache.entry_path(&key),
            ] {
                let mode = fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is private", path.display());
            }
        }
    }
}
