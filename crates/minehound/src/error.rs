/// Why a scan could not be completed. Any of these means "no verdict" (exit 2),
/// never "clean".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target could not be opened or its manifests are invalid.
    #[error("cannot open the image")]
    Source(#[from] minehound_oci::Error),
    /// `push` was given something that is not an image it can push.
    #[error("cannot push {target}: {reason}")]
    NotPushable {
        /// The source as given.
        target: String,
        /// Why.
        reason: String,
    },
    /// The signatures could not be loaded.
    #[error("cannot load signatures")]
    Signatures(#[from] minehound_detect::Error),
    /// A layer could not be read to its end.
    #[error("layer {index} ({digest}) could not be read")]
    Layer {
        /// Layer position, 0 = bottom.
        index: usize,
        /// Layer digest, or its location when it has none.
        digest: String,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A directory or file target could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The scan was cancelled through its [`CancelToken`](crate::CancelToken).
    #[error("the scan was cancelled")]
    Cancelled,
    /// [`Scanner::scan_layer`](crate::Scanner::scan_layer) was given a media
    /// type that is not a layer's.
    #[error(
        "{0:?} is not a layer media type (application/vnd.oci.image.layer.v1.tar[+gzip|+zstd] or application/vnd.docker.image.rootfs.diff.tar.gzip)"
    )]
    MediaType(String),
    /// A layer stream could not be read to its end.
    #[error("cannot scan the {media_type} layer stream")]
    LayerStream {
        /// Its media type.
        media_type: String,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// The worker pool could not be started.
    #[error("cannot start {jobs} worker threads")]
    Workers {
        /// Threads asked for.
        jobs: usize,
        /// Why.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
}

/// Why one layer blob failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The blob could not be opened.
    #[error("cannot open the blob")]
    Open(#[from] minehound_oci::Error),
    /// A layer from a piped archive could not be buffered for its worker.
    #[error("cannot buffer the layer in the temporary directory (TMPDIR)")]
    Spool(#[source] std::io::Error),
    /// Decompression or the tar walk failed.
    #[error("cannot unpack the layer")]
    Unpack(#[from] minehound_unpack::Error),
    /// The blob's bytes do not hash to the digest the manifest declares.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Declared digest.
        expected: String,
        /// Digest of the bytes read.
        actual: String,
    },
    /// The uncompressed tar does not hash to the config's diff_id.
    #[error("diff_id mismatch: config says {expected}, uncompressed layer is {actual}")]
    DiffIdMismatch {
        /// diff_id from the config.
        expected: String,
        /// Digest of the uncompressed bytes.
        actual: String,
    },
    /// The blob is not as long as the manifest says.
    #[error("blob size mismatch: manifest says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        /// Declared size.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// The scan was cancelled while this layer was read.
    #[error("cancelled")]
    Cancelled,
    /// The blob is in the archive but was not a readable layer.
    #[error("{0}")]
    Unreadable(String),
}
