//! Content-addressed blobs: bytes with their media type and `sha256:` digest.

use sha2::{Digest as _, Sha256};

/// One content-addressed blob of an image: a layer, a config or a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<64 lowercase hex>` of `bytes`.
    pub digest: String,
    /// The media type a descriptor pointing at this blob carries.
    pub media_type: String,
    /// The blob's exact bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// Wraps `bytes`, computing their digest.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            digest: sha256_digest(&bytes),
            media_type: media_type.to_owned(),
            bytes,
        }
    }

    /// The digest without its `sha256:` prefix, as used in blob file names.
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    /// Where an OCI layout stores this blob: `blobs/sha256/<hex>`.
    pub fn layout_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }

    /// The blob's size in bytes, as a descriptor states it.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// `sha256:<hex>` of `bytes`: the form of digests and diff_ids.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        let blob = Blob::new("x", Vec::new());
        assert_eq!(
            blob.digest,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(blob.layout_path(), format!("blobs/sha256/{}", blob.hex()));
        assert_eq!(blob.size(), 0);
    }
}

/// Hashes (SHA-256) and counts what passes through on its way to `inner`: the
/// digest of a blob streamed somewhere, never held whole.
#[derive(Debug)]
pub struct HashingWriter<W> {
    /// Where the bytes go.
    pub inner: W,
    hash: Sha256,
    /// Bytes written so far.
    pub bytes: u64,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// `sha256:<hex>` of what was written so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hash.clone().finalize()))
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
