//! Reading an image archive that arrives as a stream (`docker save | minehound
//! scan -`): nothing can be seeked, and `docker save` writes `manifest.json` last,
//! so layers are handed out as they pass and matched to images afterwards.

use std::collections::HashMap;
use std::io::{self, Read};

use crate::image::{clean_member, resolve_link};
use crate::{Error, MemoryStore};

/// Members larger than this are never kept in memory.
const MAX_KEPT_MEMBER: u64 = 16 * 1024 * 1024;
/// Most bytes of small members kept in memory.
const MAX_KEPT_TOTAL: u64 = 256 * 1024 * 1024;

/// What remains of a streamed archive once it has been read.
#[derive(Debug)]
pub struct StreamedArchive {
    /// Small members (metadata documents, tiny layers), kept whole.
    pub store: MemoryStore,
    /// Links between members: link path to target path.
    pub links: HashMap<String, String>,
}

impl StreamedArchive {
    /// Follows links from `path` to the member that holds the data.
    pub fn resolve<'a>(&'a self, mut path: &'a str) -> &'a str {
        for _ in 0..8 {
            match self.links.get(path) {
                Some(target) => path = target,
                None => break,
            }
        }
        path
    }
}

/// Reads a tar stream of an image archive. Members that look like JSON
/// documents (and small ones) are kept; every other member is passed to
/// `on_blob` with its member path, to be scanned as it streams by.
pub fn read_archive_stream(
    reader: impl Read,
    name: &str,
    on_blob: &mut dyn FnMut(&str, &mut dyn Read),
) -> Result<StreamedArchive, Error> {
    let io_err = |source| Error::Io {
        path: name.into(),
        source,
    };
    let mut store = MemoryStore::new(name);
    let mut links = HashMap::new();
    let mut kept_bytes = 0u64;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let path = clean_member(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_hard_link() || kind.is_symlink() {
            if let Some(target) = entry.link_name_bytes() {
                let target =
                    resolve_link(&path, &String::from_utf8_lossy(&target), kind.is_symlink());
                kept_bytes += (path.len() + target.len()) as u64;
                if kept_bytes > MAX_KEPT_TOTAL {
                    return Err(Error::TooLarge {
                        what: format!("{name}: metadata held in memory"),
                        limit: MAX_KEPT_TOTAL,
                    });
                }
                links.insert(path, target);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let mut head = Vec::new();
        (&mut entry)
            .take(size.min(64 * 1024))
            .read_to_end(&mut head)
            .map_err(io_err)?;
        let looks_like_json = head
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[');
        let looks_like_layer = is_layer_magic(&head);
        let small = size <= 64 * 1024;
        if (looks_like_json || small) && !looks_like_layer && size <= MAX_KEPT_MEMBER {
            // Count names too, so a million empty members cannot grow memory unseen.
            kept_bytes += size + path.len() as u64;
            if kept_bytes > MAX_KEPT_TOTAL {
                return Err(Error::TooLarge {
                    what: format!("{name}: metadata held in memory"),
                    limit: MAX_KEPT_TOTAL,
                });
            }
            let mut bytes = head;
            entry.read_to_end(&mut bytes).map_err(io_err)?;
            store.insert(path, bytes);
        } else {
            let mut whole = io::Cursor::new(head).chain(&mut entry);
            on_blob(&path, &mut whole);
            // Whatever the consumer left unread is skipped by the tar reader.
        }
    }
    Ok(StreamedArchive { store, links })
}

/// A member that starts like a layer (tar header, gzip, zstd) is never kept in
/// memory, whatever its first entry is called.
fn is_layer_magic(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 262 && &head[257..262] == b"ustar")
}
