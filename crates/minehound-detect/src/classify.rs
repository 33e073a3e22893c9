/// What a file is, judged by its first bytes. Names and modes are never trusted:
/// miners hide as `kworker`, `.so` files or unexecutable blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// An ELF object: executable, shared library, core.
    Elf,
    /// A text file that starts with `#!`.
    Script,
    /// Other text: configs, cron lines, systemd units, source.
    Text,
    /// tar, gzip, zstd or zip: opened and walked in turn.
    Archive,
    /// Anything else (images, compiled bytecode, data).
    Other,
}

impl FileKind {
    /// Whether the file is hashed and checked as a whole (every file still goes
    /// through the YARA rules).
    pub fn is_candidate(self) -> bool {
        matches!(self, FileKind::Elf | FileKind::Script | FileKind::Text)
    }
}

/// How many leading bytes [`classify`] looks at.
pub const SNIFF_LEN: usize = 8192;

/// Classifies a file from its leading bytes (up to [`SNIFF_LEN`] are read).
pub fn classify(data: &[u8]) -> FileKind {
    if data.starts_with(b"\x7fELF") {
        return FileKind::Elf;
    }
    // A shebang makes a script whatever bytes follow it.
    if data.starts_with(b"#!") {
        return FileKind::Script;
    }
    if is_archive(data) {
        return FileKind::Archive;
    }
    let head = &data[..data.len().min(SNIFF_LEN)];
    if data.is_empty() || !looks_like_text(head) {
        return FileKind::Other;
    }
    FileKind::Text
}

fn is_archive(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
        || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || data.starts_with(b"PK\x03\x04")
        || (data.len() >= 262 && &data[257..262] == b"ustar")
}

/// Text: no NUL and few control bytes. UTF-8 is not required, so Latin-1 configs
/// and scripts with odd bytes still count.
fn looks_like_text(head: &[u8]) -> bool {
    if memchr::memchr(0, head).is_some() {
        return false;
    }
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b))
        .count();
    control * 100 <= head.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_magic_not_name() {
        assert_eq!(classify(b"\x7fELF\x02\x01\x01"), FileKind::Elf);
        assert_eq!(classify(b"#!/bin/sh\ncurl x | sh\n"), FileKind::Script);
        assert_eq!(classify(b"{\"pools\": []}\n"), FileKind::Text);
        assert_eq!(classify(&[0x1f, 0x8b, 8, 0]), FileKind::Archive);
        assert_eq!(classify(b"PK\x03\x04rest"), FileKind::Archive);
        assert_eq!(classify(b"\x89PNG\r\n\x1a\n\0\0"), FileKind::Other);
        assert_eq!(classify(b""), FileKind::Other);
        assert_eq!(
            classify(b"#!/bin/sh\n\x01\x01\x01\0\0curl"),
            FileKind::Script
        );
    }
}
