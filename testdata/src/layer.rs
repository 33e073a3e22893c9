//! Layers as lists of tar entries, and the deterministic tar writer.
//!
//! Every header is GNU format with uid/gid 0, mtime 0 and empty user/group
//! names, so the same entries always give the same bytes. Names are written as
//! given (minus a leading `/`): no normalisation, so tests can also build
//! hostile layers (`..` components, duplicate paths, links out of the root).

use tar::{EntryType, Header};

/// One tar entry of a layer. Paths are relative to the layer root; a leading
/// `/` is dropped, as `docker build` writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File {
        /// Path of the file.
        path: String,
        /// Permission bits, e.g. `0o755`.
        mode: u32,
        /// The file's contents.
        data: Vec<u8>,
    },
    /// A directory (mode 0755, written with a trailing `/`).
    Dir {
        /// Path of the directory.
        path: String,
    },
    /// A symbolic link; `target` is written verbatim.
    Symlink {
        /// Path of the link.
        path: String,
        /// What the link points at, absolute or relative.
        target: String,
    },
    /// A hard link to an earlier entry of the same tar.
    Hardlink {
        /// Path of the link.
        path: String,
        /// Archive path of the linked entry (a leading `/` is dropped).
        target: String,
    },
    /// Deletes `path` from the lower layers: writes `dir/.wh.name`.
    Whiteout {
        /// Path of the file or directory being deleted.
        path: String,
    },
    /// Hides everything lower layers put in `dir`: writes `dir/.wh..wh..opq`.
    Opaque {
        /// The directory made opaque.
        dir: String,
    },
}

impl Entry {
    /// A regular file with mode 0644.
    pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Self {
        Self::File {
            path: path.to_owned(),
            mode: 0o644,
            data: data.into(),
        }
    }

    /// An executable regular file with mode 0755.
    pub fn executable(path: &str, data: impl Into<Vec<u8>>) -> Self {
        Self::File {
            path: path.to_owned(),
            mode: 0o755,
            data: data.into(),
        }
    }

    /// A directory.
    pub fn dir(path: &str) -> Self {
        Self::Dir {
            path: path.to_owned(),
        }
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// `tar+gzip`, what almost every registry serves.
    #[default]
    Gzip,
    /// `tar+zstd`.
    Zstd,
    /// Plain tar.
    None,
}

/// One layer of an image spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layer {
    /// The tar entries, in order.
    pub entries: Vec<Entry>,
    /// How the blob is compressed.
    pub compression: Compression,
    /// The config history's `created_by` for this layer, e.g. `RUN make`.
    pub created_by: String,
}

impl Layer {
    /// A gzip layer.
    pub fn gzip(created_by: &str, entries: Vec<Entry>) -> Self {
        Self {
            entries,
            compression: Compression::Gzip,
            created_by: created_by.to_owned(),
        }
    }
}

/// The uncompressed tar of `entries`, in order, ending with the two zero blocks.
pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        append(&mut builder, entry);
    }
    builder
        .into_inner()
        .expect("writing a tar into memory cannot fail")
}

fn append(builder: &mut tar::Builder<Vec<u8>>, entry: &Entry) {
    let (kind, name, mode, link, data): (_, String, _, Option<&str>, &[u8]) = match entry {
        Entry::File { path, mode, data } => {
            (EntryType::Regular, rooted(path).into(), *mode, None, data)
        }
        Entry::Dir { path } => {
            let dir = rooted(path).trim_end_matches('/');
            (EntryType::Directory, format!("{dir}/"), 0o755, None, &[])
        }
        Entry::Symlink { path, target } => (
            EntryType::Symlink,
            rooted(path).into(),
            0o777,
            Some(target),
            &[],
        ),
        Entry::Hardlink { path, target } => (
            EntryType::Link,
            rooted(path).into(),
            0o644,
            Some(rooted(target)),
            &[],
        ),
        Entry::Whiteout { path } => {
            let path = rooted(path).trim_end_matches('/');
            let name = match path.rsplit_once('/') {
                Some((dir, base)) => format!("{dir}/.wh.{base}"),
                None => format!(".wh.{path}"),
            };
            (EntryType::Regular, name, 0o644, None, &[])
        }
        Entry::Opaque { dir } => {
            let dir = rooted(dir).trim_end_matches('/');
            let name = if dir.is_empty() {
                ".wh..wh..opq".to_owned()
            } else {
                format!("{dir}/.wh..wh..opq")
            };
            (EntryType::Regular, name, 0o644, None, &[])
        }
    };
    append_raw(builder, kind, &name, mode, link, data);
}

fn rooted(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Writes one header with the name and link bytes exactly as given. The tar
/// crate's path setters refuse `..` and rewrite separators; fixtures need neither.
fn append_raw(
    builder: &mut tar::Builder<Vec<u8>>,
    kind: EntryType,
    name: &str,
    mode: u32,
    link: Option<&str>,
    data: &[u8],
) {
    // Names past the 100-byte header field go in a GNU long-name entry first.
    if name.len() > 100 {
        append_long(builder, EntryType::GNULongName, name);
    }
    if let Some(link) = link.filter(|link| link.len() > 100) {
        append_long(builder, EntryType::GNULongLink, link);
    }
    let mut header = fixed_header(kind, mode, data.len() as u64);
    copy_truncated(&mut header.as_old_mut().name, name.as_bytes());
    if let Some(link) = link {
        copy_truncated(&mut header.as_old_mut().linkname, link.as_bytes());
    }
    header.set_cksum();
    builder
        .append(&header, data)
        .expect("writing a tar into memory cannot fail");
}

fn append_long(builder: &mut tar::Builder<Vec<u8>>, kind: EntryType, value: &str) {
    let mut data = value.as_bytes().to_vec();
    data.push(0); // GNU tar NUL-terminates the long name
    let mut header = fixed_header(kind, 0o644, data.len() as u64);
    copy_truncated(&mut header.as_old_mut().name, b"././@LongLink");
    header.set_cksum();
    builder
        .append(&header, data.as_slice())
        .expect("writing a tar into memory cannot fail");
}

fn fixed_header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let len = value.len().min(field.len());
    field[..len].copy_from_slice(&value[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One member as a reader sees it.
    #[derive(Debug, PartialEq)]
    struct Member {
        kind: EntryType,
        path: String,
        link: Option<String>,
        mode: u32,
        data: Vec<u8>,
    }

    fn member(kind: EntryType, path: &str, link: Option<&str>, mode: u32, data: &[u8]) -> Member {
        Member {
            kind,
            path: path.to_owned(),
            link: link.map(str::to_owned),
            mode,
            data: data.to_vec(),
        }
    }

    fn read_back(bytes: &[u8]) -> Vec<Member> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap());
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                assert_eq!(header.mtime().unwrap(), 0);
                assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
                Member {
                    kind: header.entry_type(),
                    path,
                    link,
                    mode: header.mode().unwrap(),
                    data,
                }
            })
            .collect()
    }

    #[test]
    fn every_entry_kind_round_trips() {
        let entries = [
            Entry::dir("/etc"),
            Entry::File {
                path: "/etc/motd".into(),
                mode: 0o600,
                data: b"hi".to_vec(),
            },
            Entry::Symlink {
                path: "/etc/link".into(),
                target: "/etc/motd".into(),
            },
            Entry::Hardlink {
                path: "/etc/hard".into(),
                target: "/etc/motd".into(),
            },
            Entry::Whiteout {
                path: "/usr/bin/gone".into(),
            },
            Entry::Whiteout { path: "top".into() },
            Entry::Opaque {
                dir: "/var/lib/".into(),
            },
            Entry::Opaque { dir: "/".into() },
        ];
        let got = read_back(&tar_bytes(&entries));
        let want = [
            member(EntryType::Directory, "etc/", None, 0o755, b""),
            member(EntryType::Regular, "etc/motd", None, 0o600, b"hi"),
            member(
                EntryType::Symlink,
                "etc/link",
                Some("/etc/motd"),
                0o777,
                b"",
            ),
            member(EntryType::Link, "etc/hard", Some("etc/motd"), 0o644, b""),
            member(EntryType::Regular, "usr/bin/.wh.gone", None, 0o644, b""),
            member(EntryType::Regular, ".wh.top", None, 0o644, b""),
            member(EntryType::Regular, "var/lib/.wh..wh..opq", None, 0o644, b""),
            member(EntryType::Regular, ".wh..wh..opq", None, 0o644, b""),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn long_names_and_hostile_paths_are_kept() {
        let long = format!("opt/{}/miner", "d".repeat(150));
        let target = format!("/{}", "t".repeat(120));
        let entries = [
            Entry::file(&long, b"x".to_vec()),
            Entry::Symlink {
                path: "s".into(),
                target: target.clone(),
            },
            Entry::file("../../escape", b"y".to_vec()),
        ];
        let got = read_back(&tar_bytes(&entries));
        assert_eq!(got[0].path, long);
        assert_eq!(got[1].link, Some(target));
        assert_eq!(got[2].path, "../../escape");
    }

    #[test]
    fn same_entries_same_bytes() {
        let entries = [Entry::executable("bin/x", b"\x7fELF".to_vec())];
        assert_eq!(tar_bytes(&entries), tar_bytes(&entries));
        assert_eq!(
            tar_bytes(&[]).len(),
            1024,
            "an empty tar is two zero blocks"
        );
    }
}
