//! The queue between a scan on the scanner's task threads and the future
//! that serves its reads from an [`AsyncImageSource`] (or an upload's
//! [`AsyncBlob`]): requests one way, a few chunks per open blob the other.
//! See [`AsyncImageSource`] for the design.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use minehound_oci::{Error as SourceError, ImageSource};

use crate::async_source::{AsyncBlob, AsyncImageSource, BoxFuture, CHUNKS_AHEAD};
use crate::error::Cancelled;
use crate::progress::CancelToken;

/// How often a waiting task thread looks at its cancel token.
const POLL_CANCEL: Duration = Duration::from_millis(50);

/// Bytes an open blob may hold fetched and not yet read: past them no more
/// is fetched until the reader catches up, whatever size the store's chunks
/// are (so at most this plus one chunk).
pub(crate) const BYTES_AHEAD: usize = 4 << 20;

/// Empty chunks taken in a row before the fetching future gives the
/// caller's runtime its thread back (and asks to be polled again).
pub(crate) const EMPTY_CHUNKS_PER_POLL: usize = 64;

/// A read the scan asks of the async store.
pub(crate) enum Request {
    Manifest { id: u64, digest: String, limit: u64 },
    Blob { id: u64, digest: String },
}

/// The queue between the scan's threads and the future serving its reads.
#[derive(Default)]
pub(crate) struct Bridge {
    pub(crate) state: Mutex<State>,
    /// Notified on every change a thread may wait for.
    changed: Condvar,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) requests: VecDeque<Request>,
    /// Wakes the serving future.
    pub(crate) waker: Option<Waker>,
    /// The serving future is gone.
    pub(crate) closed: bool,
    next_id: u64,
    manifests: HashMap<u64, Result<Vec<u8>, SourceError>>,
    blobs: HashMap<u64, BlobState>,
}

/// One open blob: chunks fetched, not yet read.
#[derive(Default)]
struct BlobState {
    /// `None` while the store opens it.
    opened: Option<Result<(), SourceError>>,
    chunks: VecDeque<Vec<u8>>,
    /// Bytes in `chunks`.
    buffered: usize,
    /// Set once the store has given everything or failed, and never
    /// cleared: the store's blob is not polled again after either.
    ended: Option<Ended>,
    /// The store's error, until the reader takes it.
    error: Option<SourceError>,
    /// Wakes the future fetching chunks when there is room again.
    fetcher: Option<Waker>,
}

/// How a blob's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The store said it had given everything.
    Complete,
    /// The store failed.
    Failed,
}

impl Bridge {
    /// No read will be served any more: waiting threads give up.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a request and wakes the serving future.
    fn ask(&self, make: impl FnOnce(&mut State) -> (u64, Request)) -> u64 {
        let mut state = self.lock();
        let (id, request) = make(&mut state);
        state.requests.push_back(request);
        let waker = state.waker.clone();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        id
    }

    /// Changes the state from the serving side and tells the waiting threads.
    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits (on a scan thread) until `ready` gives a value, the serving
    /// future is gone, or the scan is cancelled.
    fn wait<T>(
        &self,
        cancel: &CancelToken,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> io::Result<T> {
        let mut state = self.lock();
        loop {
            if let Some(value) = ready(&mut state) {
                return Ok(value);
            }
            if cancel.is_cancelled() {
                return Err(io::Error::other(Cancelled));
            }
            if state.closed {
                return Err(io::Error::other(
                    "the async store's reads are no longer served (the scan's future was dropped)",
                ));
            }
            state = self
                .changed
                .wait_timeout(state, POLL_CANCEL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl State {
    pub(crate) fn new_blob(&mut self, opened: Option<Result<(), SourceError>>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.blobs.insert(
            id,
            BlobState {
                opened,
                ..BlobState::default()
            },
        );
        id
    }
}

/// The future that serves one request.
pub(crate) fn serve<'a>(
    source: &'a dyn AsyncImageSource,
    bridge: Arc<Bridge>,
    request: Request,
) -> BoxFuture<'a, ()> {
    match request {
        Request::Manifest { id, digest, limit } => Box::pin(async move {
            // A store that ignores `limit` is held to it here.
            let result = source.manifest(&digest, limit).await.and_then(|bytes| {
                if bytes.len() as u64 > limit {
                    Err(SourceError::TooLarge {
                        what: digest.clone(),
                        limit,
                    })
                } else {
                    Ok(bytes)
                }
            });
            bridge.update(|state| {
                state.manifests.insert(id, result);
            });
        }),
        Request::Blob { id, digest } => Box::pin(async move {
            let blob = match source.blob(&digest).await {
                Ok(blob) => blob,
                Err(err) => {
                    bridge.update(|state| opened(state, id, Err(err)));
                    return;
                }
            };
            bridge.update(|state| opened(state, id, Ok(())));
            pump(bridge, id, blob).await;
        }),
    }
}

fn opened(state: &mut State, id: u64, result: Result<(), SourceError>) {
    if let Some(blob) = state.blobs.get_mut(&id) {
        blob.opened = Some(result);
    }
}

/// Fetches a blob's chunks while its reader keeps up, until its end or
/// failure (after which the store's blob is never polled again) or until
/// the reader is gone.
pub(crate) async fn pump(bridge: Arc<Bridge>, id: u64, mut blob: Box<dyn AsyncBlob + '_>) {
    let mut empty = 0;
    while (Room {
        bridge: &bridge,
        id,
    })
    .await
    {
        let next = blob.next_chunk().await;
        if matches!(&next, Ok(Some(chunk)) if chunk.is_empty()) {
            // Nothing to hand over; but a store that keeps giving nothing
            // must not keep the caller's thread: yield now and then.
            empty += 1;
            if empty >= EMPTY_CHUNKS_PER_POLL {
                empty = 0;
                YieldNow(false).await;
            }
            continue;
        }
        empty = 0;
        let last = !matches!(next, Ok(Some(_)));
        bridge.update(|state| record(state, id, next));
        if last {
            return;
        }
    }
}

/// Hands what the store gave for blob `id` to its reader.
fn record(state: &mut State, id: u64, next: Result<Option<Vec<u8>>, SourceError>) {
    let Some(blob) = state.blobs.get_mut(&id) else {
        return;
    };
    if blob.ended.is_some() {
        return;
    }
    match next {
        Ok(Some(chunk)) => {
            blob.buffered += chunk.len();
            blob.chunks.push_back(chunk);
        }
        Ok(None) => blob.ended = Some(Ended::Complete),
        Err(err) => {
            blob.ended = Some(Ended::Failed);
            blob.error = Some(err);
        }
    }
}

/// Pending once (waking itself at once), then ready: lets the runtime run
/// its other tasks.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Ready with `true` when blob `id` has room for another chunk, `false` when
/// it needs no more (ended, failed, or its reader is gone).
struct Room<'b> {
    bridge: &'b Bridge,
    id: u64,
}

impl Future for Room<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.bridge.lock();
        match state.blobs.get_mut(&self.id) {
            Some(blob) if blob.ended.is_some() => Poll::Ready(false),
            Some(blob) if blob.chunks.len() < CHUNKS_AHEAD && blob.buffered < BYTES_AHEAD => {
                Poll::Ready(true)
            }
            Some(blob) => {
                blob.fetcher = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Ready(false),
        }
    }
}

/// The sync [`ImageSource`] the scan reads: every call a request to the
/// serving future.
pub(crate) struct BridgedSource {
    pub(crate) bridge: Arc<Bridge>,
    pub(crate) name: String,
    pub(crate) verifies: bool,
    pub(crate) cancel: CancelToken,
}

impl BridgedSource {
    fn failed(&self, what: &str, source: io::Error) -> SourceError {
        SourceError::Io {
            path: format!("{} {what}", self.name).into(),
            source,
        }
    }
}

impl ImageSource for BridgedSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let id = self.bridge.ask(|state| {
            let id = state.next_id;
            state.next_id += 1;
            let digest = digest.to_string();
            (id, Request::Manifest { id, digest, limit })
        });
        let result = self
            .bridge
            .wait(&self.cancel, |state| state.manifests.remove(&id));
        self.bridge.lock().manifests.remove(&id);
        result.map_err(|e| self.failed(digest, e))?
    }

    fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let id = self.bridge.ask(|state| {
            let id = state.new_blob(None);
            let digest = digest.to_string();
            (id, Request::Blob { id, digest })
        });
        // From here the reader owns the blob's state, and drops it.
        let reader = BridgedReader::new(Arc::clone(&self.bridge), id, self.cancel.clone());
        let opened = self.bridge.wait(&self.cancel, |state| {
            state.blobs.get_mut(&id).and_then(|b| b.opened.take())
        });
        match opened {
            Ok(Ok(())) => Ok(Box::new(reader)),
            Ok(Err(err)) => Err(err),
            Err(err) => Err(self.failed(digest, err)),
        }
    }

    fn verifies_digests(&self) -> bool {
        self.verifies
    }
}

/// Reads a blob's chunks as the serving future fetches them.
pub(crate) struct BridgedReader {
    bridge: Arc<Bridge>,
    id: u64,
    cancel: CancelToken,
    chunk: Vec<u8>,
    at: usize,
    failed: bool,
}

impl BridgedReader {
    pub(crate) fn new(bridge: Arc<Bridge>, id: u64, cancel: CancelToken) -> Self {
        BridgedReader {
            bridge,
            id,
            cancel,
            chunk: Vec::new(),
            at: 0,
            failed: false,
        }
    }
}

/// What a reader found waiting for it.
enum Next {
    Chunk(Vec<u8>, Option<Waker>),
    End,
    /// The store's error, if no earlier read took it.
    Failed(Option<SourceError>),
}

impl Read for BridgedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            if self.failed {
                return Err(io::Error::other("the blob could not be read"));
            }
            let id = self.id;
            let next = self.bridge.wait(&self.cancel, |state| {
                let blob = state.blobs.get_mut(&id)?;
                if let Some(chunk) = blob.chunks.pop_front() {
                    blob.buffered -= chunk.len();
                    return Some(Next::Chunk(chunk, blob.fetcher.take()));
                }
                match blob.ended? {
                    Ended::Complete => Some(Next::End),
                    Ended::Failed => Some(Next::Failed(blob.error.take())),
                }
            });
            match next {
                Ok(Next::Chunk(chunk, fetcher)) => {
                    if let Some(fetcher) = fetcher {
                        fetcher.wake();
                    }
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Next::End) => return Ok(0),
                Ok(Next::Failed(err)) => {
                    self.failed = true;
                    return Err(match err {
                        Some(err) => io::Error::other(err),
                        None => io::Error::other("the blob could not be read"),
                    });
                }
                Err(err) => {
                    self.failed = true;
                    return Err(err);
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        if self.at == self.chunk.len() {
            self.chunk = Vec::new();
            self.at = 0;
        }
        Ok(n)
    }
}

impl Drop for BridgedReader {
    fn drop(&mut self) {
        let fetcher = self
            .bridge
            .lock()
            .blobs
            .remove(&self.id)
            .and_then(|mut blob| blob.fetcher.take());
        // The fetching future sees the blob gone and ends.
        if let Some(fetcher) = fetcher {
            fetcher.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_room(bridge: &Bridge, id: u64) -> Poll<bool> {
        let mut room = std::pin::pin!(Room { bridge, id });
        room.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    fn reset() -> SourceError {
        SourceError::Io {
            path: "object storage".into(),
            source: io::Error::new(io::ErrorKind::ConnectionReset, "reset"),
        }
    }

    #[test]
    fn a_failed_blob_stays_failed_after_its_reader_takes_the_error() {
        let bridge = Arc::new(Bridge::default());
        let id = bridge.lock().new_blob(Some(Ok(())));
        let mut reader = BridgedReader::new(Arc::clone(&bridge), id, CancelToken::new());
        bridge.update(|state| record(state, id, Ok(Some(b"abc".to_vec()))));
        bridge.update(|state| record(state, id, Err(reset())));
        let mut buf = [0; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("object storage"), "{err}");
        // The error is taken; the fetcher must still see the blob as done,
        // or it would poll the store's failed blob again.
        assert_eq!(poll_room(&bridge, id), Poll::Ready(false));
        // Nothing recorded after the end counts.
        bridge.update(|state| record(state, id, Ok(Some(b"late".to_vec()))));
        assert!(bridge.lock().blobs[&id].chunks.is_empty());
        assert!(reader.read(&mut buf).is_err());
        assert_eq!(poll_room(&bridge, id), Poll::Ready(false));
    }

    /// A blob that fails at once and panics if polled again.
    struct FailsThenPanics(bool);

    impl AsyncBlob for FailsThenPanics {
        fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
            assert!(!self.0, "polled after it failed");
            self.0 = true;
            Box::pin(async { Err(reset()) })
        }
    }

    #[test]
    fn the_pump_stops_at_a_failure_even_with_room_left() {
        let bridge = Arc::new(Bridge::default());
        let id = bridge.lock().new_blob(Some(Ok(())));
        let mut pump = Box::pin(pump(
            Arc::clone(&bridge),
            id,
            Box::new(FailsThenPanics(false)),
        ));
        let ready = pump.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert_eq!(ready, Poll::Ready(()));
        assert_eq!(bridge.lock().blobs[&id].ended, Some(Ended::Failed));
    }
}
