//! Deterministic compressors (gzip, zstd, zip) and the matching decompressors.
//!
//! Writing into a `Vec` cannot fail, so the writers return bytes, not `Result`s.

use std::io::{Cursor, Read, Write};

use flate2::{Compression as Level, GzBuilder, read::GzDecoder};
use zip::{CompressionMethod, DateTime, ZipWriter, write::SimpleFileOptions};

const IN_MEMORY: &str = "compressing into memory cannot fail";

/// Gzip with a fixed header: no file name, mtime 0, OS "unknown" (255), as
/// reproducible image builders write it.
///
/// The bytes are stable for a given flate2 / zlib-rs version; a backend upgrade
/// may change them (the digests tests compare are always recomputed, never pinned).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Level::default());
    encoder.write_all(bytes).expect(IN_MEMORY);
    encoder.finish().expect(IN_MEMORY)
}

/// A single zstd frame at level 3 (zstd's and containerd's default), no checksum.
pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).expect(IN_MEMORY)
}

/// A zip archive of `(name, data)` members, deflated, every timestamp the DOS
/// epoch (1980-01-01) and mode 0644, in the order given.
pub fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        writer.start_file(*name, options).expect(IN_MEMORY);
        writer.write_all(data).expect(IN_MEMORY);
    }
    writer.finish().expect(IN_MEMORY).into_inner()
}

/// Undoes the compression a layer media type names (`+gzip`/`.gzip`, `+zstd`/
/// `.zstd`, anything else is plain tar). Docker archives need the plain tar.
pub(crate) fn decompress_layer(media_type: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        GzDecoder::new(bytes).read_to_end(&mut out)?;
    } else if media_type.ends_with("zstd") {
        out = zstd::stream::decode_all(bytes)?;
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_header_has_no_name_and_no_mtime() {
        let gz = gzip(b"hello");
        assert_eq!(
            &gz[..4],
            &[0x1f, 0x8b, 8, 0],
            "magic, deflate, no FNAME flag"
        );
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(gz[9], 255, "OS unknown");
        assert_eq!(gz, gzip(b"hello"));
    }

    #[test]
    fn compressors_round_trip() {
        let data = b"some layer bytes".repeat(50);
        let gz = decompress_layer("application/vnd.oci.image.layer.v1.tar+gzip", &gzip(&data));
        assert_eq!(gz.unwrap(), data);
        let zst = decompress_layer("application/vnd.oci.image.layer.v1.tar+zstd", &zstd(&data));
        assert_eq!(zst.unwrap(), data);
    }

    #[test]
    fn zip_is_deterministic_and_readable() {
        let files: &[(&str, &[u8])] = &[("a.txt", b"alpha"), ("dir/b.bin", &[0, 1, 2])];
        let bytes = zip_bytes(files);
        assert_eq!(bytes, zip_bytes(files));
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        archive
            .by_name("a.txt")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "alpha");
        assert_eq!(archive.len(), 2);
    }
}
