//! Async scans under awkward callers and stores: a scan created but awaited
//! later, a blob that fails (and must not be read again), a store that keeps
//! handing over empty chunks, one that ignores the manifest size limit.

use std::future::Future;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use minehound::{
    AsyncBlob, AsyncImageSource, BoxFuture, ErrorKind, LayerRequest, ScannerBuilder, Severity,
    SourceError, SourceRequest,
};
use minehound_testdata::demo_image;

use crate::async_store::Store;
use crate::{runtime, scanner, serial};

/// Long enough for any scan here; a hang fails the test instead of the
/// suite.
const HANG: Duration = Duration::from_secs(15);

/// Runs `future` on `runtime`; `None` if it took longer than [`HANG`].
fn within<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> Option<F::Output> {
    runtime.block_on(async { tokio::time::timeout(HANG, future).await.ok() })
}

#[test]
fn an_image_scan_awaited_after_another_scan_does_not_hang_one_task_thread() {
    let _serial = serial();
    let scanner = ScannerBuilder::new().jobs(1).tasks(1).build().unwrap();
    let image = demo_image().build();
    let store = Store::of(&image);
    let upload = image.layers[1].bytes.clone();
    let finished = within(&runtime(), async {
        // Created first, awaited last: it must not take the only task
        // thread before it is polled, as it cannot go on unpolled.
        let image_scan = scanner.scan_async_source(
            &store,
            &image.manifest.digest,
            SourceRequest::new("team/app:1"),
        );
        let layer = scanner
            .scan_layer_async(Cursor::new(upload), LayerRequest::new(""))
            .await
            .unwrap();
        let report = image_scan.await.unwrap();
        (layer, report)
    });
    let (layer, report) =
        finished.expect("hung: the unawaited image scan held the only task thread");
    assert!(layer.highest_severity() >= Some(Severity::High));
    assert!(report.fails(Severity::High));
}

#[test]
fn a_layer_stream_awaited_after_another_scan_does_not_hang_one_task_thread() {
    let _serial = serial();
    let scanner = ScannerBuilder::new().jobs(1).tasks(1).build().unwrap();
    let image = demo_image().build();
    let store = Store::of(&image);
    let layer = &image.layers[1];
    let finished = within(&runtime(), async {
        let body = store.blob(&layer.digest).await.unwrap();
        let stream = scanner.scan_layer_stream(body, LayerRequest::new(""));
        let other = scanner
            .scan_layer_async(Cursor::new(layer.bytes.clone()), LayerRequest::new(""))
            .await
            .unwrap();
        (other, stream.await.unwrap())
    });
    let (other, streamed) =
        finished.expect("hung: the unawaited layer stream held the only task thread");
    assert_eq!(other.digest, layer.digest);
    assert_eq!(streamed.digest, layer.digest);
}

#[test]
fn an_unpolled_async_scan_queues_nothing() {
    let _serial = serial();
    let scanner = ScannerBuilder::new().jobs(1).tasks(1).build().unwrap();
    let image = demo_image().build();
    let store = Store::of(&image);
    let unpolled = scanner.scan_async_source(
        &store,
        &image.manifest.digest,
        SourceRequest::new("never awaited"),
    );
    // The only task thread is free: a scan behind it runs.
    let scan = within(
        &runtime(),
        scanner.scan_layer_async(
            Cursor::new(image.layers[0].bytes.clone()),
            LayerRequest::new(""),
        ),
    )
    .expect("the unpolled scan took the task thread")
    .unwrap();
    assert_eq!(scan.digest, image.layers[0].digest);
    assert!(!unpolled.cancel_token().is_cancelled());
    drop(unpolled);
    assert_eq!(store.opens(&image.layers[0].digest), 0);
}

/// A blob that hands over its first chunk, then fails, and counts (and
/// fails the test) any poll after the failure.
struct FailsOnce {
    chunk: Option<Vec<u8>>,
    failed: bool,
    after_failure: Arc<AtomicUsize>,
}

impl AsyncBlob for FailsOnce {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        Box::pin(async move {
            if self.failed {
                self.after_failure.fetch_add(1, Ordering::SeqCst);
                panic!("the blob was polled after it failed");
            }
            if let Some(chunk) = self.chunk.take() {
                return Ok(Some(chunk));
            }
            self.failed = true;
            Err(SourceError::Io {
                path: "object storage".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                ),
            })
        })
    }
}

#[test]
fn a_blob_that_failed_is_never_polled_again() {
    let _serial = serial();
    let layer = demo_image().build().layers[1].bytes.clone();
    let after_failure = Arc::new(AtomicUsize::new(0));
    let runtime = runtime();
    // The reader may take the error before the fetcher looks again, or
    // after: try both orders many times. (Which order comes is up to the
    // threads; the bridge's unit tests force the one that went wrong.)
    for round in 0..200 {
        let blob = FailsOnce {
            chunk: Some(layer[..layer.len() / 2].to_vec()),
            failed: false,
            after_failure: Arc::clone(&after_failure),
        };
        let err = within(
            &runtime,
            scanner().scan_layer_stream(blob, LayerRequest::new("")),
        )
        .expect("hung")
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "round {round}: {}", err.chain());
        assert!(
            err.chain().to_string().contains("connection reset"),
            "{}",
            err.chain()
        );
    }
    assert_eq!(after_failure.load(Ordering::SeqCst), 0);
}

/// A blob that gives `empty` empty chunks, each ready at once, then its
/// bytes.
struct Empties {
    empty: usize,
    bytes: Option<Vec<u8>>,
    calls: Arc<AtomicUsize>,
}

impl AsyncBlob for Empties {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let next = if self.empty > 0 {
            self.empty -= 1;
            Some(Vec::new())
        } else {
            self.bytes.take()
        };
        Box::pin(async move { Ok(next) })
    }
}

/// Polls `inner` and records the most `calls` made during one poll.
struct PerPoll<F> {
    inner: Pin<Box<F>>,
    calls: Arc<AtomicUsize>,
    most: usize,
    polls: usize,
}

impl<F: Future> Future for PerPoll<F> {
    type Output = (F::Output, usize, usize);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let before = self.calls.load(Ordering::Relaxed);
        let result = self.inner.as_mut().poll(cx);
        let during = self.calls.load(Ordering::Relaxed) - before;
        self.most = self.most.max(during);
        self.polls += 1;
        result.map(|out| (out, self.most, self.polls))
    }
}

#[test]
fn a_store_handing_over_empty_chunks_does_not_hold_the_callers_thread() {
    let _serial = serial();
    let layer = demo_image().build().layers[1].clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let blob = Empties {
        empty: 100_000,
        bytes: Some(layer.bytes.clone()),
        calls: Arc::clone(&calls),
    };
    let scan = PerPoll {
        inner: Box::pin(scanner().scan_layer_stream(blob, LayerRequest::new(""))),
        calls: Arc::clone(&calls),
        most: 0,
        polls: 0,
    };
    let (result, most, polls) = within(&runtime(), scan).expect("hung");
    eprintln!(
        "{} chunks asked for over {polls} polls, at most {most} in one",
        calls.load(Ordering::Relaxed)
    );
    assert_eq!(result.unwrap().digest, layer.digest);
    assert!(
        most <= 1_000,
        "one poll asked the store for {most} chunks: the caller's thread was held"
    );
}

/// A store whose manifests ignore the size limit.
struct Oversized(Store);

impl AsyncImageSource for Oversized {
    fn name(&self) -> String {
        "oversized".into()
    }

    fn manifest<'a>(
        &'a self,
        digest: &'a str,
        _limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            let mut bytes = self.0.manifest(digest, u64::MAX).await?;
            // Valid JSON still, but past any limit.
            bytes.extend(std::iter::repeat_n(b' ', 8 << 20));
            Ok(bytes)
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn AsyncBlob + 'a>, SourceError>> {
        self.0.blob(digest)
    }
}

#[test]
fn a_manifest_past_the_limit_is_refused_even_when_the_store_ignores_it() {
    let _serial = serial();
    let image = demo_image().build();
    let store = Oversized(Store::of(&image));
    let err = within(
        &runtime(),
        scanner().scan_async_source(&store, &image.manifest.digest, SourceRequest::new("big")),
    )
    .expect("hung")
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{}", err.chain());
    assert!(
        matches!(&err, minehound::Error::Source(SourceError::TooLarge { .. })),
        "{}",
        err.chain()
    );
}

/// A blob served in chunks of `size` bytes, counting what was served.
struct BigChunks {
    bytes: Vec<u8>,
    at: usize,
    size: usize,
    served: Arc<AtomicUsize>,
}

impl AsyncBlob for BigChunks {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        let end = (self.at + self.size).min(self.bytes.len());
        let chunk = self.bytes[self.at..end].to_vec();
        self.at = end;
        self.served.fetch_add(chunk.len(), Ordering::SeqCst);
        Box::pin(async move { Ok((!chunk.is_empty()).then_some(chunk)) })
    }
}

#[test]
fn large_chunks_are_not_fetched_ahead_past_a_few_mib() {
    let _serial = serial();
    const MIB: usize = 1 << 20;
    let scanner = ScannerBuilder::new().jobs(1).tasks(1).build().unwrap();
    // The only task thread is busy, so nothing reads what is fetched.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let busy = scanner.spawn_task(minehound::CancelToken::new(), move |_| {
        let _ = held.recv_timeout(HANG);
    });
    let layer = minehound_testdata::tar_bytes(&[minehound_testdata::Entry::file(
        "/srv/blob.bin",
        vec![7u8; 32 * MIB],
    )]);
    let served = Arc::new(AtomicUsize::new(0));
    let blob = BigChunks {
        bytes: layer,
        at: 0,
        size: 2 * MIB,
        served: Arc::clone(&served),
    };
    let runtime = runtime();
    let (ahead, scan) = within(&runtime, async {
        let mut scan = std::pin::pin!(scanner.scan_layer_stream(blob, LayerRequest::new("")));
        for _ in 0..10 {
            let done = std::future::poll_fn(|cx| Poll::Ready(scan.as_mut().poll(cx).is_ready()));
            assert!(!done.await, "scanned while its task thread was busy");
            tokio::task::yield_now().await;
        }
        let ahead = served.load(Ordering::SeqCst);
        release.send(()).unwrap();
        busy.await;
        (ahead, scan.await)
    })
    .expect("hung");
    eprintln!("{} MiB fetched ahead in 2 MiB chunks", ahead / MIB);
    assert_eq!(scan.unwrap().files, 1);
    // 4 MiB waiting, plus the chunk that crossed it: not CHUNKS_AHEAD of
    // them (8 MiB).
    assert!(ahead <= 6 * MIB, "{} MiB fetched ahead", ahead / MIB);
    assert!(ahead >= 2 * MIB);
}
