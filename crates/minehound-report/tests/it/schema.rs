use std::path::{Path, PathBuf};

use minehound_report::{Allowlist, Finding, LayerRef, Report, Severity, Status, render};

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

/// The committed schema is the one the model derives; regenerate it with
/// `MINEHOUND_BLESS=1 cargo test -p minehound-report`.
#[test]
fn committed_schema_matches_the_model() {
    let generated =
        serde_json::to_string_pretty(&minehound_report::report_schema()).unwrap() + "\n";
    if std::env::var_os("MINEHOUND_BLESS").is_some() {
        std::fs::write(schema_file(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(schema_file()).unwrap_or_default();
    // Compared as JSON values, not text: key order follows serde_json's
    // `preserve_order`, which yara-x turns on in a workspace build only.
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap_or_default();
    assert!(
        committed == minehound_report::report_schema(),
        "docs/report.schema.json is out of date; rerun with MINEHOUND_BLESS=1"
    );
}

#[test]
fn reports_validate_against_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_file()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for report in [Report::new("empty"), sample()] {
        let value: serde_json::Value =
            serde_json::from_str(&render::json(&report).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
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
