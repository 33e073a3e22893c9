//! [`ImageSource`]: images from a store minehound does not know, such as a
//! registry's own blob store, given by manifest digest.

use std::io::Read;

use crate::{BlobLocation, BlobStore, Error, Image, PlatformChoice};

/// A content-addressed store of manifests and blobs that a registry (or any
/// embedder) implements over its own storage, so minehound reads images
/// straight from it.
///
/// Every method is called from worker threads, so a source must be `Send +
/// Sync`; each [`blob`](ImageSource::blob) call returns an independent reader.
/// minehound verifies every byte it reads against its digest, so a source
/// need not.
///
/// ```
/// use std::collections::HashMap;
/// use std::io::Read;
/// use minehound_oci::{Error, ImageSource};
///
/// /// Blobs held in memory, by digest.
/// struct Blobs(HashMap<String, Vec<u8>>);
///
/// impl ImageSource for Blobs {
///     fn name(&self) -> String {
///         "memory".into()
///     }
///     fn manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, Error> {
///         let bytes = self.0.get(digest).ok_or_else(|| Error::MissingBlob(digest.into()))?;
///         if bytes.len() as u64 > limit {
///             return Err(Error::TooLarge { what: digest.into(), limit });
///         }
///         Ok(bytes.clone())
///     }
///     fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
///         let bytes = self.0.get(digest).ok_or_else(|| Error::MissingBlob(digest.into()))?;
///         Ok(Box::new(&bytes[..]))
///     }
/// }
///
/// let source = Blobs(HashMap::new());
/// assert!(source.blob("sha256:00").is_err());
/// ```
pub trait ImageSource: Send + Sync {
    /// A name for messages, such as the store's path or URL.
    fn name(&self) -> String;

    /// The bytes of a manifest or index, refusing more than `limit` bytes
    /// ([`Error::TooLarge`]). A missing one is [`Error::MissingBlob`].
    fn manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, Error>;

    /// A reader over a blob (config or layer). A missing one is
    /// [`Error::MissingBlob`].
    fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error>;

    /// Whether the source itself guarantees that a blob's bytes match its
    /// digest (a registry that checked every upload and whose storage only
    /// it writes). When it does, a layer result the layer cache knows by
    /// digest is used without reading the blob; otherwise the blob is hashed
    /// first. Default: no.
    fn verifies_digests(&self) -> bool {
        false
    }

    /// The local file a blob is stored in, if the source keeps blobs in
    /// files: the layer cache then skips re-hashing a blob whose file has not
    /// changed since it last hashed clean. Default: none.
    fn blob_file(&self, _digest: &str) -> Option<crate::BlobFile> {
        None
    }
}

/// An [`ImageSource`] seen as a [`BlobStore`], so the shared resolution and
/// scanning code reads it like any other store.
pub struct SourceStore<'a> {
    source: &'a dyn ImageSource,
}

impl<'a> SourceStore<'a> {
    /// Wraps `source`.
    pub fn new(source: &'a dyn ImageSource) -> Self {
        SourceStore { source }
    }
}

impl std::fmt::Debug for SourceStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SourceStore")
            .field(&self.source.name())
            .finish()
    }
}

impl BlobStore for SourceStore<'_> {
    fn name(&self) -> String {
        self.source.name()
    }

    fn open(&self, location: &BlobLocation) -> Result<Box<dyn Read + Send + '_>, Error> {
        match location {
            BlobLocation::Digest(digest) => {
                crate::sha256_hex_of(digest)?;
                self.source.blob(digest)
            }
            BlobLocation::ArchivePath(path) => Err(Error::MissingBlob(path.clone())),
        }
    }

    fn read_member(&self, _path: &str, _limit: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }

    fn content_addressed(&self) -> bool {
        self.source.verifies_digests()
    }

    fn blob_file(&self, location: &BlobLocation) -> Option<crate::BlobFile> {
        match location {
            BlobLocation::Digest(digest) => self.source.blob_file(digest),
            BlobLocation::ArchivePath(_) => None,
        }
    }

    fn read_manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, Error> {
        crate::sha256_hex_of(digest)?;
        self.source.manifest(digest, limit)
    }
}

/// The images under the manifest or index `digest` of `source`, for
/// `platform`: an index yields one image per chosen platform. Manifests and
/// configs are verified against their digests.
pub fn images_from_source(
    source: &dyn ImageSource,
    digest: &str,
    platform: &PlatformChoice,
) -> Result<Vec<Image>, Error> {
    crate::resolve::images_from_root_manifest(&SourceStore::new(source), digest, platform)
}
