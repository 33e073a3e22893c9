//! Events and cancellation, for a caller that watches a scan (the CLI draws
//! bars on a terminal; a registry records progress or stops a scan). Workers
//! call the observer; they never print.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Cancelled, StoreReadError};
use crate::layer::FileFinding;

/// Receives events of a scan, from worker threads, while it runs. Every
/// method has an empty default: implement the ones you need.
///
/// A layer is named by its digest (or `layer N` when it has none). For each
/// layer read: [`layer_started`](Progress::layer_started), any number of
/// [`layer_advanced`](Progress::layer_advanced), one
/// [`finding`](Progress::finding) per file with detections, then
/// [`layer_finished`](Progress::layer_finished). A layer the cache knew
/// gets only [`layer_cached`](Progress::layer_cached).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use minehound::{FileFinding, Progress};
///
/// #[derive(Default)]
/// struct Count {
///     layers: AtomicU64,
///     findings: AtomicU64,
/// }
///
/// impl Progress for Count {
///     fn layer_finished(&self, _layer: &str) {
///         self.layers.fetch_add(1, Ordering::Relaxed);
///     }
///     fn finding(&self, _layer: &str, finding: &FileFinding) {
///         self.findings.fetch_add(finding.detections.len() as u64, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait Progress: Send + Sync {
    /// A layer blob starts streaming; `total` is its declared size.
    fn layer_started(&self, layer: &str, total: Option<u64>) {
        let _ = (layer, total);
    }
    /// `bytes` more of the blob were read.
    fn layer_advanced(&self, layer: &str, bytes: u64) {
        let _ = (layer, bytes);
    }
    /// A file of the layer has detections. Sent when the layer is done,
    /// before [`layer_finished`](Progress::layer_finished).
    fn finding(&self, layer: &str, finding: &FileFinding) {
        let _ = (layer, finding);
    }
    /// The layer is scanned (or failed).
    fn layer_finished(&self, layer: &str) {
        let _ = layer;
    }
    /// The layer's result came from the layer cache: nothing was read.
    fn layer_cached(&self, layer: &str) {
        let _ = layer;
    }
}

/// Stops a scan from another thread or task. Clones share one flag.
///
/// A cancelled scan stops reading at its next block and returns
/// [`Error::Cancelled`](crate::Error::Cancelled); layers already finished
/// stay in the layer cache, so the next scan resumes where this one stopped.
/// An archive that can only be read front to back (stdin, a compressed
/// archive) is read to its end.
///
/// ```
/// let cancel = minehound::CancelToken::new();
/// let for_the_watchdog = cancel.clone();
/// for_the_watchdog.cancel();
/// assert!(cancel.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every scan holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Who watches a scan: an observer, a cancel token, both or neither.
#[derive(Clone, Copy, Default)]
pub(crate) struct Watch<'a> {
    pub progress: Option<&'a Arc<dyn Progress>>,
    pub cancel: Option<&'a CancelToken>,
}

impl Watch<'_> {
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }
}

/// Reports every read of the inner reader to a [`Progress`], and fails the
/// read once the scan is cancelled.
pub(crate) struct WatchedReader<'w, R> {
    pub inner: R,
    pub layer: &'w str,
    pub watch: Watch<'w>,
}

impl<R: Read> Read for WatchedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.watch.cancelled() {
            // Not `Interrupted`: readers retry that kind.
            return Err(io::Error::other(Cancelled));
        }
        let n = self.inner.read(buf).map_err(StoreReadError::wrap)?;
        if let Some(progress) = self.watch.progress {
            progress.layer_advanced(self.layer, n as u64);
        }
        Ok(n)
    }
}
