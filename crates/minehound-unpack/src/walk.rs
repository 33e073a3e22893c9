use std::io::{self, Read};

use tar::EntryType;

use crate::budget::{Reservation, read_reserved, release_buffer};
use crate::compression::{Compression, decompress, limit_exceeded};
use crate::{Error, Limits, normalize};

/// One regular file of a layer or nested archive, with its bytes.
#[derive(Debug)]
pub struct FileEntry<'a> {
    /// Absolute path; members of nested archives read `outer!/inner`.
    pub path: &'a str,
    /// Unix mode bits from the tar header.
    pub mode: u32,
    /// Size as the archive declares it.
    pub size: u64,
    /// The file's bytes: all of them, or the first [`Limits::max_file_size`].
    pub data: &'a [u8],
    /// Whether `data` stops short of `size` because of the size limit.
    pub truncated: bool,
    /// 0 for a file of the layer itself, 1 for a member of an archive in it, …
    pub depth: u32,
}

/// A file's bytes with their share of the memory budget: the bytes go back
/// to the budget when the reservation is dropped.
#[derive(Debug)]
pub struct FileBuffer {
    /// The file's bytes, as in [`FileEntry::data`].
    pub data: Vec<u8>,
    /// What `data` holds of the budget.
    pub reservation: Reservation,
}

/// A regular file of a tar walk whose buffer its visitor may keep, see
/// [`Visitor::owned_file`].
#[derive(Debug)]
pub struct OwnedFile<'a> {
    /// As in [`FileEntry::path`].
    pub path: &'a str,
    /// As in [`FileEntry::mode`].
    pub mode: u32,
    /// As in [`FileEntry::size`].
    pub size: u64,
    /// The file's bytes and their reservation.
    pub buffer: FileBuffer,
    /// As in [`FileEntry::truncated`].
    pub truncated: bool,
    /// As in [`FileEntry::depth`].
    pub depth: u32,
}

impl OwnedFile<'_> {
    /// The file, borrowed.
    pub fn entry(&self) -> FileEntry<'_> {
        FileEntry {
            path: self.path,
            mode: self.mode,
            size: self.size,
            data: &self.buffer.data,
            truncated: self.truncated,
            depth: self.depth,
        }
    }
}

/// Receives what a walk finds, in archive order.
pub trait Visitor {
    /// A regular file (or archive member) and its bytes.
    fn file(&mut self, file: FileEntry<'_>) -> Result<(), Error>;

    /// A regular file of a tar stream, with a buffer the visitor may keep
    /// (to check the file on another thread without copying it): it then
    /// returns `None`, and the walk reads the next file into a new buffer.
    /// By default the file goes to [`file`](Self::file) and its buffer back
    /// to the walk.
    fn owned_file(&mut self, file: OwnedFile<'_>) -> Result<Option<FileBuffer>, Error> {
        self.file(file.entry())?;
        Ok(Some(file.buffer))
    }

    /// A file that exists but whose bytes were not read, and why.
    fn skipped(&mut self, path: &str, size: u64, reason: &str);

    /// A whiteout: this layer deletes `path` from the layers below.
    fn whiteout(&mut self, _path: &str) {}

    /// An opaque directory: this layer hides everything below `dir` in lower layers.
    fn opaque_dir(&mut self, _dir: &str) {}

    /// Any non-regular entry (directory, link, device); it shadows lower layers.
    fn other_entry(&mut self, _path: &str) {}
}

/// What a walk read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerCounts {
    /// Tar entries of every kind.
    pub entries: u64,
    /// Regular files handed to [`Visitor::file`] or [`Visitor::skipped`].
    pub files: u64,
    /// Bytes of tar stream after decompression.
    pub uncompressed_bytes: u64,
    /// The compression found.
    pub compression: Option<Compression>,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Walks one layer blob (gzip, zstd or plain tar), applying whiteout semantics.
pub fn walk_layer<R: Read>(
    blob: R,
    limits: &Limits,
    visitor: &mut dyn Visitor,
) -> Result<LayerCounts, Error> {
    let (compression, reader) =
        decompress(blob, limits.max_layer_size).map_err(|e| classify_io(e, 0))?;
    let mut counts = walk_tar(reader, limits, visitor, &WalkContext::layer())?;
    counts.compression = Some(compression);
    Ok(counts)
}

/// Walks a layer's tar stream that is already decompressed (for callers that
/// hash the uncompressed bytes themselves), applying whiteout semantics.
pub fn walk_layer_tar<R: Read>(
    tar: R,
    limits: &Limits,
    visitor: &mut dyn Visitor,
) -> Result<LayerCounts, Error> {
    walk_tar(tar, limits, visitor, &WalkContext::layer())
}

/// Where a tar stream sits: a layer (whiteouts apply) or an archive inside one.
pub(crate) struct WalkContext<'p> {
    /// Path of the enclosing archive file, if nested.
    pub prefix: Option<&'p str>,
    pub depth: u32,
}

impl WalkContext<'_> {
    pub(crate) fn layer() -> Self {
        WalkContext {
            prefix: None,
            depth: 0,
        }
    }
}

/// Walks a tar stream. Without a nested prefix, `.wh.` names are whiteouts.
pub(crate) fn walk_tar<R: Read>(
    reader: R,
    limits: &Limits,
    visitor: &mut dyn Visitor,
    ctx: &WalkContext<'_>,
) -> Result<LayerCounts, Error> {
    let mut counted = CountingReader {
        inner: reader,
        bytes: 0,
    };
    let mut counts = LayerCounts::default();
    let mut buf = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut counted);
        // Raw entries: tar-rs would read GNU long names and PAX records whole,
        // however large; here they are read up to a cap (see `NameRecords`).
        let entries = archive
            .entries()
            .map_err(|e| classify_io(e, counts.entries))?
            .raw(true);
        let mut records = NameRecords::default();
        for entry in entries {
            let mut entry = entry.map_err(|e| classify_io(e, counts.entries))?;
            counts.entries += 1;
            if counts.entries > limits.max_entries {
                return Err(Error::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            if records
                .absorb(&mut entry)
                .map_err(|e| classify_io(e, counts.entries))?
            {
                continue;
            }
            let raw_path = records.take_path(&entry)?;
            let inner_path = normalize(&raw_path);
            let path = match ctx.prefix {
                Some(outer) => crate::join_nested(outer, &inner_path),
                None => inner_path.clone(),
            };
            let header = entry.header();
            let kind = header.entry_type();
            let size = entry.size();
            let mode = header.mode().unwrap_or(0);

            if ctx.prefix.is_none()
                && let Some(name) = inner_path.rsplit('/').next()
                && let Some(target) = name.strip_prefix(WHITEOUT_PREFIX)
            {
                let parent = &inner_path[..inner_path.len() - name.len()];
                if name == OPAQUE_MARKER {
                    visitor.opaque_dir(&normalize(parent.as_bytes()));
                } else {
                    visitor.whiteout(&normalize(format!("{parent}{target}").as_bytes()));
                }
                continue;
            }

            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    counts.files += 1;
                    let want = size.min(limits.max_file_size);
                    let reservation =
                        read_reserved(&mut entry, want, want, &mut buf, &limits.memory_budget)
                            .map_err(|e| classify_io(e, counts.entries))?;
                    if (buf.len() as u64) < want {
                        return Err(Error::Corrupt {
                            entries: counts.entries,
                            source: io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("{path}: archive ends inside the file's data"),
                            ),
                        });
                    }
                    let kept = visitor.owned_file(OwnedFile {
                        path: &path,
                        mode,
                        size,
                        buffer: FileBuffer {
                            data: std::mem::take(&mut buf),
                            reservation,
                        },
                        truncated: size > limits.max_file_size,
                        depth: ctx.depth,
                    })?;
                    // A buffer the visitor gave back is used again (the
                    // reservation goes back once a large one is freed).
                    if let Some(FileBuffer { data, reservation }) = kept {
                        buf = data;
                        release_buffer(&mut buf);
                        drop(reservation);
                    }
                }
                EntryType::GNUSparse => {
                    // Its map continues in blocks between header and data, which
                    // raw entries do not skip: the next "header" would be one of
                    // them, and what tar and Docker see next would be missed.
                    if header.as_gnu().is_some_and(|gnu| gnu.is_extended()) {
                        return Err(Error::Corrupt {
                            entries: counts.entries,
                            source: io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "{path}: GNU sparse map with extension blocks is not supported"
                                ),
                            ),
                        });
                    }
                    counts.files += 1;
                    visitor.skipped(&path, size, "GNU sparse file: not read");
                }
                EntryType::XGlobalHeader => {}
                _ => visitor.other_entry(&path),
            }
        }
    }
    // Read what follows the end-of-archive blocks, so the byte count (and any
    // digest computed below us) covers the whole stream.
    io::copy(&mut counted, &mut io::sink()).map_err(|e| classify_io(e, counts.entries))?;
    counts.uncompressed_bytes = counted.bytes;
    Ok(counts)
}

/// Maps an I/O error met while walking to the error a user should see.
pub(crate) fn classify_io(err: io::Error, entries: u64) -> Error {
    if let Some(limit) = limit_exceeded(&err) {
        return Error::LayerTooLarge { limit };
    }
    Error::Corrupt {
        entries,
        source: err,
    }
}

struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Largest GNU long-name or PAX record read. Real ones hold a path and a few
/// attributes; a record of hundreds of MiB is an attack on memory.
const MAX_NAME_RECORD: u64 = 1024 * 1024;

/// GNU long-name / long-link and PAX records that describe the next entry.
#[derive(Default)]
struct NameRecords {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

impl NameRecords {
    /// Reads `entry` if it is a record about the next entry; `Ok(true)` then.
    fn absorb<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> io::Result<bool> {
        let kind = entry.header().entry_type();
        if !(kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions())
        {
            return Ok(false);
        }
        let size = entry.size();
        if size > MAX_NAME_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "tar name or PAX record of {size} bytes exceeds the {MAX_NAME_RECORD}-byte limit"
                ),
            ));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut data)?;
        if kind.is_gnu_longname() {
            // NUL-terminated.
            let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            data.truncate(end);
            self.long_name = Some(data);
        } else if kind.is_pax_local_extensions() {
            for record in tar::PaxExtensions::new(&data) {
                let record = record?;
                match record.key_bytes() {
                    b"path" => self.pax_path = Some(record.value_bytes().to_vec()),
                    b"size" => {
                        self.pax_size = std::str::from_utf8(record.value_bytes())
                            .ok()
                            .and_then(|v| v.parse().ok())
                    }
                    _ => {}
                }
            }
        }
        Ok(true)
    }

    /// The path of the entry these records describe (then forgets them).
    fn take_path<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<Vec<u8>, Error> {
        let records = std::mem::take(self);
        if let Some(size) = records.pax_size
            && size != entry.size()
        {
            // Raw entries cannot honour a PAX size override (files over 8 GiB).
            return Err(Error::Corrupt {
                entries: 0,
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "PAX size {size} differs from the header's; entries over 8 GiB are not supported"
                    ),
                ),
            });
        }
        Ok(records
            .pax_path
            .or(records.long_name)
            .unwrap_or_else(|| entry.path_bytes().into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Paths(Vec<String>);
    impl Visitor for Paths {
        fn file(&mut self, file: FileEntry<'_>) -> Result<(), Error> {
            self.0.push(file.path.to_string());
            Ok(())
        }
        fn skipped(&mut self, path: &str, _: u64, reason: &str) {
            panic!("{path}: {reason}");
        }
    }

    fn walk(tar: &[u8]) -> Result<Vec<String>, Error> {
        let mut paths = Paths::default();
        walk_layer(tar, &Limits::default(), &mut paths)?;
        Ok(paths.0)
    }

    #[test]
    fn gnu_long_names_and_pax_paths_name_the_next_entry() {
        let long = format!("opt/{}/xmrig", "d".repeat(180));
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        builder.append_data(&mut header, &long, &b"x"[..]).unwrap();
        builder
            .append_pax_extensions([(
                "path",
                format!("srv/{}/pax-named", "p".repeat(150)).as_bytes(),
            )])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(1);
        header.set_path("short-name").unwrap();
        header.set_cksum();
        builder.append(&header, &b"y"[..]).unwrap();
        let paths = walk(&builder.into_inner().unwrap()).unwrap();
        assert_eq!(paths[0], format!("/{long}"));
        assert_eq!(paths[1], format!("/srv/{}/pax-named", "p".repeat(150)));
    }

    #[test]
    fn a_huge_long_name_record_is_refused_without_reading_it() {
        // A GNU 'L' header declaring 1 GiB of name, followed by nothing.
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::GNULongName);
        header.set_path("././@LongLink").unwrap();
        header.set_size(1 << 30);
        header.set_cksum();
        let tar = header.as_bytes().to_vec();
        let err = walk(&tar).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        let text = format!("{}", std::error::Error::source(&err).unwrap());
        assert!(text.contains("exceeds"), "{text}");
    }

    #[test]
    fn old_gnu_sparse_extension_blocks_are_an_error_not_a_desync() {
        // A sparse entry whose map continues in an extension block: tar
        // readers skip that block before the data; a reader that does not
        // would take it for the next header (here: an end-of-archive block)
        // and miss the file after it.
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::GNUSparse);
        header.set_path("holes").unwrap();
        header.set_size(0);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.isextended[0] = 1;
        gnu.realsize.copy_from_slice(b"00000001000\0");
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend([0u8; 512]);
        let mut builder = tar::Builder::new(Vec::new());
        let mut file = tar::Header::new_gnu();
        file.set_size(5);
        builder
            .append_data(&mut file, "usr/bin/after", &b"xmrig"[..])
            .unwrap();
        tar.extend(builder.into_inner().unwrap());
        let err = walk(&tar).unwrap_err();
        let text = format!("{}", std::error::Error::source(&err).unwrap());
        assert!(text.contains("extension"), "{text}");
    }
}
