//! A layer blob: gzip / zstd / plain tar, GNU long names and PAX records,
//! sparse entries, whiteouts and opaque directories. A zstd stream is also
//! decoded frame by frame on several threads, and a gzip stream inflated
//! from several offsets at once by several threads: each must give what one
//! decoder gives, the same bytes and the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minehound_fuzz::LIMITS;
use std::io::Read;

use std::sync::Arc;

use minehound_unpack::{
    Compression, Error, FileEntry, ReadAt, Visitor, decompress, pump_decompressed,
    pump_decompressed_at, read_ahead, walk_layer,
};

struct Counted(u64);

impl Visitor for Counted {
    fn file(&mut self, file: FileEntry<'_>) -> Result<(), Error> {
        // What a layer hands over never exceeds the file size limit.
        assert!(file.data.len() as u64 <= LIMITS.max_file_size);
        assert_eq!(file.truncated, file.size > LIMITS.max_file_size);
        assert!(file.path.starts_with('/'), "{}", file.path);
        self.0 += 1;
        Ok(())
    }

    fn skipped(&mut self, path: &str, _size: u64, reason: &str) {
        assert!(path.starts_with('/') && !reason.is_empty());
        self.0 += 1;
    }
}

/// The stream as one decoder gives it, and as the frame decoders do.
fn zstd_both_ways(data: &[u8]) {
    both_ways(data, |data, limit, pump| {
        pump_decompressed(data, limit, 3, pump);
    });
}

/// The stream as flate2 gives it, and as three threads inflating from
/// several offsets at once do: the same bytes, then the same error.
fn gzip_both_ways(data: &[u8]) {
    both_ways(data, |data, limit, pump| {
        let at: Arc<dyn ReadAt> = Arc::new(data.to_vec());
        pump_decompressed_at(data, at, 3, limit, 0, pump);
    });
}

fn both_ways(data: &[u8], pump_side_by_side: impl FnOnce(&[u8], u64, &minehound_unpack::ReadAhead) + Send) {
    let limit = LIMITS.max_layer_size;
    let alone = decompress(data, limit).and_then(|(_, mut reader)| {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    let (pump, mut reader) = read_ahead();
    let side_by_side = std::thread::scope(|scope| {
        let pumping = scope.spawn(move || pump_side_by_side(data, limit, &pump));
        let mut out = Vec::new();
        let read = reader.read_to_end(&mut out).map(|_| out);
        drop(reader);
        // Joined, so the thread and its thread-locals are gone when the
        // leak check runs.
        let _ = pumping.join();
        read
    });
    match (alone, side_by_side) {
        (Ok(a), Ok(b)) => assert!(a == b, "decoded side by side differ"),
        (Err(a), Err(b)) if Compression::sniff(data) == Compression::Gzip => {
            assert_eq!(a.to_string(), b.to_string())
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "one decoder {:?}, frame decoders {:?}",
            a.map(|v| v.len()),
            b.map(|v| v.len())
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    match Compression::sniff(data) {
        Compression::Zstd => zstd_both_ways(data),
        Compression::Gzip => gzip_both_ways(data),
        Compression::None => {}
    }
    let mut seen = Counted(0);
    if let Ok(counts) = walk_layer(data, &LIMITS, &mut seen) {
        assert_eq!(counts.files, seen.0);
        assert!(counts.uncompressed_bytes <= LIMITS.max_layer_size);
    }
});
