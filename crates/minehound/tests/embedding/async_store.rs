//! An async in-memory blob store, as a registry's object storage would be,
//! counting what is read from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use minehound::{AsyncBlob, AsyncImageSource, BoxFuture, SourceError};
use minehound_testdata::BuiltImage;

/// Bytes served per chunk.
pub const CHUNK: usize = 256 * 1024;

/// Blobs by digest, shared (a blob is never copied whole to be served).
#[derive(Default)]
pub struct Store {
    blobs: HashMap<String, Arc<Vec<u8>>>,
    /// Whether the store vouches that blobs match their digests.
    pub verifies: bool,
    /// Times each blob was opened.
    opens: Mutex<HashMap<String, usize>>,
    /// Bytes served from blobs.
    pub served: AtomicU64,
    /// A blob whose reads fail after its first chunk.
    pub failing: Option<String>,
}

impl Store {
    /// The blobs and manifest of `image`.
    pub fn of(image: &BuiltImage) -> Store {
        let mut store = Store::default();
        store.add(image);
        store
    }

    pub fn add(&mut self, image: &BuiltImage) {
        for blob in image.blobs().chain([&image.manifest]) {
            self.blobs
                .insert(blob.digest.clone(), Arc::new(blob.bytes.clone()));
        }
    }

    pub fn remove(&mut self, digest: &str) {
        self.blobs.remove(digest);
    }

    /// Times `digest` was opened.
    pub fn opens(&self, digest: &str) -> usize {
        self.opens.lock().unwrap().get(digest).copied().unwrap_or(0)
    }

    /// Bytes of every blob and manifest held.
    pub fn size(&self) -> u64 {
        self.blobs.values().map(|b| b.len() as u64).sum()
    }

    fn get(&self, digest: &str) -> Result<Arc<Vec<u8>>, SourceError> {
        self.blobs
            .get(digest)
            .cloned()
            .ok_or_else(|| SourceError::MissingBlob(digest.to_string()))
    }
}

/// A blob served a chunk at a time, each chunk after a yield to the runtime
/// (as a network read would).
pub struct Chunks<'a> {
    bytes: Arc<Vec<u8>>,
    at: usize,
    store: &'a Store,
    fail: bool,
}

impl AsyncBlob for Chunks<'_> {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if self.fail && self.at > 0 {
                return Err(SourceError::Io {
                    path: "object storage".into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by peer",
                    ),
                });
            }
            let end = (self.at + CHUNK).min(self.bytes.len());
            let chunk = self.bytes[self.at..end].to_vec();
            self.at = end;
            self.store
                .served
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok((!chunk.is_empty()).then_some(chunk))
        })
    }
}

impl AsyncImageSource for Store {
    fn name(&self) -> String {
        "async memory store".into()
    }

    fn manifest<'a>(
        &'a self,
        digest: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let bytes = self.get(digest)?;
            if bytes.len() as u64 > limit {
                return Err(SourceError::TooLarge {
                    what: digest.to_string(),
                    limit,
                });
            }
            Ok(bytes.to_vec())
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn AsyncBlob + 'a>, SourceError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            *self
                .opens
                .lock()
                .unwrap()
                .entry(digest.to_string())
                .or_default() += 1;
            let bytes = self.get(digest)?;
            Ok(Box::new(Chunks {
                bytes,
                at: 0,
                store: self,
                fail: self.failing.as_deref() == Some(digest),
            }) as Box<dyn AsyncBlob>)
        })
    }

    fn verifies_digests(&self) -> bool {
        self.verifies
    }
}
