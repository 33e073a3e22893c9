use std::path::PathBuf;

/// Why an image could not be opened or one of its blobs read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of the source could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The target string is not one minehound understands.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest, index or config is not valid JSON of the expected shape.
    #[error("{what} is not a valid {kind}")]
    Json {
        /// Which document (path or digest).
        what: String,
        /// Which kind of document was expected.
        kind: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    /// A blob the image refers to is not in the source.
    #[error("blob {0} is missing from the image source")]
    MissingBlob(String),
    /// A blob's bytes do not match its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which blob.
        what: String,
        /// The digest the manifest or config declares.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// A blob's length does not match the size its descriptor declares.
    #[error("{what}: size mismatch: descriptor says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        /// Which blob.
        what: String,
        /// Declared size.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A metadata document is larger than minehound accepts.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// Which document.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The source holds no image at all.
    #[error("{0} holds no image (no index.json or manifest.json)")]
    NoImage(String),
    /// The source holds several images and the user named none of them.
    #[error("{source_name} holds {count} images; name one: {choices}")]
    Ambiguous {
        /// The source.
        source_name: String,
        /// How many images.
        count: usize,
        /// The names or digests to choose from.
        choices: String,
    },
    /// No image matches the tag or digest asked for.
    #[error("{source_name} has no image {reference}; it has: {choices}")]
    NoSuchReference {
        /// The source.
        source_name: String,
        /// What the user asked for.
        reference: String,
        /// What there is.
        choices: String,
    },
    /// No manifest of an index matches the platform asked for.
    #[error("no image for platform {wanted}; available: {available}")]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms the index lists.
        available: String,
    },
    /// The manifest and config disagree (for example on the number of layers).
    #[error("{0}")]
    Inconsistent(String),
    /// A registry request failed (after retries, where a retry could help).
    #[error("registry {registry}, repository {repository}: {step} failed")]
    Registry {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What minehound was doing.
        step: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Credentials for a registry could not be read.
    #[error("cannot get credentials for {registry}: {reason}")]
    Credentials {
        /// Registry host.
        registry: String,
        /// Why (never the secret itself).
        reason: String,
    },
    /// Indexes nest deeper than allowed, or refer to themselves.
    #[error("image index nesting is deeper than {0} levels or cyclic")]
    IndexTooDeep(usize),
}
