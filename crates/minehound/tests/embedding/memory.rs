//! An image from an async store is scanned a layer's working set at a
//! time: the heap grows with the workers, not with the image.

use minehound::{ScannerBuilder, Severity, SourceRequest};
use minehound_testdata::{BuiltImage, Compression, Entry, ImageSpec, Layer, demo_image};

use crate::async_store::Store;
use crate::{HEAP, runtime, serial};

const MIB: f64 = 1024.0 * 1024.0;
/// Files per noise layer, and their size: 8 MiB a layer.
const FILES: usize = 16;
const FILE: usize = 512 * 1024;

/// Bytes that do not compress (xorshift), so a layer's blob is its size.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The demo's miner layer, then `noise_layers` layers of 8 MiB each, plain,
/// gzip and zstd in turn.
fn image(noise_layers: usize) -> BuiltImage {
    let mut layers = vec![demo_image().layers[1].clone()];
    for i in 0..noise_layers {
        let compression = [Compression::None, Compression::Gzip, Compression::Zstd][i % 3];
        layers.push(Layer {
            entries: (0..FILES)
                .map(|f| {
                    Entry::file(
                        &format!("/srv/data{i}/part{f}.bin"),
                        noise((i * FILES + f) as u64, FILE),
                    )
                })
                .collect(),
            compression,
            created_by: format!("COPY data{i} /srv/"),
        });
    }
    ImageSpec {
        layers,
        ..ImageSpec::default()
    }
    .build()
}

/// Scans `image` from an async store; returns the heap's peak above what it
/// held before (the store included), and the store's size.
fn peak_while_scanning(image: &BuiltImage) -> (usize, u64) {
    // Files handed to idle workers near the end of a scan are copies, bounded
    // on their own (half the file size limit queued, one file per helper, all
    // within the memory budget); whether a scan gets there is timing, which
    // this comparison of two images must not depend on.
    let scanner = ScannerBuilder::new()
        .jobs(2)
        .share_files(false)
        .build()
        .unwrap();
    let store = Store::of(image);
    let runtime = runtime();
    let digest = image.manifest.digest.clone();
    HEAP.reset_peak_usage();
    let before = HEAP.current_usage();
    let report = runtime
        .block_on(scanner.scan_async_source(&store, &digest, SourceRequest::new("big")))
        .unwrap_or_else(|e| panic!("{}", e.chain()));
    let peak = HEAP.peak_usage().saturating_sub(before);
    assert!(report.fails(Severity::High));
    assert_eq!(report.stats.layers as usize, image.layers.len());
    // Every blob was read once, whole.
    let blobs: u64 = image.blobs().map(|b| b.size()).sum();
    assert_eq!(
        store.served.load(std::sync::atomic::Ordering::Relaxed),
        blobs
    );
    (peak, store.size())
}

#[test]
fn an_async_store_image_is_scanned_in_a_layers_working_set() {
    let _serial = serial();
    let small = image(2);
    let large = image(8);
    let (small_peak, small_size) = peak_while_scanning(&small);
    drop(small);
    let (large_peak, large_size) = peak_while_scanning(&large);
    eprintln!(
        "heap peak above the store while scanning: {:.1} MiB for a {:.1} MiB image of 3 layers, \
         {:.1} MiB for a {:.1} MiB image of 9 layers (2 workers, 8 MiB layers, {} KiB chunks)",
        small_peak as f64 / MIB,
        small_size as f64 / MIB,
        large_peak as f64 / MIB,
        large_size as f64 / MIB,
        crate::async_store::CHUNK / 1024,
    );
    // Not the image: a fraction of it, and no more for four times the layers.
    assert!(
        (large_peak as u64) < large_size / 4,
        "{large_peak} bytes for an image of {large_size}"
    );
    assert!(
        large_peak < small_peak + small_peak / 2 + (2 << 20),
        "the peak grew with the image: {small_peak} -> {large_peak}"
    );
}
