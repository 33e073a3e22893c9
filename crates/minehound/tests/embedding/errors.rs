//! Error kinds: bad input, failing storage and a broken engine told apart,
//! and the whole cause chain on one line.

use minehound::{Error, ErrorKind, LayerRequest, ScannerBuilder, SourceRequest};
use minehound_testdata::{Entry, demo_image, gzip, sha256_digest, tar_bytes, zstd};

use crate::async_store::Store;
use crate::{runtime, scanner, serial};

#[test]
fn corrupt_input_is_an_input_error() {
    let _serial = serial();
    let tar = tar_bytes(&[Entry::file("/etc/motd", "welcome\n".repeat(4000))]);
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    let mut bad_gzip = gz.clone();
    bad_gzip[20..60].fill(0xff);
    let mut bad_zstd = zs.clone();
    bad_zstd[8..40].fill(0xff);
    let cases: Vec<(&str, Vec<u8>, LayerRequest)> = vec![
        ("corrupt gzip", bad_gzip, LayerRequest::new("")),
        ("corrupt zstd", bad_zstd, LayerRequest::new("")),
        (
            "truncated gzip",
            gz[..gz.len() / 2].to_vec(),
            LayerRequest::new(""),
        ),
        (
            "not a tar",
            b"just some text, no tar header here\n".repeat(40),
            LayerRequest::new("application/octet-stream"),
        ),
        (
            "wrong digest",
            gz.clone(),
            LayerRequest::new("").digest(sha256_digest(b"something else")),
        ),
        ("wrong size", gz.clone(), LayerRequest::new("").size(3)),
        (
            "a document",
            gz.clone(),
            LayerRequest::new("application/vnd.oci.image.manifest.v1+json"),
        ),
    ];
    for (what, blob, request) in cases {
        let err = scanner().scan_layer_with(&blob[..], &request).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Input, "{what}: {}", err.chain());
        // The chain names every cause; Display only the first.
        let chain = err.chain().to_string();
        assert!(chain.starts_with(&err.to_string()), "{chain}");
        if what.starts_with("corrupt") || what.starts_with("truncated") {
            assert!(chain.contains("corrupt or truncated"), "{what}: {chain}");
            assert!(chain.len() > err.to_string().len(), "{what}: {chain}");
        }
    }
}

#[test]
fn a_missing_rules_file_is_an_engine_error() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("rules/extra.yar");
    let err = ScannerBuilder::new().rules(&missing).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Engine, "{}", err.chain());
    assert!(matches!(err, Error::Signatures(_)));
    let chain = err.chain().to_string();
    assert!(chain.contains(&missing.display().to_string()), "{chain}");

    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    std::fs::write(&missing, "rule broken { condition: }").unwrap();
    let err = ScannerBuilder::new().rules(&missing).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Engine, "{}", err.chain());
}

#[test]
fn storage_failures_are_io_and_missing_blobs_input() {
    let _serial = serial();
    let image = demo_image().build();
    let runtime = runtime();

    // The store fails in the middle of a layer: retry later.
    let mut store = Store::of(&image);
    store.failing = Some(image.layers[1].digest.clone());
    let err = runtime
        .block_on(scanner().scan_async_source(
            &store,
            &image.manifest.digest,
            SourceRequest::new("flaky"),
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{}", err.chain());
    assert!(
        err.chain().to_string().contains("connection reset"),
        "{}",
        err.chain()
    );

    // The manifest names a blob the store lacks: the image is incomplete.
    let mut store = Store::of(&image);
    store.remove(&image.layers[2].digest);
    let err = runtime
        .block_on(scanner().scan_async_source(
            &store,
            &image.manifest.digest,
            SourceRequest::new("incomplete"),
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{}", err.chain());

    // A manifest that is not one.
    let err = runtime
        .block_on(scanner().scan_async_source(
            &store,
            &image.config.digest,
            SourceRequest::new("not a manifest"),
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{}", err.chain());

    // Cancelled before it starts.
    let cancel = minehound::CancelToken::new();
    cancel.cancel();
    let err = runtime
        .block_on(scanner().scan_async_source(
            &Store::of(&image),
            &image.manifest.digest,
            SourceRequest::new("cancelled").cancel(cancel),
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{}", err.chain());
}
