//! What a verdict depends on besides the image: the engine and the
//! signatures. A registry stores it with each verdict and rescans when it
//! changes.

use crate::Scanner;

/// This engine's version (the `minehound` crate's). Every report carries it
/// as `tool.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The engine version and build, the signature set and the limits a
/// [`Scanner`] judges with: [`Scanner::version`].
///
/// Store [`key`](ScannerVersion::key) (or the whole value) with each
/// verdict. A verdict whose key differs from the running scanner's was
/// made by another engine, other signatures or other limits: scan the image
/// again (the layer cache makes a rescan with unchanged settings free).
///
/// The key names the build as well as the version, as the layer cache's
/// key does: a rebuilt executable (a fix, a dependency update, with the
/// version number unchanged) may judge differently, so each new build of
/// the program embedding minehound asks for a rescan, and finds no layer
/// in the cache. Compare [`engine`](ScannerVersion::engine),
/// [`signatures`](ScannerVersion::signatures) and
/// [`fingerprint`](ScannerVersion::fingerprint) instead to rescan only
/// on a new release or new signatures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ScannerVersion {
    /// The engine: [`VERSION`].
    pub engine: String,
    /// This build of the engine: the SHA-256 of the running executable,
    /// which changes with any change to its code or dependencies (empty if
    /// the executable cannot be read). The layer cache keys on it too.
    pub build: String,
    /// The signature set's version, as reports give it (`2026.11.27.1`,
    /// with `+custom` when user rules or hash lists were added).
    pub signatures: String,
    /// SHA-256 over the text of every rule and hash list in force: changes
    /// with any edit to any of them, bundled or added.
    pub fingerprint: String,
    /// The limits in force (file, layer and entry counts, nesting), which
    /// decide what is read in full.
    pub limits: String,
}

impl ScannerVersion {
    /// One string naming all of it, the build included, to store beside a
    /// verdict and compare: `minehound 0.1.0 build <sha256>; signatures
    /// 2026.11.27.1 <fingerprint>; limits …`.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for ScannerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "minehound {} build {}; signatures {} {}; limits {}",
            self.engine, self.build, self.signatures, self.fingerprint, self.limits
        )
    }
}

impl Scanner {
    /// What this scanner's verdicts depend on besides the image: the engine
    /// version and build, the signature set and its fingerprint, the
    /// limits. See [`ScannerVersion`]. The build is hashed once per process,
    /// on first use.
    ///
    /// ```
    /// use minehound::{ScannerBuilder, VERSION};
    ///
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let version = scanner.version();
    /// assert_eq!(version.engine, VERSION);
    /// assert!(version.key().contains(&version.build));
    /// assert_eq!(version.signatures, scanner.signatures().version());
    ///
    /// // A registry keeps the key with each verdict ...
    /// let stored_with_verdict = version.key();
    /// // ... and rescans when the scanner it runs now judges differently.
    /// let stricter = ScannerBuilder::new()
    ///     .jobs(1)
    ///     .limits(minehound::Limits { max_file_size: 1 << 30, ..Default::default() })
    ///     .build()?;
    /// assert_eq!(scanner.version().key(), stored_with_verdict);
    /// assert_ne!(stricter.version().key(), stored_with_verdict);
    /// # Ok::<(), minehound::Error>(())
    /// ```
    pub fn version(&self) -> ScannerVersion {
        let l = &self.limits;
        ScannerVersion {
            engine: VERSION.to_string(),
            build: build_id().to_string(),
            signatures: self.signatures.version(),
            fingerprint: self.signatures.fingerprint().to_string(),
            limits: format!(
                "file {} layer {} entries {} depth {}",
                l.max_file_size, l.max_layer_size, l.max_entries, l.max_depth
            ),
        }
    }
}

/// SHA-256 of the running executable, hashed once per process: changes with
/// any change to the code or its dependencies. Empty if the executable
/// cannot be read.
pub(crate) fn build_id() -> &'static str {
    BUILD.get_or_init(|| {
        current_exe()
            .and_then(|exe| hash_file(&exe))
            .unwrap_or_default()
    })
}

/// [`build_id`], taken from `cache`'s stamp of the executable when it has
/// one: hashing a large executable took most of a warm rescan's time.
pub(crate) fn build_id_cached(cache: &crate::LayerCache) -> &'static str {
    BUILD.get_or_init(|| {
        current_exe()
            .and_then(|exe| cache.file_digest(&exe, || hash_file(&exe)))
            .unwrap_or_default()
    })
}

static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn current_exe() -> Option<std::path::PathBuf> {
    std::env::current_exe().ok()
}

fn hash_file(path: &std::path::Path) -> Option<String> {
    std::fs::File::open(path)
        .and_then(|file| minehound_unpack::HashingReader::new(file).finish())
        .map(|(digest, _)| digest)
        .ok()
}

#[cfg(test)]
mod tests {
    use crate::ScannerBuilder;

    #[test]
    fn the_key_names_the_build_the_layer_cache_keys_on() {
        let dir = tempfile::tempdir().unwrap();
        let scanner = ScannerBuilder::new()
            .jobs(1)
            .cache(crate::LayerCache::open(dir.path()).unwrap())
            .build()
            .unwrap();
        let version = scanner.version();
        assert!(version.build.starts_with("sha256:"), "{}", version.build);
        assert!(version.key().contains(&version.build));
        assert!(scanner.cache_settings.contains(&version.build));
    }
}
