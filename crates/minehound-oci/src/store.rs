//! Blob stores: where the bytes of an image's documents and layers are read from.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::image::{clean_member, resolve_link};
use crate::{BlobLocation, Error, SpooledBlob};

/// Reads an image's blobs and metadata files. Shared by all workers, so each
/// `open` returns an independent reader.
pub trait BlobStore: Send + Sync {
    /// A name for messages, such as the layout path.
    fn name(&self) -> String;

    /// Opens a blob to stream it.
    fn open(&self, location: &BlobLocation) -> Result<Box<dyn Read + Send + '_>, Error>;

    /// Reads a top-level file such as `index.json` or `manifest.json`, if present.
    fn read_member(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error>;

    /// Whether the store itself guarantees that a blob's bytes match its
    /// digest (a registry checks every upload), so a layer result known by
    /// digest needs no read. Local files can be edited: not by default.
    fn content_addressed(&self) -> bool {
        false
    }

    /// The local file a blob is read from, if the store reads files: lets a
    /// cache tell an unchanged file from an edited one without reading it.
    fn blob_file(&self, _location: &BlobLocation) -> Option<BlobFile> {
        None
    }

    /// A large blob fetched into a temporary file by several connections at
    /// once, readable at any offset while it arrives; `None` (the default)
    /// where the store does not fetch that way, the blob is not large enough
    /// (`size` as its descriptor declares), the server ignores ranges or no
    /// temporary file can be made: [`open`](Self::open) it.
    fn spool(&self, _location: &BlobLocation, _size: u64) -> Option<SpooledBlob> {
        None
    }

    /// Reads a manifest or index by digest. Registries serve these from another
    /// endpoint than blobs; everywhere else they are blobs.
    fn read_manifest(&self, digest: &str, limit: u64) -> Result<Vec<u8>, Error> {
        self.read_small(&BlobLocation::Digest(digest.to_string()), limit)
    }

    /// Reads a small blob (a manifest or config) whole, refusing more than `limit` bytes.
    fn read_small(&self, location: &BlobLocation, limit: u64) -> Result<Vec<u8>, Error> {
        let what = location.member_path()?;
        read_capped(self.open(location)?, limit, &what, &self.name())
    }
}

/// Where a blob's bytes sit on the local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFile {
    /// The file holding the blob.
    pub path: PathBuf,
    /// Offset and length of the blob in the file; `None` for the whole file.
    pub range: Option<(u64, u64)>,
}

pub(crate) fn read_capped(
    reader: impl Read,
    limit: u64,
    what: &str,
    store: &str,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| Error::Io {
            path: PathBuf::from(format!("{store}/{what}")),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(out)
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    /// A layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LayoutDir { root: root.into() }
    }

    fn path_of(&self, member: &str) -> Result<PathBuf, Error> {
        // Archive paths come from hostile manifest.json files: stay inside the root.
        if member.split('/').any(|part| part == "..") {
            return Err(Error::Inconsistent(format!(
                "blob path {member:?} leaves the image directory"
            )));
        }
        Ok(self.root.join(member))
    }

    /// Opens a regular file of the layout. A symlink may point elsewhere in the
    /// layout, never outside it, and never at a device or FIFO.
    fn open_file(&self, path: &Path) -> io::Result<File> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            let root = self.root.canonicalize()?;
            if !path.canonicalize()?.starts_with(&root) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "symlink leads outside the image directory",
                ));
            }
        }
        File::open(path)
    }
}

impl BlobStore for LayoutDir {
    fn name(&self) -> String {
        self.root.display().to_string()
    }

    fn open(&self, location: &BlobLocation) -> Result<Box<dyn Read + Send + '_>, Error> {
        let path = self.path_of(&location.member_path()?)?;
        match self.open_file(&path) {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::MissingBlob(match location {
                    BlobLocation::Digest(d) => d.clone(),
                    BlobLocation::ArchivePath(p) => p.clone(),
                }))
            }
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    fn blob_file(&self, location: &BlobLocation) -> Option<BlobFile> {
        Some(BlobFile {
            path: self.path_of(&location.member_path().ok()?).ok()?,
            range: None,
        })
    }

    fn read_member(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let full = self.path_of(path)?;
        match self.open_file(&full) {
            Ok(file) => read_capped(file, limit, path, &self.name()).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path: full, source }),
        }
    }
}

/// Where a member's data sits in an uncompressed tar file.
#[derive(Debug, Clone)]
struct Member {
    offset: u64,
    size: u64,
    /// Hard or symbolic link target, resolved when opened.
    link: Option<String>,
}

/// A seekable, uncompressed tar (oci-archive or docker-archive), indexed once so
/// that every layer can be read in parallel without unpacking.
#[derive(Debug)]
pub struct TarArchive {
    path: PathBuf,
    members: HashMap<String, Member>,
}

/// Most members an image archive may list.
const MAX_ARCHIVE_MEMBERS: usize = 1_000_000;

impl TarArchive {
    /// Reads the tar headers of `path` (not the data).
    pub fn open(path: &Path) -> Result<TarArchive, Error> {
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            if members.len() >= MAX_ARCHIVE_MEMBERS {
                return Err(Error::TooLarge {
                    what: format!("{} member list", path.display()),
                    limit: MAX_ARCHIVE_MEMBERS as u64,
                });
            }
            let name = clean_member(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            let link = if kind.is_hard_link() || kind.is_symlink() {
                entry
                    .link_name_bytes()
                    .map(|l| resolve_link(&name, &String::from_utf8_lossy(&l), kind.is_symlink()))
            } else {
                None
            };
            if kind.is_file() || link.is_some() {
                members.insert(
                    name,
                    Member {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                        link,
                    },
                );
            }
        }
        Ok(TarArchive {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Whether the archive has a member at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.members.contains_key(path)
    }

    fn member(&self, path: &str) -> Option<&Member> {
        let mut current = self.members.get(path)?;
        // Follow links a few hops; a loop simply ends in "missing".
        for _ in 0..8 {
            match &current.link {
                Some(target) => current = self.members.get(target)?,
                None => return Some(current),
            }
        }
        None
    }

    fn open_member(&self, member: &Member) -> Result<Box<dyn Read + Send + '_>, Error> {
        let io_err = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io_err)?;
        file.seek(SeekFrom::Start(member.offset)).map_err(io_err)?;
        Ok(Box::new(file.take(member.size)))
    }
}

impl BlobStore for TarArchive {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn open(&self, location: &BlobLocation) -> Result<Box<dyn Read + Send + '_>, Error> {
        let path = location.member_path()?;
        let member = self
            .member(&path)
            .ok_or_else(|| Error::MissingBlob(path.clone()))?;
        self.open_member(member)
    }

    fn blob_file(&self, location: &BlobLocation) -> Option<BlobFile> {
        let member = self.member(&location.member_path().ok()?)?;
        Some(BlobFile {
            path: self.path.clone(),
            range: Some((member.offset, member.size)),
        })
    }

    fn read_member(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        match self.member(path) {
            Some(member) => {
                read_capped(self.open_member(member)?, limit, path, &self.name()).map(Some)
            }
            None => Ok(None),
        }
    }
}

/// Small archive members kept in memory while a stream is read (stdin, or a
/// compressed archive that cannot be seeked).
#[derive(Debug, Default)]
pub struct MemoryStore {
    name: String,
    members: HashMap<String, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store named `name` in messages.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStore {
            name: name.into(),
            members: HashMap::new(),
        }
    }

    /// Keeps a member.
    pub fn insert(&mut self, path: String, bytes: Vec<u8>) {
        self.members.insert(path, bytes);
    }

    /// Whether a member is held.
    pub fn contains(&self, path: &str) -> bool {
        self.members.contains_key(path)
    }

    /// Total bytes held.
    pub fn bytes(&self) -> u64 {
        self.members.values().map(|v| v.len() as u64).sum()
    }
}

impl BlobStore for MemoryStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn open(&self, location: &BlobLocation) -> Result<Box<dyn Read + Send + '_>, Error> {
        let path = location.member_path()?;
        self.members
            .get(&path)
            .map(|bytes| Box::new(&bytes[..]) as Box<dyn Read + Send>)
            .ok_or(Error::MissingBlob(path))
    }

    fn read_member(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        match self.members.get(path) {
            Some(bytes) => read_capped(&bytes[..], limit, path, &self.name).map(Some),
            None => Ok(None),
        }
    }
}
