use std::io;

/// Why a layer or nested archive could not be walked to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The compressed stream or the tar structure is corrupt or truncated.
    #[error("corrupt or truncated layer data after {entries} entries")]
    Corrupt {
        /// Entries read before the fault.
        entries: u64,
        /// The underlying read or parse error.
        #[source]
        source: io::Error,
    },
    /// The layer decompressed past the configured limit (a decompression bomb?).
    #[error("layer exceeds the uncompressed size limit of {limit} bytes")]
    LayerTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The layer holds more entries than the configured limit.
    #[error("layer holds more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// A visitor gave up; its error is the source.
    #[error("scanning an entry failed")]
    Visitor(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The error for an I/O failure while reading a layer stream: a hit
    /// decompression limit becomes [`Error::LayerTooLarge`], anything else
    /// [`Error::Corrupt`].
    pub fn from_io(err: io::Error) -> Error {
        crate::walk::classify_io(err, 0)
    }
}
