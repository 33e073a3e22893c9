//! Renderers: the same [`Report`] as JSON for machines, SARIF for
//! code-scanning services, or a table for people.

mod sarif;
pub use sarif::sarif;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::{Report, Status};

/// The report as pretty-printed JSON (the contract in `DESIGN.md`).
pub fn json(report: &Report) -> serde_json::Result<String> {
    let mut out = serde_json::to_string_pretty(report)?;
    out.push('\n');
    Ok(out)
}

/// The report as a readable table with a summary line, for a terminal.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("Target: {}\n", report.target));
    for image in &report.images {
        out.push_str(&format!(
            "Image: {}{} ({} layers)\n",
            image.platform.as_deref().unwrap_or("unknown platform"),
            image
                .manifest_digest
                .as_deref()
                .map(|d| format!(" {d}"))
                .unwrap_or_default(),
            image.layers.len()
        ));
    }
    out.push_str(&format!(
        "Signatures: {} ({} rules, {} hashes)\n\n",
        report.signatures.version, report.signatures.rules, report.signatures.hashes
    ));

    if report.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        let multi_platform = report.images.len() > 1;
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        let mut header = vec!["SEVERITY", "RULE", "FAMILY", "PATH", "LAYER", "STATUS"];
        if multi_platform {
            header.push("PLATFORM");
        }
        table.set_header(header);
        for f in &report.findings {
            let layer = match &f.layer.digest {
                Some(d) => format!("#{} {}", f.layer.index, short_digest(d)),
                None => format!("#{}", f.layer.index),
            };
            let mut status = match f.status {
                Status::Present => "present",
                Status::Deleted => "deleted",
            }
            .to_string();
            if f.suppression.is_some() {
                status.push_str(" (allowed)");
            }
            let mut row = vec![
                f.severity.to_string(),
                f.rule.clone(),
                f.family.clone().unwrap_or_default(),
                f.path.clone(),
                layer,
                status.to_string(),
            ];
            if multi_platform {
                row.push(f.platform.clone().unwrap_or_default());
            }
            table.add_row(row);
        }
        out.push_str(&table.to_string());
        out.push('\n');

        // Each rule's description once, below the table, instead of a wide column.
        out.push_str("\nRules:\n");
        let mut seen = std::collections::BTreeSet::new();
        for f in &report.findings {
            if seen.insert(f.rule.as_str()) {
                out.push_str(&format!("  {}: {}\n", f.rule, f.description));
            }
        }
    }

    if let Some(allowlist) = &report.allowlist {
        out.push_str(&format!(
            "\nAllowlist {}: {} findings suppressed\n",
            allowlist.files.join(", "),
            allowlist.suppressed
        ));
        for f in report.findings.iter().filter(|f| f.suppression.is_some()) {
            let s = f.suppression.as_ref().expect("filtered");
            out.push_str(&format!(
                "  {} {}: {} ({})\n",
                f.rule, f.path, s.reason, s.entry
            ));
        }
        for e in &allowlist.expired {
            out.push_str(&format!(
                "  expired on {}, no longer suppresses: {} ({})\n",
                e.expires, e.entry, e.reason
            ));
        }
    }

    if !report.skipped.is_empty() {
        out.push_str(&format!(
            "\nNot fully scanned ({}):\n",
            report.skipped.len()
        ));
        for s in report.skipped.iter().take(20) {
            out.push_str(&format!(
                "  layer #{} {}: {}\n",
                s.layer.index, s.path, s.reason
            ));
        }
        if report.skipped.len() > 20 {
            out.push_str(&format!(
                "  … and {} more (see --format json)\n",
                report.skipped.len() - 20
            ));
        }
    }

    let s = &report.stats;
    out.push_str(&format!(
        "\n{} findings ({}) in {} images, {} layers, \
         {} files ({} ELF, {} skipped), {} compressed / {} uncompressed bytes\n",
        report.active_findings().count(),
        s.findings,
        s.images,
        s.layers,
        s.files,
        s.elf_files,
        s.files_skipped,
        s.bytes_compressed,
        s.bytes_uncompressed,
    ));
    out
}

/// `sha256:0123456789ab` — enough to recognise a layer in a table.
fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |i| i + 13);
    &digest[..end.min(digest.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Finding, LayerRef, Severity};

    fn sample() -> Report {
        let mut r = Report::new("oci:demo");
        r.signatures.version = "2026.11.26.1".into();
        r.findings.push(Finding {
            rule: "MH-XMRIG-ELF".into(),
            detector: "yara".into(),
            severity: Severity::Critical,
            family: Some("xmrig".into()),
            path: "/usr/bin/xmrig".into(),
            status: Status::Deleted,
            layer: LayerRef {
                index: 1,
                digest: Some(format!("sha256:{}", "ab".repeat(32))),
                created_by: Some("RUN curl …".into()),
            },
            sha256: Some("cd".repeat(32)),
            size: 42,
            platform: Some("linux/amd64".into()),
            description: "XMRig miner".into(),
            suppression: None,
        });
        r.stats.files = 3;
        r.finish();
        r
    }

    #[test]
    fn table_names_rule_path_layer_and_status() {
        let text = table(&sample());
        assert!(text.contains("MH-XMRIG-ELF"), "{text}");
        assert!(text.contains("/usr/bin/xmrig"));
        assert!(text.contains("#1 sha256:abababababab"));
        assert!(text.contains("deleted"));
        assert!(text.contains("1 findings (critical 1"));
    }

    #[test]
    fn json_round_trips_and_keeps_contract_fields() {
        let report = sample();
        let text = json(&report).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let f = &value["findings"][0];
        for key in [
            "rule",
            "detector",
            "severity",
            "path",
            "status",
            "layer",
            "sha256",
            "platform",
            "description",
        ] {
            assert!(f.get(key).is_some(), "finding lacks {key}");
        }
        assert_eq!(f["severity"], "critical");
        assert_eq!(f["status"], "deleted");
        assert_eq!(f["layer"]["index"], 1);
    }

    #[test]
    fn gate_compares_against_threshold() {
        let report = sample();
        assert!(report.fails(Severity::Medium));
        assert!(report.fails(Severity::Critical));
        assert!(!Report::new("x").fails(Severity::Info));
    }
}
