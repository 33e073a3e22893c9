//! A blocking `Read` over a blob that downloads on the registry's runtime:
//! bounded (a few chunks in flight), resumed with a range request after a
//! dropped connection, retried with backoff on 5xx and 429.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use tokio::sync::mpsc;

/// Chunks buffered between the download and the scanner: memory stays bounded
/// whatever the layer size.
const CHUNKS_IN_FLIGHT: usize = 8;

pub(crate) struct BlobReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Whether an error is worth another attempt.
pub(crate) fn retryable(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Delay before attempt `n` (1-based): 0.5 s, 1 s, 2 s, … capped at 8 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4).saturating_sub(1)))
}

/// Starts downloading `digest` and returns a reader over it.
pub(crate) fn open(
    runtime: &tokio::runtime::Runtime,
    client: Arc<Client>,
    reference: Reference,
    digest: String,
    retries: u32,
) -> BlobReader {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    runtime.spawn(async move {
        let descriptor = OciDescriptor {
            digest: digest.clone(),
            // Never follow descriptor URLs (foreign layers): with untrusted
            // images they can point anywhere, including internal addresses.
            urls: None,
            ..Default::default()
        };
        let mut received: u64 = 0;
        let mut attempt = 0;
        loop {
            let stream = if received == 0 {
                client
                    .pull_blob_stream(&reference, &descriptor)
                    .await
                    .map(|s| (s.stream, 0))
            } else {
                // Resume after a dropped connection; a server that ignores the
                // range sends it all again, and we skip what we have.
                match client
                    .pull_blob_stream_partial(&reference, &descriptor, received, None)
                    .await
                {
                    Ok(oci_client::client::BlobResponse::Partial(s)) => Ok((s.stream, 0)),
                    Ok(oci_client::client::BlobResponse::Full(s)) => Ok((s.stream, received)),
                    Err(e) => Err(e),
                }
            };
            let (mut stream, mut skip) = match stream {
                Ok(s) => s,
                Err(err) if retryable(&err) && attempt < retries => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(err) => {
                    let _ = tx.send(Err(io::Error::other(err))).await;
                    return;
                }
            };
            let mut failed = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(mut data) => {
                        if skip > 0 {
                            let cut = (skip as usize).min(data.len());
                            let _ = data.split_to(cut);
                            skip -= cut as u64;
                        }
                        if data.is_empty() {
                            continue;
                        }
                        received += data.len() as u64;
                        if tx.send(Ok(data)).await.is_err() {
                            return; // the reader is gone
                        }
                    }
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            match failed {
                None => return,
                // A digest mismatch found by oci-client is final.
                Some(err) if err.kind() == io::ErrorKind::InvalidData || attempt >= retries => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
                Some(_) => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    });
    BlobReader {
        rx,
        current: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stops_growing() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_millis(1000));
        assert_eq!(backoff(5), Duration::from_millis(4000));
        assert_eq!(backoff(50), Duration::from_millis(4000));
    }
}
