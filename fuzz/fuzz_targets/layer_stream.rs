//! A layer blob: gzip / zstd / plain tar, GNU long names and PAX records,
//! sparse entries, whiteouts and opaque directories. A zstd stream is also
//! decoded frame by frame on several threads, and must give what one
//! decoder gives: the same bytes, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minehound_fuzz::LIMITS;
use std::io::Read;

use minehound_unpack::{
    Compression, Error, FileEntry, Visitor, decompress, pump_decompressed, read_ahead, walk_layer,
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
    let limit = LIMITS.max_layer_size;
    let alone = decompress(data, limit).and_then(|(_, mut reader)| {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    let (pump, mut reader) = read_ahead();
    let side_by_side = std::thread::scope(|scope| {
        let pumping = scope.spawn(move || pump_decompressed(data, limit, 3, &pump));
        let mut out = Vec::new();
        let read = reader.read_to_end(&mut out).map(|_| out);
        drop(reader);
        // Joined, so the thread and its thread-locals are gone when the
        // leak check runs.
        let _ = pumping.join();
        read
    });
    match (alone, side_by_side) {
        (Ok(a), Ok(b)) => assert!(a == b, "frames decoded side by side differ"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "one decoder {:?}, frame decoders {:?}",
            a.map(|v| v.len()),
            b.map(|v| v.len())
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    if Compression::sniff(data) == Compression::Zstd {
        zstd_both_ways(data);
    }
    let mut seen = Counted(0);
    if let Ok(counts) = walk_layer(data, &LIMITS, &mut seen) {
        assert_eq!(counts.files, seen.0);
        assert!(counts.uncompressed_bytes <= LIMITS.max_layer_size);
    }
});
