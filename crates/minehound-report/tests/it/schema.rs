use std::path::{Path, PathBuf};

use minehound_report::{
    Allowlist, Finding, LayerRef, Report, Severity, SignatureSet, Status, StorageReport,
    StoredImage, render,
};

fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json")
}

fn sample() -> Report {
    let mut report = Report::new("oci:demo");
    for (rule, path) in [
        ("MH-XMRIG-ELF", "/usr/bin/xmrig"),
        ("MH-RANDOMX-CODE-ELF", "/usr/lib/librandomx.so.0"),
    ] {
        report.findings.push(Finding {
            rule: rule.into(),
            detector: "yara".into(),
            severity: Severity::Critical,
            family: Some("xmrig".into()),
            path: path.into(),
            status: Status::Present,
            layer: LayerRef {
                index: 0,
                digest: Some(format!("sha256:{}", "ab".repeat(32))),
                created_by: None,
            },
            sha256: Some("cd".repeat(32)),
            size: 7,
            platform: Some("linux/amd64".into()),
            description: "a rule".into(),
            suppression: None,
        });
    }
    report.finish();
    let allowlist = Allowlist::parse(
        Path::new(".minehound.yaml"),
        "allow:\n  - rule: MH-RANDOMX-CODE-ELF\n    reason: node\n    expires: 2999-01-01\n",
    )
    .unwrap();
    allowlist.apply_today(&mut report);
    report
}

/// The schema committed at `path` (written first under `MINEHOUND_BLESS=1`),
/// asserted to be `schema`, the one the model derives.
fn committed_schema(path: &Path, schema: serde_json::Value) -> serde_json::Value {
    if std::env::var_os("MINEHOUND_BLESS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
    }
    // Compared as JSON values, not text: key order follows serde_json's
    // `preserve_order`, which yara-x turns on in a workspace build only.
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or_default();
    assert!(
        committed == schema,
        "{} is out of date; rerun with MINEHOUND_BLESS=1",
        path.display()
    );
    committed
}

/// The committed schema is the one the model derives; regenerate it with
/// `MINEHOUND_BLESS=1 cargo test -p minehound-report`.
#[test]
fn committed_schema_matches_the_model() {
    committed_schema(&schema_file(), minehound_report::report_schema());
}

/// Each way `json` breaks `validator`'s schema, with where.
fn schema_errors(validator: &jsonschema::Validator, json: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn reports_validate_against_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_file()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for report in [Report::new("empty"), sample()] {
        let errors = schema_errors(&validator, &render::json(&report).unwrap());
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // And the schema is strict enough to catch a broken report.
    let mut broken: serde_json::Value =
        serde_json::from_str(&render::json(&sample()).unwrap()).unwrap();
    broken["findings"][0]["severity"] = "catastrophic".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn suppressed_findings_stay_in_json_and_sarif() {
    let report = sample();
    let json: serde_json::Value = serde_json::from_str(&render::json(&report).unwrap()).unwrap();
    let suppressed: Vec<_> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("suppression").is_some())
        .collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["suppression"]["entry"], ".minehound.yaml:2");

    let sarif: serde_json::Value = serde_json::from_str(&render::sarif(&report).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let dismissed: Vec<_> = results
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(dismissed.len(), 1);
    assert_eq!(dismissed[0]["ruleId"], "MH-RANDOMX-CODE-ELF");
    assert_eq!(dismissed[0]["suppressions"][0]["justification"], "node");
}

fn storage_schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/storage-report.schema.json")
}

/// The storage report's schema, committed and checked the same way.
#[test]
fn storage_reports_validate_against_the_committed_schema() {
    let committed = committed_schema(
        &storage_schema_file(),
        minehound_report::storage_report_schema(),
    );
    let mut report = StorageReport::new("/var/lib/registry", SignatureSet::default());
    report.images.push(StoredImage::scanned(
        "team/app".into(),
        Some("1".into()),
        format!("sha256:{}", "ef".repeat(32)),
        sample(),
    ));
    report.images.push(StoredImage::failed(
        "team/app".into(),
        None,
        format!("sha256:{}", "01".repeat(32)),
        "blob missing".into(),
    ));
    report.finish();
    assert_eq!(report.summary.images, 2);
    assert_eq!(report.summary.images_failed, 1);
    assert_eq!(
        report.summary.findings.critical, 1,
        "the suppressed one is not counted"
    );
    assert!(report.fails(Severity::Critical));
    let validator = jsonschema::validator_for(&committed).unwrap();
    let errors = schema_errors(&validator, &render::storage_json(&report).unwrap());
    assert!(errors.is_empty(), "{errors:#?}");
    let table = render::storage_table(&report);
    assert!(
        table.contains("team/app:1") && table.contains("error: blob missing"),
        "{table}"
    );
}
