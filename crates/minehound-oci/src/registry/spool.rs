//! A large blob fetched into a temporary file by several range requests at
//! once, read while it arrives: in order (the scan, which hashes every byte)
//! and at any offset (threads inflating a gzip layer from several places).
//!
//! The blob is cut into segments taken in order by the connections, so the
//! bytes the ordered reader wants next are always the ones coming in. Each
//! segment records how much of it is written; a read waits for its bytes,
//! never past them. Bytes once written are never written again, so what the
//! ordered reader hashes is what every other reader was given.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RANGE};

use super::blob::BlobFetcher;

/// Bytes per range request at most: large enough that a request's round
/// trip is a small share of its transfer, small enough that the first bytes
/// come soon.
const MAX_SEGMENT: u64 = 8 << 20;
/// Bytes per range request at least.
const MIN_SEGMENT: u64 = 256 << 10;

/// A blob arriving in a temporary file (removed when the last handle and
/// download are gone). Clones share it; when every clone is dropped, the
/// downloads stop.
#[derive(Clone)]
pub struct SpooledBlob {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for SpooledBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledBlob")
            .field("size", &self.handle.spool.size)
            .finish()
    }
}

struct Handle {
    spool: Arc<Spool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.spool.abandoned.store(true, Ordering::Relaxed);
    }
}

struct Spool {
    file: File,
    size: u64,
    /// Bytes per segment: a few segments per connection at least.
    segment: u64,
    /// The next segment a connection takes.
    next: AtomicUsize,
    progress: Mutex<Progress>,
    arrived: Condvar,
    /// Set when nobody reads any more: the downloads stop.
    abandoned: AtomicBool,
}

struct Progress {
    /// Bytes written from the start of each segment.
    filled: Vec<u64>,
    /// Why the blob will not arrive whole.
    failed: Option<(io::ErrorKind, String)>,
}

impl Spool {
    fn segments(&self) -> usize {
        self.size.div_ceil(self.segment) as usize
    }

    fn segment_len(&self, index: usize) -> u64 {
        let start = index as u64 * self.segment;
        self.segment.min(self.size - start)
    }

    fn fail(&self, error: &io::Error) {
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        progress
            .failed
            .get_or_insert_with(|| (error.kind(), error.to_string()));
        self.arrived.notify_all();
    }

    /// Writes `data` at `offset` of segment `index`, where it has arrived to.
    fn write(&self, index: usize, data: &[u8]) -> io::Result<bool> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let start = index as u64 * self.segment;
        let filled = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .filled[index];
        self.file.write_all_at(data, start + filled).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot spool the layer blob in TMPDIR: {e}"),
            )
        })?;
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .filled[index] += data.len() as u64;
        self.arrived.notify_all();
        Ok(true)
    }

    fn failed(&self) -> bool {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        progress.failed.is_some()
    }

    /// One connection: segments in turn until none is left, or one failed.
    async fn fetch(
        self: Arc<Self>,
        fetcher: Arc<BlobFetcher>,
        digest: String,
        mut unfinished: Unfinished,
    ) {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.segments() || self.abandoned.load(Ordering::Relaxed) || self.failed() {
                break;
            }
            let start = index as u64 * self.segment;
            let range = start..start + self.segment_len(index);
            let spool = &self;
            let deliver = |data: Bytes| std::future::ready(spool.write(index, &data));
            if let Err(error) = fetcher.download(&digest, Some(range), deliver).await {
                self.fail(&error);
                break;
            }
        }
        unfinished.0 = None;
    }

    /// Reads at `offset`, waiting for the bytes there to arrive.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let index = (offset / self.segment) as usize;
        let within = offset - index as u64 * self.segment;
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let have = loop {
            let filled = progress.filled[index];
            if filled > within {
                break filled - within;
            }
            if let Some((kind, message)) = &progress.failed {
                return Err(io::Error::new(*kind, message.clone()));
            }
            progress = self
                .arrived
                .wait(progress)
                .unwrap_or_else(|e| e.into_inner());
        };
        drop(progress);
        let n = buf.len().min(have.min(usize::MAX as u64) as usize);
        self.file.read_at(&mut buf[..n], offset)
    }
}

/// Marks the spool failed when a download task is dropped before it ended
/// (the runtime shutting down, even before the task first ran), so no reader
/// waits for bytes that will not come.
struct Unfinished(Option<Arc<Spool>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(spool) = self.0.take() {
            spool.fail(&io::Error::other("the blob download was stopped"));
        }
    }
}

impl SpooledBlob {
    /// Its size in bytes, as the manifest declares it.
    pub fn size(&self) -> u64 {
        self.handle.spool.size
    }

    /// Reads at `offset` as [`FileExt::read_at`] does, waiting for the bytes
    /// to arrive; an error once the download failed before them.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.handle.spool.read_at(buf, offset)
    }

    /// The blob from its start, in order.
    pub fn reader(&self) -> SpooledReader {
        SpooledReader {
            blob: self.clone(),
            at: 0,
        }
    }
}

/// [`SpooledBlob`] read in order.
#[derive(Debug)]
pub struct SpooledReader {
    blob: SpooledBlob,
    at: u64,
}

impl Read for SpooledReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.blob.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Starts fetching `digest` (`size` bytes) by `connections` range requests
/// at once into a temporary file; `None` when the registry does not answer
/// a range request with its range, or no temporary file can be made (the
/// blob is then streamed).
pub(crate) fn start(
    runtime: &tokio::runtime::Runtime,
    fetcher: &Arc<BlobFetcher>,
    digest: &str,
    size: u64,
    connections: usize,
) -> Option<SpooledBlob> {
    if !runtime.block_on(serves_ranges(fetcher, digest)) {
        return None;
    }
    let file = tempfile::tempfile().ok()?;
    let connections = connections.max(1);
    let segment = (size / (4 * connections as u64)).clamp(MIN_SEGMENT, MAX_SEGMENT);
    let spool = Arc::new(Spool {
        file,
        size,
        segment,
        next: AtomicUsize::new(0),
        progress: Mutex::new(Progress {
            filled: vec![0; size.div_ceil(segment) as usize],
            failed: None,
        }),
        arrived: Condvar::new(),
        abandoned: AtomicBool::new(false),
    });
    for _ in 0..connections.min(spool.segments()) {
        let unfinished = Unfinished(Some(spool.clone()));
        let fetch = spool
            .clone()
            .fetch(fetcher.clone(), digest.to_string(), unfinished);
        runtime.spawn(fetch);
    }
    Some(SpooledBlob {
        handle: Arc::new(Handle { spool }),
    })
}

/// Whether the registry answers a one-byte range request with that byte: a
/// registry that ignores ranges would send the whole blob for each segment.
async fn serves_ranges(fetcher: &BlobFetcher, digest: &str) -> bool {
    let url = fetcher.blob_url(digest);
    let mut request = fetcher.http.get(&url).header(RANGE, "bytes=0-0");
    if let Ok(Some(value)) = fetcher.authorization(false).await {
        request = request.header(AUTHORIZATION, value);
    }
    let mut response = match request.send().await {
        Ok(response) if response.status() == StatusCode::PARTIAL_CONTENT => response,
        _ => return false,
    };
    // Read no more than a byte past the one asked for: a hostile answer may
    // be endless.
    let mut got = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        got += chunk.len();
        if got > 1 {
            return false;
        }
    }
    got == 1
}
