use std::io::{self, Cursor, Read};

use crate::budget::{read_reserved, release_buffer};
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
    // The size is unknown until read: reserved as it comes.
    let _reserved = read_reserved(
        &mut reader,
        limits.max_file_size,
        0,
        &mut buf,
        &limits.memory_budget,
    )
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
    refuse_overlapping_members(&mut archive)?;
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
        // The declared size may lie: the reservation grows to what is read.
        let declared = member.size();
        let _reserved = read_reserved(
            &mut member,
            limits.max_file_size,
            declared,
            &mut buf,
            &limits.memory_budget,
        )
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
        release_buffer(&mut buf);
    }
    Ok(counts)
}

/// Refuses a zip whose members share bytes: no archiver writes one, and it is
/// how a kilobyte "non-recursive zip bomb" makes every member inflate the same
/// compressed kernel. Checked from the directory alone, before inflating anything.
fn refuse_overlapping_members(archive: &mut zip::ZipArchive<Cursor<&[u8]>>) -> Result<(), Error> {
    let mut spans = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        // Members that cannot be opened are dealt with by the walk.
        if let Ok(member) = archive.by_index_raw(index) {
            let end = member.data_start().saturating_add(member.compressed_size());
            spans.push((member.header_start(), end));
        }
    }
    spans.sort_unstable();
    match spans.windows(2).find(|pair| pair[1].0 < pair[0].1) {
        None => Ok(()),
        Some(pair) => Err(Error::Corrupt {
            entries: 0,
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "zip members overlap at offset {} (a zip bomb): members not read",
                    pair[1].0
                ),
            ),
        }),
    }
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

    #[derive(Default)]
    struct Members(Vec<String>);
    impl Visitor for Members {
        fn file(&mut self, file: FileEntry<'_>) -> Result<(), Error> {
            self.0.push(file.path.to_string());
            Ok(())
        }
        fn skipped(&mut self, path: &str, _: u64, reason: &str) {
            panic!("{path}: {reason}");
        }
    }

    #[test]
    fn zips_whose_members_overlap_are_refused_before_inflating() {
        let limits = Limits::default();
        let bomb = minehound_testdata::hostile::overlapping_zip(1000, 1 << 20).unwrap();
        let mut members = Members::default();
        let err = walk_nested(
            "/b.zip",
            &bomb,
            ArchiveFormat::Zip,
            1,
            &limits,
            &mut members,
        )
        .unwrap_err();
        assert!(members.0.is_empty(), "{:?}", members.0);
        let text = format!("{}", std::error::Error::source(&err).unwrap());
        assert!(text.contains("zip members overlap"), "{text}");

        // An honest zip, members side by side, is read as before.
        let zip = minehound_testdata::zip_bytes(&[("a", b"one"), ("b", b"two")]);
        let mut members = Members::default();
        walk_nested(
            "/ok.zip",
            &zip,
            ArchiveFormat::Zip,
            1,
            &limits,
            &mut members,
        )
        .unwrap();
        assert_eq!(members.0, ["/ok.zip!/a", "/ok.zip!/b"]);
    }
}
