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

/// What the bench image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// ELF files only: this machine's binaries and libraries.
    Binaries,
    /// What the images of GPU clusters hold (CUDA, PyTorch, Jupyter): by
    /// bytes about two thirds ELF shared objects, a quarter weight-like
    /// data files that barely compress, the rest many small Python sources.
    MachineLearning,
}

impl Shape {
    /// `$MINEHOUND_BENCH_SHAPE`: `ml` for [`Shape::MachineLearning`], else
    /// [`Shape::Binaries`].
    pub fn from_env() -> Shape {
        match std::env::var("MINEHOUND_BENCH_SHAPE").as_deref() {
            Ok("ml") => Shape::MachineLearning,
            _ => Shape::Binaries,
        }
    }

    /// How the bench's directory and output name it.
    pub fn tag(self) -> &'static str {
        match self {
            Shape::Binaries => "ELF files",
            Shape::MachineLearning => "ML-image files (.so, .py, weights)",
        }
    }
}

/// One file of a bench layer.
#[derive(Debug, Clone)]
enum Member {
    /// A file of this machine, stored under its own path.
    Disk(PathBuf),
    /// Generated weight-like data: float32 values near zero, as model files
    /// hold, which gzip shrinks by only a few percent.
    Weights { name: String, size: u64 },
    /// A file of this machine stored under another name (Python sources
    /// repeated as the many packages of a site-packages tree).
    Renamed { path: PathBuf, name: String },
}

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
/// `target_bytes` of files of `shape`, under `dir`.
pub fn large_image(
    dir: &Path,
    target_bytes: u64,
    layers: usize,
    shape: Shape,
) -> io::Result<LargeImage> {
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

    let files = match shape {
        Shape::Binaries => elf_files(target_bytes, |_| true)
            .into_iter()
            .map(|(path, len)| (Member::Disk(path), len))
            .collect(),
        Shape::MachineLearning => ml_files(target_bytes),
    };
    let file_bytes: u64 = files.iter().map(|(_, n)| n).sum();
    // Consecutive runs of files, one per layer, of about equal size.
    let per_layer = file_bytes.div_ceil(layers as u64);
    let mut groups: Vec<Vec<Member>> = vec![Vec::new()];
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

/// The files of a [`Shape::MachineLearning`] image: ELF shared objects,
/// then Python sources, then weights, interleaved as a site-packages tree
/// interleaves them (a package's `.so` beside its `.py` and its data).
fn ml_files(target_bytes: u64) -> Vec<(Member, u64)> {
    let shared_objects: Vec<(Member, u64)> = elf_files(target_bytes * 2 / 3, |p| {
        p.to_string_lossy().contains(".so")
    })
    .into_iter()
    .map(|(path, len)| (Member::Disk(path), len))
    .collect();
    let mut sources = Vec::new();
    for root in ["/usr/lib/python3", "/usr/lib/python3.11"] {
        collect(Path::new(root), &mut sources);
    }
    sources.retain(|p| p.extension().is_some_and(|e| e == "py"));
    sources.sort();
    let python_bytes = target_bytes / 12;
    let mut python = Vec::new();
    let mut total = 0;
    'copies: for copy in 0.. {
        if sources.is_empty() {
            break;
        }
        for path in &sources {
            if total >= python_bytes {
                break 'copies;
            }
            let Ok(meta) = fs::metadata(path) else {
                continue;
            };
            let rel = path.strip_prefix("/usr/lib").unwrap_or(path);
            let name = format!("opt/conda/lib/site-packages/copy{copy}/{}", rel.display());
            total += meta.len();
            python.push((
                Member::Renamed {
                    path: path.clone(),
                    name,
                },
                meta.len(),
            ));
        }
    }
    let so_bytes: u64 = shared_objects.iter().map(|(_, n)| n).sum();
    let mut weights = Vec::new();
    let mut left = target_bytes.saturating_sub(so_bytes + total);
    let mut i = 0u64;
    while left > 0 {
        // 8 to 48 MiB: checkpoints and shards below the file size limit.
        let size = ((8 + (i * 13) % 41) << 20).min(left);
        let name = format!("opt/models/checkpoint-{i}/weights.bin");
        weights.push((Member::Weights { name, size }, size));
        left -= size;
        i += 1;
    }
    // Interleaved by position, so every layer of a split gets each kind.
    let kinds = [shared_objects, python, weights];
    let longest = kinds.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for k in 0..longest {
        for kind in &kinds {
            // Spread the shorter lists evenly along the longest.
            let step = longest.div_ceil(kind.len().max(1));
            if k % step == 0
                && let Some(member) = kind.get(k / step)
            {
                out.push(member.clone());
            }
        }
    }
    out
}

/// Weight-like bytes: float32 values of a narrow bell around zero, from a
/// fixed generator so the layer is the same on every run.
struct Weights {
    state: u64,
    left: u64,
}

impl io::Read for Weights {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize / 4 * 4;
        let n = if n == 0 {
            (self.left as usize).min(buf.len())
        } else {
            n
        };
        for word in buf[..n].chunks_mut(4) {
            // xorshift64*, four uniforms summed: close enough to a bell.
            let mut sum = 0.0f32;
            for _ in 0..4 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
                sum += (r >> 40) as f32 / (1u64 << 24) as f32;
            }
            let value = (sum - 2.0) * 0.02;
            let bytes = value.to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// ELF files of this machine whose path `keep` accepts, in a stable order,
/// until `target_bytes`; the Rust toolchains' big libraries fill up what
/// `/usr` lacks.
fn elf_files(target_bytes: u64, keep: impl Fn(&Path) -> bool) -> Vec<(PathBuf, u64)> {
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
            if meta.len() < 64 || !keep(&path) || !is_elf(&path) {
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
    files: &[Member],
) -> io::Result<(String, String, u64)> {
    let staging = blob_dir.join(format!(".layer-{index}"));
    let compressed = HashingWriter::new(BufWriter::new(File::create(&staging)?));
    let gzip = flate2::write::GzEncoder::new(compressed, flate2::Compression::new(6));
    let mut tar = tar::Builder::new(HashingWriter::new(gzip));
    tar.mode(tar::HeaderMode::Deterministic);
    for member in files {
        match member {
            Member::Disk(path) => {
                let name = path.strip_prefix("/").unwrap_or(path);
                tar.append_path_with_name(path, name)?;
            }
            Member::Renamed { path, name } => tar.append_path_with_name(path, name)?,
            Member::Weights { name, size } => {
                let mut header = tar::Header::new_gnu();
                header.set_size(*size);
                header.set_mode(0o644);
                let seed = 0x9e37_79b9_7f4a_7c15 ^ size;
                tar.append_data(
                    &mut header,
                    name,
                    Weights {
                        state: seed,
                        left: *size,
                    },
                )?;
            }
        }
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
