//! A layer result as one cache entry stores it: the SHA-256 of the JSON, then
//! the JSON, in a shape of its own so the library's types stay free to change
//! (an old entry then just misses).

use minehound_detect::{Detection, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layer::{FileFinding, LayerScan, SkippedFile};

/// Stored form: SHA-256 of the JSON, then the JSON.
pub(super) fn encode(scan: &LayerScan) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec(&Stored::from(scan))?;
    let mut out = Sha256::digest(&json).to_vec();
    out.extend_from_slice(&json);
    Ok(out)
}

pub(super) fn decode(bytes: &[u8]) -> Option<LayerScan> {
    let (sum, json) = bytes.split_at_checked(32)?;
    if Sha256::digest(json).as_slice() != sum {
        return None;
    }
    serde_json::from_slice::<Stored>(json).ok()?.into_scan()
}

/// [`LayerScan`] as stored: its own serde shape, so the library's types stay
/// free to change without breaking old cache files (they just miss).
#[derive(Serialize, Deserialize)]
struct Stored {
    digest: String,
    diff_id: String,
    compressed_bytes: u64,
    uncompressed_bytes: u64,
    files: u64,
    files_scanned: u64,
    elf_files: u64,
    archives: u64,
    findings: Vec<StoredFinding>,
    skipped: Vec<(String, u64, String)>,
    whiteouts: Vec<String>,
    opaque_dirs: Vec<String>,
    paths: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredFinding {
    path: String,
    sha256: Option<String>,
    size: u64,
    detections: Vec<StoredDetection>,
}

#[derive(Serialize, Deserialize)]
struct StoredDetection {
    rule: String,
    detector: String,
    severity: Severity,
    family: Option<String>,
    description: String,
}

impl From<&LayerScan> for Stored {
    fn from(s: &LayerScan) -> Stored {
        let mut paths: Vec<String> = s.paths.iter().cloned().collect();
        paths.sort();
        Stored {
            digest: s.digest.clone(),
            diff_id: s.diff_id.clone(),
            compressed_bytes: s.compressed_bytes,
            uncompressed_bytes: s.uncompressed_bytes,
            files: s.files,
            files_scanned: s.files_scanned,
            elf_files: s.elf_files,
            archives: s.archives,
            findings: s
                .findings
                .iter()
                .map(|f| StoredFinding {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                    detections: f
                        .detections
                        .iter()
                        .map(|d| StoredDetection {
                            rule: d.rule.clone(),
                            detector: d.detector.to_string(),
                            severity: d.severity,
                            family: d.family.clone(),
                            description: d.description.clone(),
                        })
                        .collect(),
                })
                .collect(),
            skipped: s
                .skipped
                .iter()
                .map(|k| (k.path.clone(), k.size, k.reason.clone()))
                .collect(),
            whiteouts: s.whiteouts.clone(),
            opaque_dirs: s.opaque_dirs.clone(),
            paths,
        }
    }
}

impl Stored {
    /// `None` when an entry names a detector this build does not know.
    fn into_scan(self) -> Option<LayerScan> {
        let mut findings = Vec::with_capacity(self.findings.len());
        for f in self.findings {
            let mut detections = Vec::with_capacity(f.detections.len());
            for d in f.detections {
                detections.push(Detection {
                    rule: d.rule,
                    detector: minehound_detect::DETECTORS
                        .iter()
                        .find(|known| **known == d.detector)?,
                    severity: d.severity,
                    family: d.family,
                    description: d.description,
                });
            }
            findings.push(FileFinding {
                path: f.path,
                sha256: f.sha256,
                size: f.size,
                detections,
            });
        }
        Some(LayerScan {
            digest: self.digest,
            diff_id: self.diff_id,
            compressed_bytes: self.compressed_bytes,
            uncompressed_bytes: self.uncompressed_bytes,
            files: self.files,
            files_scanned: self.files_scanned,
            elf_files: self.elf_files,
            archives: self.archives,
            findings,
            skipped: self
                .skipped
                .into_iter()
                .map(|(path, size, reason)| SkippedFile {
                    path,
                    size,
                    reason,
                    // Failed scans are never stored.
                    failed: false,
                })
                .collect(),
            whiteouts: self.whiteouts,
            opaque_dirs: self.opaque_dirs,
            paths: self.paths.into_iter().collect(),
        })
    }
}
