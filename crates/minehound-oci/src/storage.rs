//! A CNCF Distribution registry's filesystem storage, read directly: every
//! repository, tag and (on request) untagged manifest, with blobs read from
//! `blobs/sha256/<ab>/<hex>/data`. The layout is Distribution's
//! (`registry/storage/paths.go`):
//!
//! ```text
//! docker/registry/v2/blobs/sha256/<ab>/<hex>/data
//! docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//! docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link
//! docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link
//! ```
//!
//! The tree is read, never written. A link that cannot be read or does not
//! hold a digest, and a manifest that is not a container image (a Helm chart,
//! a signature), is listed as skipped with its reason.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::docs::{ManifestKind, parse_manifest};
use crate::store::read_capped;
use crate::{Error, ImageSource, sha256_hex_of};

/// Largest manifest read while listing.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// How deep repository names nest (`a/b/c/...`).
const MAX_NAME_DEPTH: usize = 32;
/// How deep indexes nest when following them for reachability.
const MAX_INDEX_DEPTH: usize = 4;

/// A Distribution filesystem storage tree.
#[derive(Debug, Clone)]
pub struct DistributionStorage {
    /// The `docker/registry/v2` directory.
    v2: PathBuf,
}

/// A manifest (or index) the storage holds, to be scanned as one image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredManifest {
    /// The repository, such as `team/app`.
    pub repository: String,
    /// The tag, or `None` for an untagged manifest.
    pub tag: Option<String>,
    /// The manifest or index digest.
    pub digest: String,
}

impl StoredManifest {
    /// The manifest `digest` of `repository`, under `tag` if it has one.
    pub fn new(
        repository: impl Into<String>,
        tag: Option<String>,
        digest: impl Into<String>,
    ) -> Self {
        StoredManifest {
            repository: repository.into(),
            tag,
            digest: digest.into(),
        }
    }

    /// `repository:tag`, or `repository@digest` when untagged.
    pub fn reference(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.repository),
            None => format!("{}@{}", self.repository, self.digest),
        }
    }
}

/// Something in the storage that is not scanned, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedManifest {
    /// What: a reference, or a path in the tree.
    pub what: String,
    /// Why.
    pub reason: String,
}

/// What a storage tree holds.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StorageListing {
    /// Repositories found.
    pub repositories: Vec<String>,
    /// Manifests to scan: every tag, then (if asked) untagged manifests.
    pub manifests: Vec<StoredManifest>,
    /// What was passed over, with reasons.
    pub skipped: Vec<SkippedManifest>,
}

impl DistributionStorage {
    /// The storage at `path`: Distribution's `rootdirectory` (holding
    /// `docker/registry/v2`) or the `v2` directory itself.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let candidates = [path.join("docker/registry/v2"), path.to_path_buf()];
        for v2 in candidates {
            if v2.join("repositories").is_dir() || v2.join("blobs").is_dir() {
                return Ok(DistributionStorage { v2 });
            }
        }
        Err(Error::InvalidTarget {
            target: path.display().to_string(),
            reason:
                "not a Distribution storage directory (no docker/registry/v2/repositories or blobs)"
                    .into(),
        })
    }

    /// The `docker/registry/v2` directory.
    pub fn path(&self) -> &Path {
        &self.v2
    }

    /// Every repository, sorted, with its tags and (if `untagged`) the
    /// manifests no tag reaches. A manifest reached through a tagged index
    /// (a platform manifest, an attestation) counts as tagged.
    pub fn list(&self, untagged: bool) -> Result<StorageListing, Error> {
        let mut listing = StorageListing::default();
        let root = self.v2.join("repositories");
        if root.is_dir() {
            self.find_repositories(&root, String::new(), 0, &mut listing)?;
        }
        listing.repositories.sort();
        for repository in listing.repositories.clone() {
            self.list_repository(&repository, untagged, &mut listing)?;
        }
        Ok(listing)
    }

    fn find_repositories(
        &self,
        dir: &Path,
        name: String,
        depth: usize,
        listing: &mut StorageListing,
    ) -> Result<(), Error> {
        if depth > MAX_NAME_DEPTH {
            listing.skipped.push(SkippedManifest {
                what: dir.display().to_string(),
                reason: format!("repository names nest deeper than {MAX_NAME_DEPTH} levels"),
            });
            return Ok(());
        }
        if dir.join("_manifests").is_dir() {
            listing.repositories.push(name.clone());
        }
        for (child, is_dir) in read_dir_sorted(dir)? {
            // `_manifests`, `_layers`, `_uploads` belong to the repository;
            // symlinked directories are not followed.
            if is_dir && !child.starts_with('_') {
                let child_name = if name.is_empty() {
                    child.clone()
                } else {
                    format!("{name}/{child}")
                };
                self.find_repositories(&dir.join(&child), child_name, depth + 1, listing)?;
            }
        }
        Ok(())
    }

    fn list_repository(
        &self,
        repository: &str,
        untagged: bool,
        listing: &mut StorageListing,
    ) -> Result<(), Error> {
        let manifests = self
            .v2
            .join("repositories")
            .join(repository)
            .join("_manifests");
        let mut reached = HashSet::new();
        let tags = manifests.join("tags");
        let tag_names = if tags.is_dir() {
            read_dir_sorted(&tags)?
        } else {
            Vec::new()
        };
        for (tag, _) in tag_names {
            let link = tags.join(&tag).join("current/link");
            let what = format!("{repository}:{tag}");
            match read_link(&link) {
                Ok(digest) => {
                    self.reach(&digest, 0, &mut reached);
                    self.add(
                        StoredManifest {
                            repository: repository.to_string(),
                            tag: Some(tag),
                            digest,
                        },
                        listing,
                    );
                }
                Err(reason) => listing.skipped.push(SkippedManifest { what, reason }),
            }
        }
        if !untagged {
            return Ok(());
        }
        let revisions = manifests.join("revisions/sha256");
        if !revisions.is_dir() {
            return Ok(());
        }
        let mut loose = Vec::new();
        for (hex, _) in read_dir_sorted(&revisions)? {
            let link = revisions.join(&hex).join("link");
            match read_link(&link) {
                Ok(digest) if !reached.contains(&digest) => loose.push(digest),
                Ok(_) => {}
                Err(reason) => listing.skipped.push(SkippedManifest {
                    what: format!("{repository}@sha256:{hex}"),
                    reason,
                }),
            }
        }
        // An untagged index covers its platform manifests: take indexes first,
        // then what none of them reached.
        let (indexes, plain): (Vec<_>, Vec<_>) = loose.into_iter().partition(|d| self.is_index(d));
        for digest in indexes.into_iter().chain(plain) {
            if reached.contains(&digest) {
                continue;
            }
            self.reach(&digest, 0, &mut reached);
            self.add(
                StoredManifest {
                    repository: repository.to_string(),
                    tag: None,
                    digest,
                },
                listing,
            );
        }
        Ok(())
    }

    /// Adds a manifest to scan, or skips it when it is not a container image.
    fn add(&self, manifest: StoredManifest, listing: &mut StorageListing) {
        match self.not_an_image(&manifest.digest) {
            Some(reason) => listing.skipped.push(SkippedManifest {
                what: manifest.reference(),
                reason,
            }),
            None => listing.manifests.push(manifest),
        }
    }

    /// Why a manifest is not a container image, if it is not: an artifact
    /// whose config is not an image config. Unreadable manifests are left to
    /// the scan, which reports them as failed.
    fn not_an_image(&self, digest: &str) -> Option<String> {
        let bytes = self.manifest(digest, MAX_MANIFEST_BYTES).ok()?;
        match parse_manifest(digest, &bytes).ok()? {
            ManifestKind::Manifest(m) => {
                let media_type = m.config.media_type?;
                let image =
                    media_type.contains("image.config") || media_type.contains("container.image");
                (!image).then(|| format!("not a container image (config media type {media_type})"))
            }
            ManifestKind::Index(_) => None,
        }
    }

    fn is_index(&self, digest: &str) -> bool {
        self.manifest(digest, MAX_MANIFEST_BYTES)
            .ok()
            .and_then(|bytes| parse_manifest(digest, &bytes).ok())
            .is_some_and(|kind| matches!(kind, ManifestKind::Index(_)))
    }

    /// Marks `digest` and everything an index under it names as reached.
    fn reach(&self, digest: &str, depth: usize, reached: &mut HashSet<String>) {
        if !reached.insert(digest.to_string()) || depth > MAX_INDEX_DEPTH {
            return;
        }
        let Ok(bytes) = self.manifest(digest, MAX_MANIFEST_BYTES) else {
            return;
        };
        if let Ok(ManifestKind::Index(index)) = parse_manifest(digest, &bytes) {
            for child in index.manifests {
                self.reach(&child.digest, depth + 1, reached);
            }
        }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        let hex = sha256_hex_of(digest)?;
        Ok(self
            .v2
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"))
    }

    fn open_blob(&self, digest: &str) -> Result<File, Error> {
        let path = self.blob_path(digest)?;
        let opened = fs::metadata(&path).and_then(|meta| {
            // Never block on a FIFO or read a device planted in the tree.
            if meta.is_file() {
                File::open(&path)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a regular file",
                ))
            }
        });
        match opened {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::MissingBlob(digest.to_string()))
            }
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

impl ImageSource for DistributionStorage {
    fn name(&self) -> String {
        self.v2.display().to_string()
    }

    fn manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, Error> {
        read_capped(self.open_blob(digest)?, limit, digest, &self.name())
    }

    fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
        Ok(Box::new(self.open_blob(digest)?))
    }

    fn blob_file(&self, digest: &str) -> Option<crate::BlobFile> {
        Some(crate::BlobFile {
            path: self.blob_path(digest).ok()?,
            range: None,
        })
    }
}

/// Names in `dir`, sorted, each with whether it is a directory (not
/// following symlinks).
fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, bool)>, Error> {
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let is_dir = entry.file_type().map_err(io_err)?.is_dir();
        out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

/// The digest a link file holds, or why it holds none.
fn read_link(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(256).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let digest = text.trim().to_string();
    sha256_hex_of(&digest).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn bad_links_and_missing_blobs_are_reasons_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir
            .path()
            .join("docker/registry/v2/repositories/team/app/_manifests");
        write(&repo.join("tags/broken/current/link"), "../../etc/passwd");
        let digest = format!("sha256:{}", "a".repeat(64));
        write(&repo.join("tags/gone/current/link"), &digest);
        let storage = DistributionStorage::open(dir.path()).unwrap();
        let listing = storage.list(true).unwrap();
        assert_eq!(listing.repositories, ["team/app"]);
        assert_eq!(listing.skipped.len(), 1, "{:?}", listing.skipped);
        assert_eq!(listing.skipped[0].what, "team/app:broken");
        // A tag whose manifest was garbage-collected is left to the scan.
        assert_eq!(listing.manifests[0].reference(), "team/app:gone");
        assert!(matches!(
            storage.blob(&digest).err(),
            Some(Error::MissingBlob(_))
        ));
        assert!(DistributionStorage::open(&dir.path().join("nothing")).is_err());
    }
}
