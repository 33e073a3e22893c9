//! Progress events, for a caller that shows them (the CLI draws bars on a
//! terminal). Workers call the observer; they never print.

use std::io::{self, Read};
use std::sync::Arc;

/// Receives progress of layer reads. Called from worker threads.
pub trait Progress: Send + Sync {
    /// A layer blob starts streaming; `total` is its declared size.
    fn layer_started(&self, layer: &str, total: Option<u64>);
    /// `bytes` more of the blob were read.
    fn layer_advanced(&self, layer: &str, bytes: u64);
    /// The layer is scanned (or failed).
    fn layer_finished(&self, layer: &str);
}

/// Reports every read of the inner reader to a [`Progress`].
pub(crate) struct ProgressReader<R> {
    pub inner: R,
    pub layer: String,
    pub progress: Arc<dyn Progress>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.layer_advanced(&self.layer, n as u64);
        Ok(n)
    }
}
