//! A large OCI image made of this machine's ELF files, written as a layout
//! without ever holding a layer in memory: tar streams through gzip to disk
//! while both digests are computed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use minehound_testdata::HashingWriter;
use sha2::{Digest, Sha256};

/// Where the ELF files come from, in order.
const SOURCES: &[&str] = &[
    "/usr/lib",
    "/usr/bin",
    "/usr/sbin",
    "/usr/libexec",
    "/usr/local",
];

/// An image layout on disk and what it holds.
#[derive(Debug)]
pub struct LargeImage {
    /// The OCI layout directory.
    pub layout: PathBuf,
    /// The layer blobs (gzip), bottom first.
    pub blobs: Vec<PathBuf>,
    /// Bytes of ELF files in the layers.
    pub file_bytes: u64,
    /// Number of files.
    pub files: u64,
}

/// Builds (or reuses) a layout of `layers` gzip layers holding at least
/// `target_bytes` of ELF files, under `dir`.
pub fn large_image(dir: &Path, target_bytes: u64, layers: usize) -> io::Result<LargeImage> {
    let layout = dir.join("layout");
    let done = dir.join("done.json");
    if let Ok(text) = fs::read_to_string(&done) {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let blobs = v["blobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_str().map(PathBuf::from))
            .collect();
        return Ok(LargeImage {
            layout,
            blobs,
            file_bytes: v["file_bytes"].as_u64().unwrap_or(0),
            files: v["files"].as_u64().unwrap_or(0),
        });
    }
    let _ = fs::remove_dir_all(dir);
    let blob_dir = layout.join("blobs/sha256");
    fs::create_dir_all(&blob_dir)?;

    let files = elf_files(target_bytes);
    let file_bytes: u64 = files.iter().map(|(_, n)| n).sum();
    // Consecutive runs of files, one per layer, of about equal size.
    let per_layer = file_bytes.div_ceil(layers as u64);
    let mut groups: Vec<Vec<PathBuf>> = vec![Vec::new()];
    let mut size = 0;
    for (path, len) in &files {
        if size >= per_layer && groups.len() < layers {
            groups.push(Vec::new());
            size = 0;
        }
        groups.last_mut().expect("one group").push(path.clone());
        size += len;
    }
    let built: Vec<io::Result<(String, String, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(i, group)| {
                let blob_dir = &blob_dir;
                scope.spawn(move || write_layer(blob_dir, i, group))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("layer writer"))
            .collect()
    });
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut blobs = Vec::new();
    for result in built {
        let (digest, diff_id, size) = result?;
        blobs.push(blob_dir.join(digest.trim_start_matches("sha256:")));
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": size,
        }));
        diff_ids.push(diff_id);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Entrypoint": ["/usr/bin/true"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    let config_digest = write_blob(&blob_dir, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": layer_descs,
    }))?;
    let manifest_digest = write_blob(&blob_dir, &manifest)?;
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len() }],
        }))?,
    )?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::write(
        &done,
        serde_json::to_vec(&serde_json::json!({
            "blobs": blobs, "file_bytes": file_bytes, "files": files.len(),
        }))?,
    )?;
    Ok(LargeImage {
        layout,
        blobs,
        file_bytes,
        files: files.len() as u64,
    })
}

/// ELF files of this machine, in a stable order, until `target_bytes`; the
/// Rust toolchains' big libraries fill up what `/usr` lacks.
fn elf_files(target_bytes: u64) -> Vec<(PathBuf, u64)> {
    let mut roots: Vec<PathBuf> = SOURCES.iter().map(PathBuf::from).collect();
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join(".rustup/toolchains"));
    }
    let mut out = Vec::new();
    let mut total = 0;
    for root in roots {
        let mut files = Vec::new();
        collect(&root, &mut files);
        files.sort();
        for path in files {
            if total >= target_bytes {
                return out;
            }
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.len() < 64 || !is_elf(&path) {
                continue;
            }
            total += meta.len();
            out.push((path, meta.len()));
        }
    }
    out
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => collect(&entry.path(), out),
            Ok(kind) if kind.is_file() => out.push(entry.path()),
            _ => {}
        }
    }
}

/// Streams one layer to a temp file; returns (blob digest, diff id, blob size).
fn write_layer(
    blob_dir: &Path,
    index: usize,
    files: &[PathBuf],
) -> io::Result<(String, String, u64)> {
    let staging = blob_dir.join(format!(".layer-{index}"));
    let compressed = HashingWriter::new(BufWriter::new(File::create(&staging)?));
    let gzip = flate2::write::GzEncoder::new(compressed, flate2::Compression::new(6));
    let mut tar = tar::Builder::new(HashingWriter::new(gzip));
    tar.mode(tar::HeaderMode::Deterministic);
    for path in files {
        let name = path.strip_prefix("/").unwrap_or(path);
        tar.append_path_with_name(path, name)?;
    }
    let uncompressed = tar.into_inner()?;
    let diff_id = uncompressed.digest();
    let mut compressed = uncompressed.inner.finish()?;
    compressed.flush()?;
    let digest = compressed.digest();
    let size = compressed.bytes;
    drop(compressed.inner);
    fs::rename(
        &staging,
        blob_dir.join(digest.trim_start_matches("sha256:")),
    )?;
    Ok((digest, diff_id, size))
}

fn write_blob(blob_dir: &Path, bytes: &[u8]) -> io::Result<String> {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::write(blob_dir.join(&hex), bytes)?;
    Ok(format!("sha256:{hex}"))
}
