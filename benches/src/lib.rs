//! Inputs for minehound's benchmarks: real layers built from this machine's
//! files, so the numbers speak of what images hold.
#![deny(missing_docs)]

use std::fs;
use std::path::Path;

use minehound_testdata::{Entry, tar_bytes};

/// Size of the bench input in MiB: `$MINEHOUND_BENCH_MIB`, else `default`.
pub fn bench_mib(default: u64) -> u64 {
    std::env::var("MINEHOUND_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tar of real files from `/usr/lib` (ELF libraries mostly), about
/// `target_bytes` long, in a stable order.
pub fn usr_lib_tar(target_bytes: u64) -> Vec<u8> {
    let mut files = Vec::new();
    collect(Path::new("/usr/lib"), &mut files);
    files.sort();
    let mut entries = Vec::new();
    let mut total = 0u64;
    for path in files {
        if total >= target_bytes {
            break;
        }
        let Ok(data) = fs::read(&path) else { continue };
        total += data.len() as u64;
        entries.push(Entry::file(&path.display().to_string(), data));
    }
    tar_bytes(&entries)
}

/// Every regular file under `dir`, recursively (unreadable parts skipped).
pub fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// gzip at the level image builders use (6).
pub fn gzip_default(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("write to memory");
    enc.finish().expect("finish gzip")
}

mod e2e_image;
pub use e2e_image::{LargeImage, Shape, large_image};

/// Resets this process's peak RSS (Linux: `clear_refs` 5), so that
/// [`peak_rss_kib`] measures from now on.
pub fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS in KiB (`VmHWM`), 0 where unknown.
pub fn peak_rss_kib() -> u64 {
    process_peak_rss_kib("self")
}

/// Process `pid`'s peak RSS in KiB (`VmHWM`), 0 where unknown.
pub fn process_peak_rss_kib(pid: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
