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
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::layer::LayerScan;

mod entry;
mod rules;
mod shared;
mod stamp;

use entry::{decode, encode};
pub use shared::SharedLayerStore;
pub(crate) use stamp::BlobStamp;

/// Subdirectory of the cache directory; a new entry format gets a new one.
const ENTRIES: &str = "layers-v1";
/// Subdirectory for stamps of local blob files already hashed.
const STAMPS: &str = "stamps-v1";
/// Subdirectory for compiled signature sets (see [`rules`]).
const RULES: &str = "rules-v1";
/// Subdirectory for stamps of executables already hashed (the build id).
const BUILDS: &str = "builds-v1";
/// How long the shared tier is left alone after it failed to answer.
const SHARED_REST: Duration = Duration::from_secs(30);
/// The longest a scan waits for a layer another machine is reading (its
/// lease keeps being renewed while it reads): past it, the layer is read here.
const SHARED_CLAIM_WAIT: Duration = Duration::from_secs(10 * 60);
/// How often a layer another machine is reading is looked for again.
const SHARED_CLAIM_POLL: Duration = Duration::from_millis(200);
/// A file changed more recently than this is not stamped.
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// A layer cache in a directory. Cheap to share.
#[derive(Debug)]
pub struct LayerCache {
    dir: PathBuf,
    stamps: PathBuf,
    rules: PathBuf,
    builds: PathBuf,
    /// Layers some scan in this process is reading now.
    in_flight: InFlight,
    /// The tier shared with other machines, if any.
    shared: Option<Arc<dyn SharedLayerStore>>,
    /// Until when the shared tier is left alone after it failed to answer:
    /// every layer waiting on a store that does not answer would add up to a
    /// failed job.
    shared_resting: Mutex<Option<std::time::Instant>>,
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
    /// The shared tier's claim, when this process holds it.
    shared: Option<&'c dyn SharedLayerStore>,
}

impl Drop for ScanClaim<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared {
            shared.release(&self.key.0);
        }
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
        let rules = dir.join(RULES);
        let builds = dir.join(BUILDS);
        let fail = |source| CacheError {
            path: dir.to_path_buf(),
            source,
        };
        create_private_dir(&entries).map_err(fail)?;
        create_private_dir(&stamps).map_err(fail)?;
        create_private_dir(&rules).map_err(fail)?;
        create_private_dir(&builds).map_err(fail)?;
        let dirs = [&entries, &stamps, &rules, &builds];
        for d in [dir].into_iter().chain(dirs.map(PathBuf::as_path)) {
            check_private(d).map_err(fail)?;
        }
        Ok(LayerCache {
            dir: entries,
            stamps,
            rules,
            builds,
            in_flight: InFlight::default(),
            shared: None,
            shared_resting: Mutex::new(None),
        })
    }

    /// Puts `store` behind this cache: entries missing here are looked up
    /// there (and kept here once found), new entries go to both, and a layer
    /// another machine is reading is waited for (see [`SharedLayerStore`]).
    pub fn shared(mut self, store: Arc<dyn SharedLayerStore>) -> Self {
        self.shared = Some(store);
        self
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
        self.get_local(key).or_else(|| self.get_shared(key))
    }

    /// The entry in this machine's directory.
    fn get_local(&self, key: &CacheKey) -> Option<LayerScan> {
        let path = self.entry_path(key);
        let scan = decode(&fs::read(&path).ok()?)?;
        if let Ok(file) = fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(scan)
    }

    /// The entry the shared tier holds for `key`, checked as a local one is,
    /// and kept locally so the next lookup stays on this machine.
    fn get_shared(&self, key: &CacheKey) -> Option<LayerScan> {
        let shared = self.shared_tier()?;
        let bytes = match shared.get(&key.0) {
            Ok(bytes) => bytes?,
            Err(e) => {
                self.shared_failed("cannot be read", &e);
                return None;
            }
        };
        let scan = decode(&bytes)?;
        let _ = self.put_bytes(key, &bytes);
        Some(scan)
    }

    /// The shared tier, unless it is resting after a failure.
    fn shared_tier(&self) -> Option<&dyn SharedLayerStore> {
        let shared = self.shared.as_deref()?;
        let mut resting = self
            .shared_resting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match *resting {
            Some(until) if std::time::Instant::now() < until => None,
            Some(_) => {
                *resting = None;
                Some(shared)
            }
            None => Some(shared),
        }
    }

    /// Notes that the shared tier failed: it is left alone for a while.
    fn shared_failed(&self, what: &str, error: &str) {
        tracing::warn!(error = %error, "the shared layer cache {what}; going on without it for {} s", SHARED_REST.as_secs());
        *self
            .shared_resting
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now() + SHARED_REST);
    }

    /// Adds the shared tier's claim to `claim`, waiting while another
    /// machine reads the layer; what that machine stored meanwhile is the
    /// answer.
    fn claim_shared<'c>(
        &'c self,
        mut claim: ScanClaim<'c>,
        cancelled: &impl Fn() -> bool,
    ) -> Claim<'c> {
        let Some(shared) = self.shared_tier() else {
            return Claim::Mine(claim);
        };
        let give_up = std::time::Instant::now() + SHARED_CLAIM_WAIT;
        loop {
            if let Some(scan) = self.get_shared(&claim.key) {
                return Claim::Cached(scan);
            }
            match shared.try_claim(&claim.key.0) {
                Ok(true) => {
                    claim.shared = Some(shared);
                    // The holder may have stored its result and let go
                    // between the lookup above and this claim.
                    if let Some(scan) = self.get_shared(&claim.key) {
                        return Claim::Cached(scan);
                    }
                    return Claim::Mine(claim);
                }
                Ok(false) => {}
                Err(e) => {
                    // Better read the layer again than wait on a store that
                    // does not answer.
                    self.shared_failed("cannot take a claim", &e);
                    return Claim::Mine(claim);
                }
            }
            if cancelled() {
                return Claim::Cancelled;
            }
            if std::time::Instant::now() > give_up {
                tracing::warn!(
                    "another machine has held a layer for too long; reading it here too"
                );
                return Claim::Mine(claim);
            }
            std::thread::sleep(SHARED_CLAIM_POLL);
        }
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
            shared: None,
        };
        // A scan that finished between the caller's lookup and now (the
        // shared tier is looked at by `claim_shared`).
        if let Some(scan) = self.get_local(key) {
            return Claim::Cached(scan);
        }
        self.claim_shared(claim, &cancelled)
    }

    /// How many entries (layer results, file stamps, compiled rules) the cache holds, and
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
        let tops = [
            (&self.dir, EntryKind::Layer),
            (&self.stamps, EntryKind::Stamp),
            (&self.rules, EntryKind::Rules),
            (&self.builds, EntryKind::Stamp),
        ];
        for (top, kind) in tops {
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
                            kind,
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
            if let Some(shared) = self.shared_tier()
                && let Err(e) = shared.put(&key.0, &bytes)
            {
                self.shared_failed("cannot store the layer's result", &e);
            }
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

/// A count of cache entries and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Layer results.
    pub layers: u64,
    /// Stamps of local files already hashed: layer blobs known to match
    /// their digests, the executable.
    pub stamps: u64,
    /// Compiled signature sets.
    pub rules: u64,
    /// Total size of them all.
    pub bytes: u64,
}

impl CacheUsage {
    fn add(&mut self, file: &CacheFile) {
        match file.kind {
            EntryKind::Layer => self.layers += 1,
            EntryKind::Stamp => self.stamps += 1,
            EntryKind::Rules => self.rules += 1,
        }
        self.bytes += file.bytes;
    }
}

#[derive(Clone, Copy)]
enum EntryKind {
    Layer,
    Stamp,
    Rules,
}

struct CacheFile {
    path: PathBuf,
    kind: EntryKind,
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

#[cfg(test)]
mod tests {
    use minehound_detect::{Detection, Severity};

    use super::*;
    use crate::layer::FileFinding;

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
