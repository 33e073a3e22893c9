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
    /// [`Scanner::scan_layer`](crate::Scanner::scan_layer) was given the
    /// media type of a document (a manifest, index or config: JSON), not of
    /// a layer. Unknown and generic media types are read by their first
    /// bytes instead (see [`is_layer_media_type`](crate::is_layer_media_type)).
    #[error("{0:?} is the media type of a document, not of a layer")]
    MediaType(String),
    /// A [`LayerRequest`](crate::LayerRequest) named a digest that is not
    /// `sha256:` and 64 hex digits. Nothing was read.
    #[error("invalid layer digest {digest:?}: expected sha256: and 64 hex digits")]
    InvalidDigest {
        /// The digest as given.
        digest: String,
    },
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
    /// A component panicked outside any one file's or layer's check (the
    /// text rules on an image config): the scan has no verdict. The process
    /// goes on.
    #[error("internal error in the {component} while checking {what}: {message}")]
    Internal {
        /// What panicked.
        component: &'static str,
        /// What it was checking.
        what: &'static str,
        /// What the panic said.
        message: String,
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
    /// A component panicked while reading the layer (outside any one
    /// file's check, which contains its own panics): the layer has no
    /// verdict. The process goes on.
    #[error("internal error in the {component}: {message}")]
    Internal {
        /// What panicked.
        component: &'static str,
        /// What the panic said.
        message: String,
    },
    /// The blob is in the archive but was not a readable layer.
    #[error("{0}")]
    Unreadable(String),
    /// The failure an earlier image sharing this layer met, retold: the
    /// layer was read once.
    #[error("{message}")]
    Again {
        /// The first failure's kind.
        kind: ErrorKind,
        /// The first failure with its causes.
        message: String,
    },
}

/// What failed, for a caller that acts on it: reject the upload, retry
/// later, or page whoever runs the scanner. [`Error::kind`] and
/// [`LayerError::kind`] give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is bad: corrupt or truncated compression or tar, bytes that
    /// do not match their digest or size, an invalid or inconsistent
    /// manifest, a blob the manifest names but the store lacks, a layer past
    /// the limits, a document given as a layer. Scanning it again fails
    /// again; a registry can refuse it.
    Input,
    /// The bytes could not be had: the store's or a registry's I/O failed,
    /// credentials could not be read. Retrying may succeed.
    Io,
    /// The engine failed, not the input: the signatures could not be loaded
    /// (a missing or broken rules file), threads or temporary files could not
    /// be had. Fix the scanner's setup; the input may well be fine.
    Engine,
    /// The scan was cancelled.
    Cancelled,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Input => "input",
            ErrorKind::Io => "io",
            ErrorKind::Engine => "engine",
            ErrorKind::Cancelled => "cancelled",
        })
    }
}

impl Error {
    /// Whether the input, the I/O or the engine failed (or the scan was
    /// cancelled).
    ///
    /// ```
    /// use minehound::{ErrorKind, ScannerBuilder};
    ///
    /// let missing = ScannerBuilder::new().rules("/no/such/rules.yar").build().unwrap_err();
    /// assert_eq!(missing.kind(), ErrorKind::Engine);
    ///
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let corrupt = [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef];
    /// let err = scanner.scan_layer(&corrupt[..], "application/octet-stream").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Input);
    /// # Ok::<(), minehound::Error>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Source(err) => source_kind(err),
            Error::NotPushable { .. } | Error::MediaType(_) | Error::InvalidDigest { .. } => {
                ErrorKind::Input
            }
            Error::Signatures(_) => ErrorKind::Engine,
            Error::Layer { source, .. } | Error::LayerStream { source, .. } => source.kind(),
            Error::Io { .. } => ErrorKind::Io,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Workers { .. } | Error::Internal { .. } => ErrorKind::Engine,
        }
    }

    /// The error with every cause, on one line: `a: b: c`. `Display` gives
    /// only the first, as is usual for errors with a
    /// [`source`](std::error::Error::source).
    ///
    /// ```
    /// let err = minehound::ScannerBuilder::new().rules("/no/such/rules.yar").build().unwrap_err();
    /// assert_eq!(err.to_string(), "cannot load signatures");
    /// assert!(err.chain().to_string().starts_with("cannot load signatures: cannot read /no/such/rules.yar: "));
    /// ```
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }
}

impl LayerError {
    /// Whether the input, the I/O or the engine failed, as [`Error::kind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            LayerError::Open(err) => source_kind(err),
            LayerError::Spool(_) => ErrorKind::Engine,
            LayerError::Unpack(err) => unpack_kind(err),
            LayerError::DigestMismatch { .. }
            | LayerError::DiffIdMismatch { .. }
            | LayerError::SizeMismatch { .. }
            | LayerError::Unreadable(_) => ErrorKind::Input,
            LayerError::Cancelled => ErrorKind::Cancelled,
            LayerError::Internal { .. } => ErrorKind::Engine,
            LayerError::Again { kind, .. } => *kind,
        }
    }
}

/// An error and its causes, displayed on one line; see [`Error::chain`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

fn source_kind(err: &minehound_oci::Error) -> ErrorKind {
    use minehound_oci::Error as E;
    match err {
        E::Io { source, .. } if is_cancelled(source) => ErrorKind::Cancelled,
        E::Io { .. } | E::Registry { .. } | E::Credentials { .. } => ErrorKind::Io,
        E::InvalidTarget { .. }
        | E::Json { .. }
        | E::InvalidDigest(_)
        | E::MissingBlob(_)
        | E::DigestMismatch { .. }
        | E::SizeMismatch { .. }
        | E::TooLarge { .. }
        | E::NoImage(_)
        | E::Ambiguous { .. }
        | E::NoSuchReference { .. }
        | E::NoMatchingPlatform { .. }
        | E::Inconsistent(_)
        | E::IndexTooDeep(_) => ErrorKind::Input,
        // Variants added later: retrying is the safe default.
        _ => ErrorKind::Io,
    }
}

/// A layer's bytes could not be walked: the data's fault, unless the reader
/// under the decompressor failed (the store), or the scan was cancelled.
fn unpack_kind(err: &minehound_unpack::Error) -> ErrorKind {
    use minehound_unpack::Error as E;
    match err {
        E::Corrupt { source, .. } if is_cancelled(source) => ErrorKind::Cancelled,
        E::Corrupt { source, .. } if StoreReadError::is_in(source) => ErrorKind::Io,
        E::Corrupt { .. } | E::LayerTooLarge { .. } | E::TooManyEntries { .. } => ErrorKind::Input,
        E::Visitor(_) => ErrorKind::Engine,
        _ => ErrorKind::Input,
    }
}

fn is_cancelled(err: &std::io::Error) -> bool {
    find_in_io::<Cancelled>(err).is_some()
}

/// An `io::Error` payload (or one nested in it) of type `T`.
fn find_in_io<T: std::error::Error + 'static>(err: &std::io::Error) -> Option<&T> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|e| e as _),
            None => e.source(),
        };
    }
    None
}

/// The reader under a layer's decompressor (the store, the upload) failed:
/// an I/O failure, not corrupt data. Readers that watch a scan wrap their
/// inner reader's errors in it.
#[derive(Debug, thiserror::Error)]
#[error("reading the blob failed")]
pub(crate) struct StoreReadError(#[source] pub std::io::Error);

impl StoreReadError {
    /// Wraps `err`, keeping its kind (so `Interrupted` is still retried).
    pub(crate) fn wrap(err: std::io::Error) -> std::io::Error {
        if err
            .get_ref()
            .is_some_and(|e| e.is::<StoreReadError>() || e.is::<Cancelled>())
        {
            return err;
        }
        std::io::Error::new(err.kind(), StoreReadError(err))
    }

    fn is_in(err: &std::io::Error) -> bool {
        find_in_io::<StoreReadError>(err).is_some()
    }
}

/// The read failed because the scan was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("scan cancelled")]
pub(crate) struct Cancelled;

/// What a caught panic says (its `&str` or `String` payload), for a report
/// or a job's failure; `panicked` when it says nothing readable.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panicked")
}
