//! Hostile inputs: decompression bombs, oversized tar records, deep nesting,
//! overlapping zips, lying manifests and link loops, for the tests that prove
//! minehound stays bounded. The big ones are streamed through the compressor,
//! so neither the repository nor memory ever holds them uncompressed.

use std::io::{self, Read, Write};
use std::path::Path;

use flate2::{Compression as Level, GzBuilder, write::DeflateEncoder};
use tar::{EntryType, Header};

use crate::blob::{Blob, HashingWriter};
use crate::compress::gzip;
use crate::document::{Descriptor, Index, to_json};
use crate::image::{BuiltImage, ImageSpec, MediaTypes};
use crate::layer::{Compression, Entry, Layer, tar_bytes};
use crate::layout::write_oci_layout;
use crate::media_type as mt;

/// A layer blob made by streaming a tar through the compressor; returns the
/// blob and its diff_id. `write_tar` writes the whole tar, end blocks included.
pub fn streamed_layer(
    compression: Compression,
    write_tar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<(Blob, String)> {
    let media_type = MediaTypes::Oci.layer(compression);
    let (bytes, diff_id) = match compression {
        Compression::Gzip => {
            let encoder = GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Vec::new(), Level::default());
            let mut tar = HashingWriter::new(encoder);
            write_tar(&mut tar)?;
            let diff_id = tar.digest();
            (tar.inner.finish()?, diff_id)
        }
        Compression::Zstd => {
            let mut tar = HashingWriter::new(zstd::Encoder::new(Vec::new(), 3)?);
            write_tar(&mut tar)?;
            let diff_id = tar.digest();
            (tar.inner.finish()?, diff_id)
        }
        Compression::None => {
            let mut tar = HashingWriter::new(Vec::new());
            write_tar(&mut tar)?;
            let diff_id = tar.digest();
            (tar.inner, diff_id)
        }
    };
    Ok((Blob::new(media_type, bytes), diff_id))
}

/// A one-layer image around a streamed layer.
fn streamed_image(
    compression: Compression,
    created_by: &str,
    write_tar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<BuiltImage> {
    let (blob, diff_id) = streamed_layer(compression, write_tar)?;
    let spec = ImageSpec {
        layers: vec![Layer {
            created_by: created_by.to_owned(),
            ..Layer::default()
        }],
        ..ImageSpec::default()
    };
    Ok(spec.build_around(vec![blob], vec![diff_id]))
}

fn file_header(size: u64, kind: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// A layer whose one file `/zeros` holds `size` zero bytes: a gigabyte of
/// zeros is about a megabyte of gzip, and less of zstd.
pub fn zeros_image(compression: Compression, size: u64) -> io::Result<BuiltImage> {
    streamed_image(compression, "RUN fallocate zeros", |out| {
        let mut tar = tar::Builder::new(out);
        let mut header = file_header(size, EntryType::Regular);
        tar.append_data(&mut header, "zeros", io::repeat(0).take(size))?;
        tar.finish()
    })
}

/// Which tar record carries an oversized name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRecord {
    /// A GNU `L` long-name record.
    GnuLongName,
    /// A PAX `x` record with a `path` key.
    Pax,
}

/// A layer opening with a name record of `size` bytes, then a small file it
/// would name.
pub fn huge_name_record_image(record: NameRecord, size: u64) -> io::Result<BuiltImage> {
    streamed_image(Compression::Gzip, "RUN make-long-name", |out| {
        let mut tar = tar::Builder::new(out);
        match record {
            NameRecord::GnuLongName => {
                let mut header = file_header(size, EntryType::GNULongName);
                header.set_path("././@LongLink")?;
                header.set_cksum();
                tar.append(&header, io::repeat(b'a').take(size))?;
            }
            NameRecord::Pax => {
                // One record, "LEN path=aaa…\n", LEN counting its own digits.
                let digits = size.to_string().len() as u64;
                let prefix = format!("{size} path=");
                let name = size - digits - " path=".len() as u64 - 1;
                let body = prefix
                    .as_bytes()
                    .chain(io::repeat(b'a').take(name))
                    .chain(&b"\n"[..]);
                let mut header = file_header(size, EntryType::XHeader);
                header.set_path("PaxHeaders/name")?;
                header.set_cksum();
                tar.append(&header, body)?;
            }
        }
        let mut header = file_header(6, EntryType::Regular);
        tar.append_data(&mut header, "etc/hostname", &b"host\n"[..])?;
        tar.finish()
    })
}

/// A big-endian base-256 tar number field (for values octal cannot hold).
fn base256(field: &mut [u8], value: u64) {
    field.fill(0);
    field[0] = 0x80;
    let len = field.len();
    field[len - 8..].copy_from_slice(&value.to_be_bytes());
}

/// A layer of old-GNU sparse entries (type `S`) declaring `real_size` bytes
/// (sparse map entries as large) over one stored block each.
pub fn sparse_image(entries: usize, real_size: u64) -> io::Result<BuiltImage> {
    streamed_image(Compression::Gzip, "RUN make-sparse", |out| {
        let mut tar = tar::Builder::new(out);
        for i in 0..entries {
            let mut header = file_header(512, EntryType::GNUSparse);
            header.set_path(format!("var/sparse-{i}"))?;
            let gnu = header.as_gnu_mut().expect("a GNU header");
            base256(&mut gnu.realsize, real_size);
            base256(&mut gnu.sparse[0].offset, real_size - 512);
            base256(&mut gnu.sparse[0].numbytes, 512);
            header.set_cksum();
            tar.append(&header, &[b'x'; 512][..])?;
        }
        tar.finish()
    })
}

/// A layer of `count` one-byte files, a thousand to a directory.
pub fn many_files_image(count: usize) -> io::Result<BuiltImage> {
    streamed_image(Compression::Gzip, "RUN touch many", |out| {
        let mut tar = tar::Builder::new(out);
        for i in 0..count {
            let mut header = file_header(1, EntryType::Regular);
            tar.append_data(
                &mut header,
                format!("srv/d{:03}/f{:03}", i / 1000, i % 1000),
                &b"x"[..],
            )?;
        }
        tar.finish()
    })
}

/// A layer holding `/opt/nest.tar.gz`: a tar.gz of a tar.gz … `levels` deep,
/// with a small text file at the bottom.
pub fn nested_archives_image(levels: usize) -> BuiltImage {
    let mut inner = tar_bytes(&[Entry::file("/bottom.txt", "the bottom\n")]);
    for level in (0..levels).rev() {
        inner = tar_bytes(&[Entry::file(&format!("/level-{level}.tar.gz"), gzip(&inner))]);
        inner = gzip(&inner);
    }
    ImageSpec {
        layers: vec![Layer::gzip(
            "COPY nest.tar.gz /opt/",
            vec![Entry::file("/opt/nest.tar.gz", inner)],
        )],
        ..ImageSpec::default()
    }
    .build()
}

/// A zip whose `members` central-directory entries all point at one local
/// file of `kernel_size` deflated zeros (Fifield's "non-recursive zip bomb"):
/// kilobytes on disk, `members * kernel_size` bytes to a naive reader.
pub fn overlapping_zip(members: u16, kernel_size: u32) -> io::Result<Vec<u8>> {
    let mut deflated = DeflateEncoder::new(Vec::new(), Level::best());
    io::copy(&mut io::repeat(0).take(kernel_size.into()), &mut deflated)?;
    let deflated = deflated.finish()?;
    let mut crc = flate2::Crc::new();
    let mut zeros = io::repeat(0).take(kernel_size.into());
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = zeros.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        crc.update(&chunk[..n]);
    }
    let (crc, compressed) = (crc.sum(), deflated.len() as u32);
    let name = b"kernel";
    let mut zip = Vec::new();
    // Local file header: version 20, deflate (8), DOS time 0.
    zip.extend(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00\x21\x00");
    for value in [crc, compressed, kernel_size] {
        zip.extend(value.to_le_bytes());
    }
    zip.extend((name.len() as u16).to_le_bytes());
    zip.extend(0u16.to_le_bytes());
    zip.extend(name);
    zip.extend(&deflated);
    let directory_start = zip.len() as u32;
    for i in 0..members {
        let member = format!("m{i:05}");
        zip.extend(b"PK\x01\x02\x14\x03\x14\x00\x00\x00\x08\x00\x00\x00\x21\x00");
        for value in [crc, compressed, kernel_size] {
            zip.extend(value.to_le_bytes());
        }
        zip.extend((member.len() as u16).to_le_bytes());
        // Extra and comment lengths, disk number, internal attributes.
        zip.extend([0u8; 8]);
        zip.extend((0o100644u32 << 16).to_le_bytes());
        // Every member's local header is the same one, at offset 0.
        zip.extend(0u32.to_le_bytes());
        zip.extend(member.as_bytes());
    }
    let directory_size = zip.len() as u32 - directory_start;
    zip.extend(b"PK\x05\x06\x00\x00\x00\x00");
    zip.extend(members.to_le_bytes());
    zip.extend(members.to_le_bytes());
    zip.extend(directory_size.to_le_bytes());
    zip.extend(directory_start.to_le_bytes());
    zip.extend(0u16.to_le_bytes());
    Ok(zip)
}

/// A layer holding an [`overlapping_zip`] at `/opt/bomb.zip`.
pub fn overlapping_zip_image(members: u16, kernel_size: u32) -> io::Result<BuiltImage> {
    Ok(ImageSpec {
        layers: vec![Layer::gzip(
            "COPY bomb.zip /opt/",
            vec![Entry::file(
                "/opt/bomb.zip",
                overlapping_zip(members, kernel_size)?,
            )],
        )],
        ..ImageSpec::default()
    }
    .build())
}

/// A small, clean one-layer image.
fn plain_image() -> BuiltImage {
    ImageSpec {
        layers: vec![Layer::gzip(
            "COPY motd /etc/",
            vec![Entry::file("/etc/motd", "hello\n")],
        )],
        ..ImageSpec::default()
    }
    .build()
}

/// Rewrites `image`'s manifest (and, when `edit_config` changes it, its
/// config) as JSON, keeping the digests that point at them consistent.
fn edited(
    mut image: BuiltImage,
    edit_manifest: impl FnOnce(&mut serde_json::Value),
    edit_config: impl FnOnce(&mut serde_json::Value),
) -> BuiltImage {
    let mut config: serde_json::Value =
        serde_json::from_slice(&image.config.bytes).expect("our own config is JSON");
    edit_config(&mut config);
    image.config = Blob::new(&image.config.media_type, to_json(&config));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&image.manifest.bytes).expect("our own manifest is JSON");
    manifest["config"] = serde_json::to_value(Descriptor::of(&image.config)).expect("JSON");
    edit_manifest(&mut manifest);
    image.manifest = Blob::new(&image.manifest.media_type, to_json(&manifest));
    image
}

/// An OCI layout at `dir` whose manifest says its layer is `size` bytes.
pub fn write_absurd_size_layout(dir: &Path, size: u64) -> io::Result<()> {
    let image = edited(
        plain_image(),
        |m| m["layers"][0]["size"] = size.into(),
        |_| {},
    );
    write_oci_layout(dir, &[(&image, Some("latest"))])
}

/// An OCI layout at `dir` whose manifest lists its one layer `count` times
/// (and its config as many diff_ids).
pub fn write_many_layers_layout(dir: &Path, count: usize) -> io::Result<()> {
    let image = edited(
        plain_image(),
        |m| m["layers"] = vec![m["layers"][0].clone(); count].into(),
        |c| c["rootfs"]["diff_ids"] = vec![c["rootfs"]["diff_ids"][0].clone(); count].into(),
    );
    write_oci_layout(dir, &[(&image, Some("latest"))])
}

/// An OCI layout at `dir` whose `index.json` leads through `depth` nested
/// indexes to one image. Content addressing makes a true cycle impossible
/// (an index cannot hold its own digest); a chain this deep is what a
/// reader that follows indexes blindly would loop on.
pub fn write_index_chain_layout(dir: &Path, depth: usize) -> io::Result<()> {
    let image = plain_image();
    write_oci_layout(dir, &[(&image, Some("latest"))])?;
    let mut child = Descriptor::of(&image.manifest);
    for _ in 0..depth {
        let index = Blob::new(
            mt::OCI_INDEX,
            to_json(&Index {
                manifests: vec![child],
                media_type: mt::OCI_INDEX.to_owned(),
                schema_version: 2,
            }),
        );
        std::fs::write(dir.join(index.layout_path()), &index.bytes)?;
        child = Descriptor::of(&index);
    }
    child
        .annotations
        .insert(crate::REF_NAME_ANNOTATION.to_owned(), "latest".to_owned());
    let top = Index {
        manifests: vec![child],
        media_type: mt::OCI_INDEX.to_owned(),
        schema_version: 2,
    };
    std::fs::write(dir.join("index.json"), to_json(&top))
}

/// A root filesystem at `root` full of link traps: symlinks to each other, to
/// `.`, `..` and `/`, a directory chain with a link back to its top, and one
/// file of `file_size` bytes under `hard_links` names (hard links).
pub fn write_link_loops_dir(root: &Path, hard_links: usize, file_size: usize) -> io::Result<()> {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::write(root.join("etc/motd"), "hello\n")?;
    symlink("b", root.join("a"))?;
    symlink("a", root.join("b"))?;
    symlink(".", root.join("self"))?;
    symlink("..", root.join("up"))?;
    symlink("/", root.join("host-root"))?;
    let mut deep = root.join("deep");
    for level in 0..50 {
        deep = deep.join(format!("d{level}"));
    }
    std::fs::create_dir_all(&deep)?;
    symlink(root, deep.join("back-to-top"))?;
    let links = root.join("links");
    std::fs::create_dir_all(&links)?;
    let first = links.join("l00000");
    std::fs::write(&first, vec![b'z'; file_size])?;
    for i in 1..hard_links {
        std::fs::hard_link(&first, links.join(format!("l{i:05}")))?;
    }
    Ok(())
}

/// An OCI layout at `dir` whose layer descriptor also lists `urls`, as
/// foreign (non-distributable) layers do; with `keep_blob` false the layout
/// lacks the blob, so only the URLs could supply it.
pub fn write_foreign_layer_layout(dir: &Path, urls: &[String], keep_blob: bool) -> io::Result<()> {
    let image = edited(
        plain_image(),
        |m| m["layers"][0]["urls"] = urls.into(),
        |_| {},
    );
    write_oci_layout(dir, &[(&image, Some("latest"))])?;
    if !keep_blob {
        std::fs::remove_file(dir.join(image.layers[0].layout_path()))?;
    }
    Ok(())
}
