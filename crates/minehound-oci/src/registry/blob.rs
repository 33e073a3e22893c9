//! A blocking `Read` over a blob that downloads on the registry's runtime:
//! bounded (a few chunks in flight), resumed with a range request after a
//! dropped connection or a stalled (trickling) one, retried with backoff on
//! connection errors, 5xx and 429, honouring `Retry-After`.
//!
//! Blobs are fetched with reqwest directly (oci-client does the auth
//! challenge): oci-client's errors carry no response headers, so it cannot
//! honour `Retry-After`, and it would follow descriptor URLs.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, HeaderMap, RANGE, RETRY_AFTER};
use tokio::sync::{Mutex, mpsc};

/// Chunks buffered between the download and the scanner: memory stays bounded
/// whatever the layer size.
const CHUNKS_IN_FLIGHT: usize = 8;
/// The longest `Retry-After` obeyed; a registry asking for more gets an error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Fewer bytes than this over a whole timeout window is a stalled transfer: a
/// trickle (a byte a second) never trips the read timeout, and would hold a
/// scan for days.
const MIN_BYTES_PER_WINDOW: u64 = 16 * 1024;

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

/// Whether an oci-client error (manifest requests) is worth another attempt.
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

/// Delay before attempt `n` (1-based): 0.5 s, 1 s, 2 s, then 4 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4).saturating_sub(1)))
}

/// Where a `206 Partial Content` body starts, from `Content-Range: bytes A-B/T`.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// `Retry-After` in seconds (the HTTP-date form falls back to backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Everything a blob download needs; shared by all downloads of one store.
pub(crate) struct BlobFetcher {
    pub http: reqwest::Client,
    pub oci: Arc<Client>,
    pub reference: Reference,
    pub auth: RegistryAuth,
    /// `https://host[:port]` or `http://…`.
    pub base: String,
    pub retries: u32,
    /// The window over which a download must make [`MIN_BYTES_PER_WINDOW`] of progress.
    pub stall_window: Duration,
    /// The `Authorization` value, once known (`Some(None)`: none needed).
    authorization: Mutex<Option<Option<String>>>,
}

impl BlobFetcher {
    pub(crate) fn new(
        http: reqwest::Client,
        oci: Arc<Client>,
        reference: Reference,
        auth: RegistryAuth,
        base: String,
        retries: u32,
        stall_window: Duration,
    ) -> Self {
        BlobFetcher {
            http,
            oci,
            reference,
            auth,
            base,
            retries,
            stall_window,
            authorization: Mutex::new(None),
        }
    }

    /// The `Authorization` header for blob requests: a bearer token when the
    /// registry runs the token flow (oci-client does the challenge), else the
    /// basic credentials, else none.
    pub(crate) async fn authorization(&self, refresh: bool) -> io::Result<Option<String>> {
        let mut cached = self.authorization.lock().await;
        if !refresh && let Some(value) = cached.as_ref() {
            return Ok(value.clone());
        }
        let value = match &self.auth {
            RegistryAuth::Bearer(token) => Some(format!("Bearer {token}")),
            auth => match self
                .oci
                .auth(&self.reference, auth, RegistryOperation::Pull)
                .await
                .map_err(io::Error::other)?
            {
                Some(token) => Some(format!("Bearer {token}")),
                None => match auth {
                    RegistryAuth::Basic(user, password) => Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{user}:{password}"))
                    )),
                    _ => None,
                },
            },
        };
        *cached = Some(value.clone());
        Ok(value)
    }

    pub(crate) fn blob_url(&self, digest: &str) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.base,
            self.reference.repository()
        )
    }

    /// Streams the blob, or the bytes `range` of it, into `deliver` (which
    /// answers `false` when nobody wants more), retrying and resuming as
    /// needed. A range ends when its bytes are in, whatever the server sends.
    pub(crate) async fn download<F: Future<Output = io::Result<bool>>>(
        &self,
        digest: &str,
        range: Option<Range<u64>>,
        mut deliver: impl FnMut(Bytes) -> F,
    ) -> io::Result<()> {
        let url = self.blob_url(digest);
        let (from, len) = range.map_or((0, None), |r| (r.start, Some(r.end - r.start)));
        let mut authorization = self.authorization(false).await?;
        let mut reauthorized = false;
        let mut received: u64 = 0;
        let mut attempt = 0;
        loop {
            let mut request = self.http.get(&url);
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let at = from + received;
            match len {
                Some(len) => {
                    let last = from + len - 1;
                    request = request.header(RANGE, format!("bytes={at}-{last}"));
                }
                None if received > 0 => request = request.header(RANGE, format!("bytes={at}-")),
                None => {}
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(_) if attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(err) => return Err(io::Error::other(err)),
            };
            let status = response.status();
            let mut skip = match status {
                StatusCode::OK => at,
                StatusCode::PARTIAL_CONTENT => {
                    // Bytes from elsewhere than asked would be spooled where
                    // they do not belong (the digest would catch it, late).
                    if let Some(start) = content_range_start(response.headers())
                        && start != at
                    {
                        return Err(io::Error::other(format!(
                            "{url}: asked for bytes from {at}, the registry sent bytes from {start}"
                        )));
                    }
                    0
                }
                StatusCode::UNAUTHORIZED if !reauthorized => {
                    // A token may have expired mid-scan: ask once for a new one.
                    reauthorized = true;
                    authorization = self.authorization(true).await?;
                    continue;
                }
                s if (s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error())
                    && attempt < self.retries =>
                {
                    attempt += 1;
                    let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                    if wait > MAX_RETRY_AFTER {
                        return Err(io::Error::other(format!(
                            "{url}: HTTP {s}, and Retry-After asks for {} s",
                            wait.as_secs()
                        )));
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                s => return Err(io::Error::other(format!("{url}: HTTP {s}"))),
            };
            let mut response = response;
            let mut window = (Instant::now(), 0u64);
            let broken = loop {
                if window.0.elapsed() >= self.stall_window {
                    if window.1 < MIN_BYTES_PER_WINDOW {
                        break io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "{url}: transfer stalled: {} bytes in {} s, fewer than the {MIN_BYTES_PER_WINDOW} required",
                                window.1,
                                self.stall_window.as_secs_f32()
                            ),
                        );
                    }
                    window = (Instant::now(), 0);
                }
                match response.chunk().await {
                    Ok(Some(mut data)) => {
                        if skip > 0 {
                            let cut = (skip as usize).min(data.len());
                            let _ = data.split_to(cut);
                            skip -= cut as u64;
                            // Bytes skipped are bytes coming: not a stall.
                            window.1 += cut as u64;
                        }
                        if let Some(len) = len {
                            data.truncate((len - received).min(data.len() as u64) as usize);
                        }
                        if data.is_empty() {
                            continue;
                        }
                        received += data.len() as u64;
                        window.1 += data.len() as u64;
                        if !deliver(data).await? {
                            return Ok(()); // the reader is gone
                        }
                        if len == Some(received) {
                            return Ok(());
                        }
                    }
                    // A whole blob's end is checked by its digest; a range
                    // cut short is resumed.
                    Ok(None) if len.is_none() => return Ok(()),
                    Ok(None) => {
                        break io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "{url}: a range ended {} bytes short",
                                len.unwrap_or(0) - received
                            ),
                        );
                    }
                    Err(err) => break io::Error::other(err),
                }
            };
            // The connection broke mid-blob: resume from `received`.
            if attempt >= self.retries {
                return Err(broken);
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// Starts downloading `digest` and returns a reader over it.
pub(crate) fn open(
    runtime: &tokio::runtime::Runtime,
    fetcher: Arc<BlobFetcher>,
    digest: String,
) -> BlobReader {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    runtime.spawn(async move {
        let deliver = |data| {
            let tx = tx.clone();
            async move { Ok(tx.send(Ok(data)).await.is_ok()) }
        };
        if let Err(err) = fetcher.download(&digest, None, deliver).await {
            let _ = tx.send(Err(err)).await;
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

    #[test]
    fn content_range_gives_where_a_partial_body_starts() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_range_start(&headers), None);
        headers.insert(CONTENT_RANGE, "bytes 65536-131071/262144".parse().unwrap());
        assert_eq!(content_range_start(&headers), Some(65536));
        headers.insert(CONTENT_RANGE, "bytes */262144".parse().unwrap());
        assert_eq!(content_range_start(&headers), None);
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
