//! Images (and uploads) from async storage: [`AsyncImageSource`] and
//! [`AsyncBlob`], scanned with [`Scanner::scan_async_source`] and
//! [`Scanner::scan_layer_stream`].
//!
//! How and why: see [`AsyncImageSource`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use minehound_oci::Error as SourceError;

use crate::bridge::{Bridge, BridgedReader, BridgedSource, Request, pump, serve};
use crate::progress::CancelToken;
use crate::{Error, LayerRequest, LayerScan, Report, ScanTask, Scanner, SourceRequest};

/// A boxed future that can move between threads: what the async traits'
/// methods return (`Box::pin(async move { … })`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Chunks an open blob may hold in memory, fetched ahead of the worker
/// that reads it.
pub const CHUNKS_AHEAD: usize = 4;

/// A content-addressed store of manifests and blobs with an async API, such
/// as a registry's object storage: the async twin of
/// [`ImageSource`](crate::ImageSource), read by
/// [`Scanner::scan_async_source`].
///
/// minehound verifies every byte it reads against its digest, so a source
/// need not.
///
/// # How it is read: a sync source served by the caller
///
/// The scan itself is the one every image scan runs (digests verified while
/// read, each unique layer once, layers in parallel on the workers, the
/// layer cache): it runs on the scanner's task threads and reads an adapter,
/// a sync [`ImageSource`](crate::ImageSource) whose every manifest and blob
/// read becomes a request on a queue. The future the caller awaits serves
/// that queue: it polls the store's futures (in the caller's task, so they
/// run on the caller's runtime, with its reactor and its borrowed storage)
/// and hands the bytes over in chunks. So:
///
/// - no runtime thread ever blocks: the future only takes short locks;
/// - nothing ties the library to a runtime (tokio or any other), and the
///   store may be borrowed: the future borrows it for as long as it runs;
/// - blobs are fetched lazily, when a worker reaches their layer, and each
///   open blob holds at most [`CHUNKS_AHEAD`] chunks fetched ahead, and no
///   more once 4 MiB are waiting: an image is never loaded whole, and
///   memory follows the workers' count, not the image's size (measured in
///   `tests/embedding`: about 5 MiB of heap above the store, two workers,
///   for an image of 16 MiB and one of 64 MiB alike);
/// - a future not yet polled holds nothing: no task thread, no queued scan,
///   no read. The scan is queued when the future is first polled, and from
///   then on holds a task thread until it ends (see
///   [`ScannerBuilder::tasks`](crate::ScannerBuilder::tasks));
/// - dropping the future cancels the scan: the task threads stop at their
///   next read.
///
/// # What the store must do
///
/// The bounds above hold only as far as the store keeps to its side:
///
/// - [`manifest`](AsyncImageSource::manifest) must refuse documents larger
///   than `limit` before loading them. One that returns more anyway is
///   refused with [`SourceError::TooLarge`] here, but only after the store
///   has held all of it in memory.
/// - [`AsyncBlob::next_chunk`] should return chunks of a few hundred KiB. A
///   chunk is handed over whole, so the largest chunk the store returns is
///   held in memory whatever its size; past 4 MiB waiting, no further chunk
///   is asked for until the scan has read what it has.
/// - Empty chunks are skipped; after a run of them the future yields to the
///   runtime, so a store that keeps returning them costs polls, not a
///   blocked thread.
///
/// An async trait driven on the task threads would need a runtime there (a
/// `Handle::block_on` per read) and a `'static` store; this way needs
/// neither.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
/// use minehound::{AsyncBlob, AsyncImageSource, BoxFuture, SourceError};
///
/// /// Blobs in memory (a stand-in for object storage), by digest.
/// struct Store(HashMap<String, Vec<u8>>);
///
/// /// A blob served 64 KiB at a time.
/// struct Chunks<'a>(&'a [u8]);
///
/// impl AsyncBlob for Chunks<'_> {
///     fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
///         let n = self.0.len().min(64 * 1024);
///         let (chunk, rest) = self.0.split_at(n);
///         self.0 = rest;
///         Box::pin(async move { Ok((n > 0).then(|| chunk.to_vec())) })
///     }
/// }
///
/// impl AsyncImageSource for Store {
///     fn name(&self) -> String {
///         "memory".into()
///     }
///     fn manifest<'a>(&'a self, digest: &'a str, limit: u64)
///         -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
///         Box::pin(async move {
///             let bytes = self.0.get(digest).ok_or_else(|| SourceError::MissingBlob(digest.into()))?;
///             if bytes.len() as u64 > limit {
///                 return Err(SourceError::TooLarge { what: digest.into(), limit });
///             }
///             Ok(bytes.clone())
///         })
///     }
///     fn blob<'a>(&'a self, digest: &'a str)
///         -> BoxFuture<'a, Result<Box<dyn AsyncBlob + 'a>, SourceError>> {
///         Box::pin(async move {
///             let bytes = self.0.get(digest).ok_or_else(|| SourceError::MissingBlob(digest.into()))?;
///             Ok(Box::new(Chunks(bytes)) as Box<dyn AsyncBlob>)
///         })
///     }
/// }
/// ```
pub trait AsyncImageSource: Send + Sync {
    /// A name for messages, such as the store's URL.
    fn name(&self) -> String;

    /// The bytes of a manifest or index, refusing more than `limit` bytes
    /// ([`SourceError::TooLarge`]). A missing one is
    /// [`SourceError::MissingBlob`].
    fn manifest<'a>(
        &'a self,
        digest: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, SourceError>>;

    /// Opens a blob (config or layer) to be read chunk by chunk. A missing
    /// one is [`SourceError::MissingBlob`]; a storage failure
    /// [`SourceError::Io`].
    fn blob<'a>(
        &'a self,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn AsyncBlob + 'a>, SourceError>>;

    /// Whether the store guarantees that a blob's bytes match its digest
    /// (it checked every upload and only it writes the storage). When it
    /// does, a layer the layer cache knows (from an earlier image, or from
    /// [`Scanner::scan_layer_with`] at upload) is not read at all;
    /// otherwise it is read once more to be hashed, not scanned. Default: no.
    fn verifies_digests(&self) -> bool {
        false
    }
}

/// A blob being read, chunk by chunk, from async storage.
pub trait AsyncBlob: Send {
    /// The next bytes of the blob, `None` at its end. Chunks of a few
    /// hundred KiB suit best: each is held whole, and [`CHUNKS_AHEAD`] of
    /// them (or 4 MiB, whichever comes first) are fetched ahead at most.
    /// After `None` or an error the blob is not polled again.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>>;
}

impl<B: AsyncBlob + ?Sized> AsyncBlob for Box<B> {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        (**self).next_chunk()
    }
}

impl Scanner {
    /// Scans the image under manifest or index `digest` of an async store,
    /// as [`Scanner::scan_source`] does for a sync one. Await the returned
    /// future on any runtime: it serves the store's reads while the scan runs
    /// on the scanner's threads (see [`AsyncImageSource`] for how and
    /// why). Nothing is queued before the future is first polled. Blobs are
    /// fetched when their layer's turn comes, a few chunks at a time.
    /// Dropping the future cancels the scan.
    ///
    /// ```
    /// # use std::collections::HashMap;
    /// # use minehound::{AsyncBlob, AsyncImageSource, BoxFuture, SourceError};
    /// # struct Store(HashMap<String, Vec<u8>>);
    /// # struct Chunks<'a>(&'a [u8]);
    /// # impl AsyncBlob for Chunks<'_> {
    /// #     fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
    /// #         let n = self.0.len().min(64 * 1024);
    /// #         let (chunk, rest) = self.0.split_at(n);
    /// #         self.0 = rest;
    /// #         Box::pin(async move { Ok((n > 0).then(|| chunk.to_vec())) })
    /// #     }
    /// # }
    /// # impl AsyncImageSource for Store {
    /// #     fn name(&self) -> String { "memory".into() }
    /// #     fn manifest<'a>(&'a self, digest: &'a str, _limit: u64) -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
    /// #         Box::pin(async move { self.0.get(digest).cloned().ok_or_else(|| SourceError::MissingBlob(digest.into())) })
    /// #     }
    /// #     fn blob<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, Result<Box<dyn AsyncBlob + 'a>, SourceError>> {
    /// #         Box::pin(async move {
    /// #             let bytes = self.0.get(digest).ok_or_else(|| SourceError::MissingBlob(digest.into()))?;
    /// #             Ok(Box::new(Chunks(bytes)) as Box<dyn AsyncBlob>)
    /// #         })
    /// #     }
    /// # }
    /// use minehound::{ScannerBuilder, Severity, SourceRequest};
    /// use minehound_testdata::demo_image;
    ///
    /// let image = demo_image().build();
    /// let mut blobs = HashMap::new();
    /// for blob in image.blobs().chain([&image.manifest]) {
    ///     blobs.insert(blob.digest.clone(), blob.bytes.clone());
    /// }
    /// let store = Store(blobs);
    ///
    /// let scanner = ScannerBuilder::new().jobs(2).build()?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let report = runtime.block_on(async {
    ///     scanner
    ///         .scan_async_source(&store, &image.manifest.digest, SourceRequest::new("demo"))
    ///         .await
    /// })?;
    /// assert!(report.fails(Severity::High));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_async_source<'a>(
        &self,
        source: &'a dyn AsyncImageSource,
        digest: &str,
        request: SourceRequest,
    ) -> AsyncScan<'a, Result<Report, Error>> {
        let cancel = request.cancel.clone().unwrap_or_default();
        let request = request.cancel(cancel.clone());
        let bridge = Arc::new(Bridge::default());
        let reads = BridgedSource {
            bridge: Arc::clone(&bridge),
            name: source.name(),
            verifies: source.verifies_digests(),
            cancel: cancel.clone(),
        };
        let digest = digest.to_string();
        let scanner = self.clone();
        let token = cancel.clone();
        // Queued on the first poll, not now: the scan waits for reads that
        // only polling serves, so queued early it could hold a task thread
        // while its caller awaits something else behind it.
        let start = move || {
            scanner.spawn_task(token, move |scanner| {
                scanner.scan_source(&reads, &digest, &request)
            })
        };
        AsyncScan {
            start: Some(Box::new(start)),
            task: None,
            cancel,
            bridge,
            source: Some(source),
            running: Vec::new(),
        }
    }

    /// Scans one layer arriving from async code, such as an upload's body,
    /// as [`Scanner::scan_layer_with`] does for a sync reader: the scan runs
    /// on the scanner's task threads, and the returned future feeds it the
    /// chunks, [`CHUNKS_AHEAD`] at most at a time. Nothing is queued before
    /// the future is first polled. Dropping the future cancels the scan.
    ///
    /// ```
    /// use minehound::{AsyncBlob, BoxFuture, LayerRequest, ScannerBuilder, Severity, SourceError};
    /// use minehound_testdata::demo_image;
    ///
    /// /// An upload's body as it arrives, 16 KiB at a time.
    /// struct Body(Vec<u8>);
    ///
    /// impl AsyncBlob for Body {
    ///     fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
    ///         let rest = self.0.split_off(self.0.len().min(16 * 1024));
    ///         let chunk = std::mem::replace(&mut self.0, rest);
    ///         Box::pin(async move { Ok((!chunk.is_empty()).then_some(chunk)) })
    ///     }
    /// }
    ///
    /// let layer = demo_image().build().layers[1].clone();
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let request = LayerRequest::new("application/octet-stream").digest(&layer.digest);
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let scan = runtime.block_on(scanner.scan_layer_stream(Body(layer.bytes), request))?;
    /// assert!(scan.highest_severity() >= Some(Severity::High));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_layer_stream<'a>(
        &self,
        layer: impl AsyncBlob + 'a,
        request: LayerRequest,
    ) -> AsyncScan<'a, Result<LayerScan, Error>> {
        let cancel = request.cancel.clone().unwrap_or_default();
        let request = request.cancel(cancel.clone());
        let bridge = Arc::new(Bridge::default());
        let id = bridge.lock().new_blob(Some(Ok(())));
        let reader = BridgedReader::new(Arc::clone(&bridge), id, cancel.clone());
        let scanner = self.clone();
        let token = cancel.clone();
        // Queued on the first poll, as for `scan_async_source`.
        let start = move || {
            scanner.spawn_task(token, move |scanner| {
                scanner.scan_layer_with(reader, &request)
            })
        };
        AsyncScan {
            start: Some(Box::new(start)),
            task: None,
            cancel,
            running: vec![Box::pin(pump(Arc::clone(&bridge), id, Box::new(layer)))],
            bridge,
            source: None,
        }
    }
}

/// A scan of async storage: await it for the result. Nothing happens until
/// it is first polled: then the scan is queued for a task thread, and while
/// it is polled it serves the scan's reads. Dropping it cancels the scan.
///
/// Once polled, the scan holds its task thread until it ends, and it can
/// only go on while this future is polled: await it (or poll it alongside,
/// as `join!` does) rather than leaving it half-polled while awaiting other
/// scans of the same scanner.
#[must_use = "the scan starts only when awaited, and is cancelled when dropped"]
pub struct AsyncScan<'a, T> {
    /// Queues the scan: taken on the first poll.
    start: Option<Box<dyn FnOnce() -> ScanTask<T> + Send>>,
    /// The queued or running scan, once polled.
    task: Option<ScanTask<T>>,
    cancel: CancelToken,
    bridge: Arc<Bridge>,
    source: Option<&'a dyn AsyncImageSource>,
    /// The store's reads in progress.
    running: Vec<BoxFuture<'a, ()>>,
}

impl<T> std::fmt::Debug for AsyncScan<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncScan")
            .field("cancel", &self.cancel)
            .field("started", &self.task.is_some())
            .field("reads", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl<T> AsyncScan<'_, T> {
    /// The token that cancels this scan.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }
}

impl<'a, T> Future for AsyncScan<'a, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        if let Some(start) = this.start.take() {
            this.task = Some(start());
        }
        loop {
            let requests: Vec<Request> = {
                let mut state = this.bridge.lock();
                state.waker = Some(cx.waker().clone());
                state.requests.drain(..).collect()
            };
            if let Some(source) = this.source {
                for request in requests {
                    this.running
                        .push(serve(source, Arc::clone(&this.bridge), request));
                }
            }
            this.running
                .retain_mut(|read| read.as_mut().poll(cx).is_pending());
            if this.bridge.lock().requests.is_empty() {
                break;
            }
        }
        match &mut this.task {
            Some(task) => Pin::new(task).poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<T> Drop for AsyncScan<'_, T> {
    fn drop(&mut self) {
        self.bridge.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send>() {}

    #[test]
    fn scans_of_async_storage_cross_threads() {
        shareable::<AsyncScan<'static, Result<Report, Error>>>();
    }
}
