//! An archive found inside a layer (tar, tar.gz, tar.zst, single .gz/.zst,
//! zip), opened level by level as the scanner does, down to the depth limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minehound_fuzz::LIMITS;
use minehound_unpack::{ArchiveFormat, Error, FileEntry, Visitor, walk_nested};

/// Opens archives found in archives, like the scanner's file checker.
struct Opener;

impl Visitor for Opener {
    fn file(&mut self, file: FileEntry<'_>) -> Result<(), Error> {
        assert!(file.data.len() as u64 <= LIMITS.max_file_size);
        assert!(file.path.contains('!'), "{}", file.path);
        if file.depth < LIMITS.max_depth
            && !file.truncated
            && let Some(format) = ArchiveFormat::sniff(file.data)
        {
            let _ = walk_nested(file.path, file.data, format, file.depth + 1, &LIMITS, self);
        }
        Ok(())
    }

    fn skipped(&mut self, _path: &str, _size: u64, _reason: &str) {}
}

fuzz_target!(|data: &[u8]| {
    let sniffed = ArchiveFormat::sniff(data);
    for format in [
        ArchiveFormat::Tar,
        ArchiveFormat::Gzip,
        ArchiveFormat::Zstd,
        ArchiveFormat::Zip,
    ] {
        // The sniffed format first, as the scanner would; the others too,
        // since a hostile file may carry several magics.
        if sniffed.is_some_and(|s| s != format) && data.len() % 2 == 0 {
            continue;
        }
        let _ = walk_nested("/opt/in.bin", data, format, 1, &LIMITS, &mut Opener);
    }
});
