use std::io::{self, Cursor, Read};

use crate::compression::{Compression, decompress};
use crate::walk::{WalkContext, classify_io, walk_tar};
use crate::{Error, FileEntry, LayerCounts, Limits, Visitor, join_nested};

/// An archive format minehound opens when it finds one inside a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// POSIX / GNU tar.
    Tar,
    /// gzip: a compressed tar, or one compressed file.
    Gzip,
    /// Zstandard: a compressed tar, or one compressed file.
    Zstd,
    /// PKZIP (also jar, wheel, apk…).
    Zip,
}

impl ArchiveFormat {
    /// The archive format of a file that starts with `head`, if any.
    pub fn sniff(head: &[u8]) -> Option<ArchiveFormat> {
        if is_tar(head) {
            return Some(ArchiveFormat::Tar);
        }
        match Compression::sniff(head) {
            Compression::Gzip => return Some(ArchiveFormat::Gzip),
            Compression::Zstd => return Some(ArchiveFormat::Zstd),
            Compression::None => {}
        }
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Some(ArchiveFormat::Zip);
        }
        None
    }
}

/// Whether `head` starts with a tar header (ustar magic at offset 257).
fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

/// Walks the members of an archive file found at `outer` (already in memory).
/// Members are reported as `outer!/member` at `depth`; whiteout names have no
/// special meaning inside them.
pub fn walk_nested(
    outer: &str,
    data: &[u8],
    format: ArchiveFormat,
    depth: u32,
    limits: &Limits,
    visitor: &mut dyn Visitor,
) -> Result<LayerCounts, Error> {
    let ctx = WalkContext {
        prefix: Some(outer),
        depth,
    };
    match format {
        ArchiveFormat::Tar => walk_tar(Cursor::new(data), limits, visitor, &ctx),
        ArchiveFormat::Gzip | ArchiveFormat::Zstd => {
            let (compression, mut reader) =
                decompress(data, limits.max_layer_size).map_err(|e| classify_io(e, 0))?;
            let mut head = Vec::with_capacity(512);
            (&mut reader)
                .take(512)
                .read_to_end(&mut head)
                .map_err(|e| classify_io(e, 0))?;
            let tar = is_tar(&head);
            let whole = Cursor::new(head).chain(reader);
            let mut counts = if tar {
                walk_tar(whole, limits, visitor, &ctx)?
            } else {
                single_member(outer, whole, depth, limits, visitor)?
            };
            counts.compression = Some(compression);
            Ok(counts)
        }
        ArchiveFormat::Zip => walk_zip(outer, data, depth, limits, visitor),
    }
}

/// A compressed file that is not a tar: its content is one member, named after
/// the outer file without its compression suffix.
fn single_member(
    outer: &str,
    mut reader: impl Read,
    depth: u32,
    limits: &Limits,
    visitor: &mut dyn Visitor,
) -> Result<LayerCounts, Error> {
    let file_name = outer.rsplit(['/', '!']).next().unwrap_or(outer);
    let inner = ["gz", "tgz", "zst", "zstd"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(&format!(".{ext}")))
        .unwrap_or(file_name);
    let path = join_nested(outer, &format!("/{inner}"));
    let mut buf = Vec::new();
    (&mut reader)
        .take(limits.max_file_size)
        .read_to_end(&mut buf)
        .map_err(|e| classify_io(e, 0))?;
    // Count (and bound) the rest without keeping it.
    let rest = io::copy(&mut reader, &mut io::sink()).map_err(|e| classify_io(e, 1))?;
    let size = buf.len() as u64 + rest;
    visitor.file(FileEntry {
        path: &path,
        mode: 0o644,
        size,
        data: &buf,
        truncated: rest > 0,
        depth,
    })?;
    Ok(LayerCounts {
        entries: 1,
        files: 1,
        uncompressed_bytes: size,
        compression: None,
    })
}

fn walk_zip(
    outer: &str,
    data: &[u8],
    depth: u32,
    limits: &Limits,
    visitor: &mut dyn Visitor,
) -> Result<LayerCounts, Error> {
    let corrupt = |entries, e: zip::result::ZipError| Error::Corrupt {
        entries,
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| corrupt(0, e))?;
    let mut counts = LayerCounts::default();
    let mut buf = Vec::new();
    for index in 0..archive.len() {
        counts.entries += 1;
        if counts.entries > limits.max_entries {
            return Err(Error::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let mut member = match archive.by_index(index) {
            Ok(member) => member,
            Err(zip::result::ZipError::UnsupportedArchive(why)) => {
                counts.files += 1;
                let path = join_nested(outer, &format!("/#{index}"));
                visitor.skipped(&path, 0, &format!("zip member not readable: {why}"));
                continue;
            }
            Err(e) => return Err(corrupt(counts.entries, e)),
        };
        let path = join_nested(outer, &crate::normalize(member.name_raw()));
        if member.is_dir() {
            visitor.other_entry(&path);
            continue;
        }
        counts.files += 1;
        buf.clear();
        (&mut member)
            .take(limits.max_file_size)
            .read_to_end(&mut buf)
            .map_err(|e| classify_io(e, counts.entries))?;
        // The declared size may lie either way: judge by the bytes that come out.
        let mut probe = [0u8; 1];
        let truncated = member
            .read(&mut probe)
            .map_err(|e| classify_io(e, counts.entries))?
            > 0;
        let size = if truncated {
            member.size().max(limits.max_file_size + 1)
        } else {
            buf.len() as u64
        };
        counts.uncompressed_bytes += buf.len() as u64;
        if counts.uncompressed_bytes > limits.max_layer_size {
            return Err(Error::LayerTooLarge {
                limit: limits.max_layer_size,
            });
        }
        visitor.file(FileEntry {
            path: &path,
            mode: member.unix_mode().unwrap_or(0o644),
            size,
            data: &buf,
            truncated,
            depth,
        })?;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_format() {
        let mut tar_head = vec![0u8; 512];
        tar_head[257..262].copy_from_slice(b"ustar");
        assert_eq!(ArchiveFormat::sniff(&tar_head), Some(ArchiveFormat::Tar));
        assert_eq!(
            ArchiveFormat::sniff(&[0x1f, 0x8b, 8]),
            Some(ArchiveFormat::Gzip)
        );
        assert_eq!(
            ArchiveFormat::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(ArchiveFormat::Zstd)
        );
        assert_eq!(
            ArchiveFormat::sniff(b"PK\x03\x04...."),
            Some(ArchiveFormat::Zip)
        );
        assert_eq!(ArchiveFormat::sniff(b"\x7fELF"), None);
    }
}
