//! The registry's pattern: each layer scanned as it is uploaded, then the
//! image when its manifest is pushed, each layer read once.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use minehound::{
    AsyncImageSource, Error, ErrorKind, LayerCache, LayerError, LayerRequest, Scanner,
    ScannerBuilder, Severity, SourceRequest, Status,
};
use minehound_testdata::{DEMO_DROPPER_PATH, Entry, demo_image, gzip, tar_bytes};

use crate::async_store::Store;
use crate::{runtime, serial};

/// Uploads every layer of the demo image (scanning each from the store as
/// it arrives), then scans the image; returns the report and the store.
fn upload_then_manifest(verifies: bool) -> (minehound::Report, Store, Vec<String>) {
    upload_then_manifest_as(verifies, String::clone)
}

/// A scanner with a layer cache of its own (kept while the scanner lives).
fn cached_scanner() -> (Scanner, tempfile::TempDir) {
    let cache_dir = tempfile::tempdir().unwrap();
    let scanner = ScannerBuilder::new()
        .jobs(2)
        .cache(LayerCache::open(cache_dir.path()).unwrap())
        .build()
        .unwrap();
    (scanner, cache_dir)
}

/// [`upload_then_manifest`], the upload naming each layer's digest as
/// `spell` writes it.
fn upload_then_manifest_as(
    verifies: bool,
    spell: impl Fn(&String) -> String,
) -> (minehound::Report, Store, Vec<String>) {
    let image = demo_image().build();
    let mut store = Store::of(&image);
    store.verifies = verifies;
    let (scanner, _cache_dir) = cached_scanner();
    let runtime = runtime();
    let layers: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
    runtime.block_on(async {
        for digest in &layers {
            // The upload's body, as the registry streams it in.
            let body = store.blob(digest).await.unwrap();
            let request = LayerRequest::new("application/octet-stream").digest(spell(digest));
            let scan = scanner.scan_layer_stream(body, request).await.unwrap();
            assert_eq!(&scan.digest, digest);
        }
    });
    for digest in &layers {
        assert_eq!(store.opens(digest), 1, "upload read {digest}");
    }
    let report = runtime
        .block_on(scanner.scan_async_source(
            &store,
            &image.manifest.digest,
            SourceRequest::new("team/app:1"),
        ))
        .unwrap();
    assert_eq!(store.opens(&image.config.digest), 1);
    (report, store, layers)
}

#[test]
fn upload_then_manifest_reads_each_layer_once() {
    let _serial = serial();
    let (report, store, layers) = upload_then_manifest(true);
    for digest in &layers {
        assert_eq!(store.opens(digest), 1, "{digest} read again for the image");
    }
    assert_eq!(report.stats.layers_cached, layers.len() as u64);
    // The verdict is the one a fresh scan gives.
    assert!(report.fails(Severity::High));
    let dropper: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.path == DEMO_DROPPER_PATH)
        .collect();
    assert!(!dropper.is_empty());
    assert!(dropper.iter().all(|f| f.status == Status::Deleted));
    assert!(dropper.iter().all(|f| f.layer.index == 1));
}

#[test]
fn a_store_that_does_not_vouch_for_digests_has_each_cached_layer_hashed() {
    let _serial = serial();
    let (report, store, layers) = upload_then_manifest(false);
    // Each layer's result still comes from the upload's scan, but its bytes
    // are read once more to be hashed against the digest.
    assert_eq!(report.stats.layers_cached, layers.len() as u64);
    for digest in &layers {
        assert_eq!(store.opens(digest), 2, "{digest}");
    }
    assert!(report.fails(Severity::High));
}

#[test]
fn an_upload_digest_in_upper_case_is_checked_and_cached_as_lower_case() {
    let _serial = serial();
    // `sha256:ABCD…`, as some registries spell it: the same digest.
    let (report, store, layers) = upload_then_manifest_as(true, |d| d.to_uppercase());
    for digest in &layers {
        assert_eq!(store.opens(digest), 1, "{digest} read again for the image");
    }
    assert_eq!(report.stats.layers_cached, layers.len() as u64);
}

/// A reader that counts the bytes taken from it.
struct Counted<'a>(&'a [u8], Arc<AtomicU64>);

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn an_invalid_upload_digest_is_bad_input_named_before_a_byte_is_read() {
    let _serial = serial();
    let (scanner, _cache_dir) = cached_scanner();
    let blob = gzip(&tar_bytes(&[Entry::file("/etc/motd", "welcome\n")]));
    let hex = "0123456789abcdef".repeat(4);
    for bad in [
        "sha256:not-hex".to_string(),
        format!("sha256:{}", &hex[1..]),
        format!("sha512:{hex}{hex}"),
        hex.clone(),
        format!("sha256:../../{}", &hex[6..]),
    ] {
        let read = Arc::new(AtomicU64::new(0));
        let request = LayerRequest::new("application/octet-stream").digest(bad.clone());
        let err = scanner
            .scan_layer_with(Counted(&blob, Arc::clone(&read)), &request)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Input, "{bad}: {}", err.chain());
        assert!(
            matches!(&err, Error::InvalidDigest { digest } if *digest == bad),
            "{bad}: {}",
            err.chain()
        );
        assert!(err.to_string().contains(&bad), "{err}");
        assert_eq!(read.load(Ordering::Relaxed), 0, "{bad}: the layer was read");
    }
}

#[test]
fn an_upload_that_does_not_match_its_digest_leaves_nothing_in_the_cache() {
    let _serial = serial();
    let image = demo_image().build();
    let mut store = Store::of(&image);
    store.verifies = true;
    let (scanner, _cache_dir) = cached_scanner();
    // The miner's layer is X; the upload claims to be X but holds clean
    // bytes Y.
    let x = &image.layers[1].digest;
    let y = gzip(&tar_bytes(&[Entry::file("/etc/motd", "nothing to see\n")]));
    let request = LayerRequest::new("application/octet-stream").digest(x.clone());
    let err = scanner.scan_layer_with(&y[..], &request).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{}", err.chain());
    assert!(
        matches!(
            &err,
            Error::LayerStream {
                source: LayerError::DigestMismatch { expected, .. },
                ..
            } if expected == x
        ),
        "{}",
        err.chain()
    );
    // The image scan reads X afresh: the cache held nothing for it.
    let report = runtime()
        .block_on(scanner.scan_async_source(
            &store,
            &image.manifest.digest,
            SourceRequest::new("team/app:1"),
        ))
        .unwrap();
    assert_eq!(store.opens(x), 1, "the image scan did not read {x}");
    assert_eq!(report.stats.layers_cached, 0);
    assert!(
        report.fails(Severity::High),
        "the clean upload's verdict was reused"
    );
    assert!(report.findings.iter().any(|f| f.path == DEMO_DROPPER_PATH));
}
