//! From per-layer scans to one report: which layer added each file, and
//! whether a later layer deleted or replaced it.

use std::sync::Arc;

use minehound_oci::Image;
use minehound_report::{Finding, ImageSummary, LayerRef, LayerSummary, Report, Skipped, Status};

use crate::launched::command_finding;
use crate::layer::{FileFinding, LayerScan};

/// An image with the scan of each of its layers, bottom first.
pub(crate) struct ScannedImage {
    pub image: Image,
    pub scans: Vec<Arc<LayerScan>>,
}

/// Builds the report; `config_findings` checks each image's config.
pub(crate) fn build_report(
    target: &str,
    images: Vec<ScannedImage>,
    mut config_findings: impl FnMut(&Image) -> Vec<Finding>,
) -> Report {
    let mut report = Report::new(target);
    for ScannedImage { image, scans } in images {
        report.findings.extend(config_findings(&image));
        let image_findings = report.findings.len();
        let platform = image.platform.as_ref().map(|p| p.to_string());
        let mut layers = Vec::new();
        for (layer, scan) in image.layers.iter().zip(&scans) {
            let layer_ref = LayerRef {
                index: layer.index,
                digest: layer.display_digest().map(str::to_string),
                created_by: layer.created_by.clone(),
            };
            for file in &scan.findings {
                let status = if deleted_later(&file.path, &scans[layer.index + 1..]) {
                    Status::Deleted
                } else {
                    Status::Present
                };
                report.findings.extend(file_findings(
                    file,
                    &layer_ref,
                    status,
                    platform.as_deref(),
                ));
            }
            for skipped in &scan.skipped {
                report.skipped.push(Skipped {
                    path: skipped.path.clone(),
                    layer: layer_ref.clone(),
                    platform: platform.clone(),
                    size: skipped.size,
                    reason: skipped.reason.clone(),
                    failed: skipped.failed,
                });
            }
            let stats = &mut report.stats;
            stats.layers += 1;
            stats.files += scan.files;
            stats.files_scanned += scan.files_scanned;
            stats.elf_files += scan.elf_files;
            stats.archives += scan.archives;
            stats.bytes_compressed += scan.compressed_bytes;
            stats.bytes_uncompressed += scan.uncompressed_bytes;
            layers.push(LayerSummary {
                index: layer.index,
                digest: layer.display_digest().map(str::to_string),
                diff_id: layer.diff_id.clone(),
                media_type: layer.media_type.clone(),
                size: scan.compressed_bytes,
                uncompressed_size: scan.uncompressed_bytes,
                files: scan.files,
                created_by: layer.created_by.clone(),
            });
        }
        let exists = |path: &str| present_at_the_end(path, &scans);
        let launched = command_finding(&image, &report.findings[image_findings..], &exists);
        report.findings.extend(launched);
        report.stats.images += 1;
        report.images.push(ImageSummary {
            reference: image.reference.clone(),
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.config_digest.clone(),
            platform,
            layers,
        });
    }
    report.finish();
    report
}

/// The report's findings for one file: one per detection. The one place
/// a [`Finding`] is made from a layer's [`FileFinding`], for reports and for
/// [`LayerScan::findings`] alike.
pub(crate) fn file_findings<'a>(
    file: &'a FileFinding,
    layer: &'a LayerRef,
    status: Status,
    platform: Option<&'a str>,
) -> impl Iterator<Item = Finding> + 'a {
    file.detections.iter().map(move |detection| Finding {
        rule: detection.rule.clone(),
        detector: detection.detector.to_string(),
        severity: detection.severity,
        family: detection.family.clone(),
        path: file.path.clone(),
        status,
        layer: layer.clone(),
        sha256: file.sha256.clone(),
        size: file.size,
        platform: platform.map(str::to_string),
        description: detection.description.clone(),
        suppression: None,
    })
}

/// Whether the final image holds `path`: a layer wrote it and no layer
/// above removed it.
fn present_at_the_end(path: &str, scans: &[Arc<LayerScan>]) -> bool {
    (0..scans.len())
        .rev()
        .find(|&index| scans[index].paths.contains(path))
        .is_some_and(|index| !deleted_later(path, &scans[index + 1..]))
}

/// Whether a layer above removes `path` (whiteout of it or a parent, an opaque
/// parent directory) or writes something else at the same place.
fn deleted_later(path: &str, later: &[Arc<LayerScan>]) -> bool {
    // A member of a nested archive lives and dies with the archive file.
    let outer = path.split_once('!').map_or(path, |(outer, _)| outer);
    let under =
        |dir: &str| dir == "/" || outer.starts_with(&format!("{}/", dir.trim_end_matches('/')));
    later.iter().any(|scan| {
        scan.paths.contains(outer)
            || scan.whiteouts.iter().any(|w| w == outer || under(w))
            || scan.opaque_dirs.iter().any(|d| under(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(paths: &[&str], whiteouts: &[&str], opaque: &[&str]) -> Arc<LayerScan> {
        Arc::new(LayerScan {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            whiteouts: whiteouts.iter().map(|p| p.to_string()).collect(),
            opaque_dirs: opaque.iter().map(|p| p.to_string()).collect(),
            ..LayerScan::default()
        })
    }

    #[test]
    fn whiteouts_opaque_dirs_and_replacements_delete() {
        let f = "/opt/x/miner";
        assert!(!deleted_later(
            f,
            &[layer(&["/opt/y"], &["/opt/xx"], &["/opt/x/miner2"])]
        ));
        assert!(deleted_later(f, &[layer(&[], &["/opt/x/miner"], &[])]));
        assert!(deleted_later(f, &[layer(&[], &["/opt"], &[])]));
        assert!(deleted_later(f, &[layer(&[], &[], &["/opt/x"])]));
        assert!(deleted_later(f, &[layer(&["/opt/x/miner"], &[], &[])]));
        assert!(deleted_later(
            "/a.tgz!/bin/m",
            &[layer(&[], &["/a.tgz"], &[])]
        ));
        assert!(!deleted_later(f, &[]));
    }
}
