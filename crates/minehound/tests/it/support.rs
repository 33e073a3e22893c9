use std::path::Path;
use std::sync::OnceLock;

use minehound::{
    Finding, PlatformChoice, Report, ScanRequest, Scanner, ScannerBuilder, Severity, Status,
};
use minehound_testdata::{BuiltImage, Entry, ImageSpec, Layer, write_oci_layout};

/// One scanner per test binary: rules compile once.
pub fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        ScannerBuilder::new()
            .jobs(2)
            .build()
            .expect("bundled signatures")
    })
}

pub fn scan(target: &str) -> Result<Report, minehound::Error> {
    scan_with(scanner(), target, PlatformChoice::Host)
}

pub fn scan_with(
    scanner: &Scanner,
    target: &str,
    platform: PlatformChoice,
) -> Result<Report, minehound::Error> {
    let request =
        ScanRequest::new(target.parse().expect("target parses"), target).platform(platform);
    scanner.scan(&request)
}

/// Writes `image` as an OCI layout under `dir` and returns the `oci:` target.
pub fn layout(dir: &Path, image: &BuiltImage) -> String {
    write_oci_layout(dir, &[(image, Some("latest"))]).unwrap();
    format!("oci:{}", dir.display())
}

/// An image of one gzip layer holding `entries`.
pub fn one_layer(entries: Vec<Entry>) -> BuiltImage {
    ImageSpec {
        layers: vec![Layer::gzip("COPY . /", entries)],
        ..ImageSpec::default()
    }
    .build()
}

pub fn findings_for<'a>(report: &'a Report, path: &str) -> Vec<&'a Finding> {
    report.findings.iter().filter(|f| f.path == path).collect()
}

/// (rule, path, status, layer index) of every finding at or above `min`.
pub fn summary(report: &Report, min: Severity) -> Vec<(String, String, Status, usize)> {
    let mut out: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity >= min)
        .map(|f| (f.rule.clone(), f.path.clone(), f.status, f.layer.index))
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// The report's counts add up: every file scanned or listed as skipped.
pub fn assert_accounting(report: &Report) {
    assert_eq!(
        report.stats.files,
        report.stats.files_scanned + report.stats.files_skipped,
        "files = scanned + skipped in {:#?}",
        report.stats
    );
    assert_eq!(report.stats.files_skipped as usize, report.skipped.len());
}

/// A multi-platform pair: a clean linux/amd64 image and a linux/arm64/v8 image
/// holding the demo's miner config and dropper.
pub fn clean_amd64_dirty_arm64() -> (BuiltImage, BuiltImage) {
    use minehound_testdata::{Platform, demo_image, tiny_elf};
    let clean = ImageSpec {
        layers: vec![Layer::gzip(
            "COPY hello /",
            vec![Entry::executable("/bin/hello", tiny_elf(b"hi"))],
        )],
        platform: Platform::linux("amd64", None),
        ..ImageSpec::default()
    }
    .build();
    let dirty = ImageSpec {
        layers: vec![Layer::gzip(
            "COPY app /",
            demo_image().layers[1].entries.clone(),
        )],
        platform: Platform::linux("arm64", Some("v8")),
        ..ImageSpec::default()
    }
    .build();
    (clean, dirty)
}
