//! Scanning one layer stream as it is uploaded, before any manifest names
//! it: [`LayerRequest`], [`Scanner::scan_layer`] and its variants.

use std::io::Read;
use std::sync::Arc;

use crate::cache::CacheKey;
use crate::layer::{LayerScan, contain_layer_panic, scan_layer_blob};
use crate::media_type::is_document_media_type;
use crate::progress::{CancelToken, Progress, Watch, WatchedReader};
use crate::{Error, LayerError, ScanTask, Scanner};

/// How to scan one layer stream, and who watches: built with
/// [`LayerRequest::new`] and its setters.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct LayerRequest {
    /// The media type the uploader gave, if any. Layer types and generic
    /// ones (`application/octet-stream`, empty) are read alike: gzip, zstd
    /// or plain tar is told by the first bytes. Only a document's type (a
    /// manifest's, a config's: JSON) is refused.
    pub media_type: String,
    /// The digest the layer must have: `sha256:` and 64 hex digits, in
    /// either case (upper-case is folded to lower-case, the form manifests
    /// use). Any other value (another algorithm, a wrong length, a stray
    /// character) fails the scan with [`Error::InvalidDigest`] before a
    /// byte is read. The stream is checked against it, and a scan that
    /// matches is kept in the scanner's [`LayerCache`](crate::LayerCache),
    /// if it has one, under the lower-case digest, for the image scans that
    /// follow.
    pub digest: Option<String>,
    /// The size the layer must have, in bytes; also what
    /// [`Progress::layer_started`] hears.
    pub size: Option<u64>,
    /// Who hears about progress, if anyone.
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the scan when cancelled.
    pub cancel: Option<CancelToken>,
}

impl std::fmt::Debug for LayerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerRequest")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl LayerRequest {
    /// A request for a stream of `media_type` (any string; see
    /// [`LayerRequest::media_type`]), with no digest to check, nobody
    /// watching.
    pub fn new(media_type: impl Into<String>) -> Self {
        LayerRequest {
            media_type: media_type.into(),
            ..LayerRequest::default()
        }
    }

    /// Checks the stream against `digest` and, when it matches, keeps the
    /// scan in the layer cache under it. Upper-case hex is folded to
    /// lower-case; a digest that is not `sha256:` and 64 hex digits fails
    /// the scan with [`Error::InvalidDigest`] (an
    /// [`ErrorKind::Input`](crate::ErrorKind::Input) error) before a byte is
    /// read. See [`LayerRequest::digest`](LayerRequest#structfield.digest).
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        let digest = digest.into();
        self.digest = Some(normalise_digest(&digest).unwrap_or(digest));
        self
    }

    /// Checks the stream's length.
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Reports progress to `progress`: the layer (named by its digest, or
    /// `upload`) started, advanced, each finding, finished.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Stops the scan when `cancel` is cancelled.
    pub fn cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    fn watch(&self) -> Watch<'_> {
        Watch {
            progress: self.progress.as_ref(),
            cancel: self.cancel.as_ref(),
        }
    }
}

impl Scanner {
    /// Scans one layer stream, such as a blob being uploaded before any
    /// manifest names it. Gzip, zstd and plain tar are told apart by the
    /// first bytes, so `media_type` may be a layer type, a generic one
    /// (`application/octet-stream`, empty) or unknown; only a document's
    /// (JSON) is refused. The result carries the stream's digest and diff
    /// id. Runs on the calling thread; [`Scanner::scan_layer_with`] takes a
    /// digest to check, a cancel token and an observer.
    ///
    /// ```
    /// use minehound::{ScannerBuilder, Severity};
    /// use minehound_testdata::{Entry, tar_bytes};
    ///
    /// // A layer holding a script that starts a miner, stored as an opaque blob.
    /// let layer = tar_bytes(&[Entry::executable(
    ///     "/usr/local/bin/start.sh",
    ///     "#!/bin/sh\nxmrig -o stratum+tcp://pool.example.com:3333 --donate-level 1 -u WALLET\n",
    /// )]);
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// for blob in [minehound_testdata::gzip(&layer), minehound_testdata::zstd(&layer), layer] {
    ///     let scan = scanner.scan_layer(&blob[..], "application/octet-stream")?;
    ///     assert_eq!(scan.files, 1);
    ///     assert!(scan.highest_severity() >= Some(Severity::High));
    ///     assert_eq!(scan.findings[0].path, "/usr/local/bin/start.sh");
    /// }
    ///
    /// // A document is refused.
    /// assert!(scanner.scan_layer(&b"{}"[..], "application/vnd.oci.image.config.v1+json").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_layer(&self, layer: impl Read, media_type: &str) -> Result<LayerScan, Error> {
        self.scan_layer_with(layer, &LayerRequest::new(media_type))
    }

    /// [`Scanner::scan_layer`] with a digest and size to check, a cancel
    /// token and a progress observer. A stream that does not match the
    /// digest or size is an [`ErrorKind::Input`](crate::ErrorKind::Input)
    /// error, and so is a digest that is not `sha256:` and 64 hex digits
    /// ([`Error::InvalidDigest`], before a byte is read; upper-case hex is
    /// accepted and folded to lower-case). One that matches the digest fills the layer cache (when the
    /// scanner has one), so an image scan that meets the layer later, from
    /// a source that [vouches for digests], does not read it again.
    ///
    /// [vouches for digests]: crate::ImageSource::verifies_digests
    ///
    /// ```
    /// use minehound::{CancelToken, Error, LayerRequest, ScannerBuilder};
    /// use minehound_testdata::{Entry, gzip, sha256_digest, tar_bytes};
    ///
    /// let blob = gzip(&tar_bytes(&[Entry::file("/etc/motd", "welcome\n")]));
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let request = LayerRequest::new("application/octet-stream").digest(sha256_digest(&blob));
    /// let scan = scanner.scan_layer_with(&blob[..], &request)?;
    /// assert!(scan.findings.is_empty());
    ///
    /// // The wrong digest is the input's fault.
    /// let wrong = LayerRequest::new("").digest(sha256_digest(b"other"));
    /// let err = scanner.scan_layer_with(&blob[..], &wrong).unwrap_err();
    /// assert_eq!(err.kind(), minehound::ErrorKind::Input);
    ///
    /// // So is a digest that is none; upper-case hex is fine.
    /// let invalid = LayerRequest::new("").digest("sha256:not-a-digest");
    /// let err = scanner.scan_layer_with(&blob[..], &invalid).unwrap_err();
    /// assert!(matches!(err, Error::InvalidDigest { .. }));
    /// let upper = LayerRequest::new("").digest(sha256_digest(&blob).to_uppercase());
    /// assert!(scanner.scan_layer_with(&blob[..], &upper).is_ok());
    ///
    /// // A cancelled scan stops at its next block.
    /// let cancel = CancelToken::new();
    /// cancel.cancel();
    /// let request = LayerRequest::new("").cancel(cancel);
    /// assert!(matches!(scanner.scan_layer_with(&blob[..], &request), Err(Error::Cancelled)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_layer_with(
        &self,
        layer: impl Read,
        request: &LayerRequest,
    ) -> Result<LayerScan, Error> {
        if is_document_media_type(&request.media_type) {
            return Err(Error::MediaType(request.media_type.clone()));
        }
        // The field is public: check it here, not only in the setter.
        let digest = match &request.digest {
            Some(digest) => Some(
                normalise_digest(digest).ok_or_else(|| Error::InvalidDigest {
                    digest: digest.clone(),
                })?,
            ),
            None => None,
        };
        let watch = request.watch();
        if watch.cancelled() {
            return Err(Error::Cancelled);
        }
        let name = digest.as_deref().unwrap_or("upload");
        if let Some(progress) = watch.progress {
            progress.layer_started(name, request.size);
        }
        let reader = WatchedReader {
            inner: layer,
            layer: name,
            watch,
        };
        let mut detector = self.detector();
        let scanned = contain_layer_panic(&mut detector, |detector| {
            scan_layer_blob(reader, detector, &self.limits)
        })
        .and_then(|scan| {
            check(&scan, digest.as_deref(), request.size)?;
            Ok(scan)
        });
        if watch.cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(progress) = watch.progress {
            for finding in scanned.iter().flat_map(|s| &s.findings) {
                progress.finding(name, finding);
            }
            progress.layer_finished(name);
        }
        let scan = scanned.map_err(|source| Error::LayerStream {
            media_type: request.media_type.clone(),
            source,
        })?;
        if let (Some(digest), Some(cache)) = (&digest, &self.cache) {
            cache.put(&CacheKey::new(&self.cache_settings, digest), &scan);
        }
        Ok(scan)
    }

    /// [`Scanner::scan_layer_with`] on the scanner's task threads, for async
    /// code: await the returned task for the result. Dropping the task
    /// before it completes cancels the scan (the request's token, or one
    /// made for it), which stops at its next block; a task still queued
    /// never starts.
    ///
    /// ```
    /// # use minehound::{LayerRequest, ScannerBuilder};
    /// # use minehound_testdata::{Entry, gzip, tar_bytes};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark {
    /// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
    /// #     }
    /// #     let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let upload = gzip(&tar_bytes(&[Entry::file("/etc/motd", "welcome\n")]));
    /// let task = scanner.scan_layer_async(
    ///     std::io::Cursor::new(upload),
    ///     LayerRequest::new("application/vnd.oci.image.layer.v1.tar+gzip"),
    /// );
    /// let scan = block_on(task)?; // or `.await` on any runtime
    /// assert_eq!(scan.files, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_layer_async(
        &self,
        layer: impl Read + Send + 'static,
        request: LayerRequest,
    ) -> ScanTask<Result<LayerScan, Error>> {
        let cancel = request.cancel.clone().unwrap_or_default();
        let request = request.cancel(cancel.clone());
        self.spawn_task(cancel, move |scanner| {
            scanner.scan_layer_with(layer, &request)
        })
    }
}

/// `digest` in the form manifests use (`sha256:` and 64 lower-case hex
/// digits), its case folded; `None` when it is not a SHA-256 digest.
fn normalise_digest(digest: &str) -> Option<String> {
    let lower = digest.to_ascii_lowercase();
    minehound_oci::sha256_hex_of(&lower).ok()?;
    Some(lower)
}

/// Checks a scan against the digest (normalised) and size the request
/// expects.
fn check(scan: &LayerScan, digest: Option<&str>, size: Option<u64>) -> Result<(), LayerError> {
    if let Some(expected) = digest
        && expected != scan.digest
    {
        return Err(LayerError::DigestMismatch {
            expected: expected.to_string(),
            actual: scan.digest.clone(),
        });
    }
    if let Some(expected) = size
        && expected != scan.compressed_bytes
    {
        return Err(LayerError::SizeMismatch {
            expected,
            actual: scan.compressed_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalise_digest;

    #[test]
    fn digests_are_folded_to_lower_case_and_others_refused() {
        let hex = "ab".repeat(32);
        let lower = format!("sha256:{hex}");
        assert_eq!(normalise_digest(&lower).as_deref(), Some(&*lower));
        let upper = format!("SHA256:{}", hex.to_uppercase());
        assert_eq!(normalise_digest(&upper).as_deref(), Some(&*lower));
        for bad in [
            "",
            "sha256:",
            "sha256:xyz",
            &format!("sha256:{}", &hex[1..]),
            &format!("sha512:{hex}{hex}"),
            &format!("sha256:{hex} "),
            &format!("sha256:../{}", &hex[3..]),
        ] {
            assert_eq!(normalise_digest(bad), None, "{bad:?}");
        }
    }
}
