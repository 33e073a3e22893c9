//! A layer blob: gzip / zstd / plain tar, GNU long names and PAX records,
//! sparse entries, whiteouts and opaque directories.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minehound_fuzz::LIMITS;
use minehound_unpack::{Error, FileEntry, Visitor, walk_layer};

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

fuzz_target!(|data: &[u8]| {
    let mut seen = Counted(0);
    if let Ok(counts) = walk_layer(data, &LIMITS, &mut seen) {
        assert_eq!(counts.files, seen.0);
        assert!(counts.uncompressed_bytes <= LIMITS.max_layer_size);
    }
});
