//! Renderers: the same [`Report`] as JSON for machines, SARIF for
//! code-scanning services, or a table for people.

mod sarif;
pub use sarif::sarif;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::{Finding, Report, Status, StorageReport};

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
            let status = status_text(f);
            let mut row = vec![
                f.severity.to_string(),
                f.rule.clone(),
                f.family.clone().unwrap_or_default(),
                f.path.clone(),
                layer,
                status,
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

    if report.incomplete() {
        out.push_str(&format!(
            "\nINCOMPLETE: the scanner failed on {} file(s); they have no verdict.\n",
            report.skipped.iter().filter(|s| s.failed).count()
        ));
    }
    if !report.skipped.is_empty() {
        out.push_str(&format!(
            "\nNot fully scanned ({}):\n",
            report.skipped.len()
        ));
        // Files the scanner failed on first: they matter most.
        let mut listed: Vec<_> = report.skipped.iter().collect();
        listed.sort_by_key(|s| !s.failed);
        for s in listed.into_iter().take(20) {
            let mark = if s.failed { "FAILED " } else { "" };
            out.push_str(&format!(
                "  {mark}layer #{} {}: {}\n",
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
        "\n{} findings ({}) in {} images, {} layers{}, \
         {} files ({} ELF, {} skipped), {} compressed / {} uncompressed bytes\n",
        report.active_findings().count(),
        s.findings,
        s.images,
        s.layers,
        if s.layers_cached > 0 {
            format!(" ({} from the layer cache)", s.layers_cached)
        } else {
            String::new()
        },
        s.files,
        s.elf_files,
        s.files_skipped,
        s.bytes_compressed,
        s.bytes_uncompressed,
    ));
    out
}

/// `present` or `deleted`, marked when an allowlist covers the finding.
fn status_text(f: &Finding) -> String {
    let status = match f.status {
        Status::Present => "present",
        Status::Deleted => "deleted",
    };
    if f.suppression.is_some() {
        format!("{status} (allowed)")
    } else {
        status.to_string()
    }
}

/// `sha256:0123456789ab` — enough to recognise a layer in a table.
fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |i| i + 13);
    &digest[..end.min(digest.len())]
}

/// A storage report as pretty-printed JSON.
pub fn storage_json(report: &StorageReport) -> serde_json::Result<String> {
    let mut out = serde_json::to_string_pretty(report)?;
    out.push('\n');
    Ok(out)
}

/// A storage report as tables: one row per image, the findings of each
/// image that has any, what was skipped, and the summary.
pub fn storage_table(report: &StorageReport) -> String {
    let mut out = format!(
        "Storage: {}\nSignatures: {} ({} rules, {} hashes)\n\n",
        report.storage,
        report.signatures.version,
        report.signatures.rules,
        report.signatures.hashes
    );
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(vec![
        "IMAGE",
        "DIGEST",
        "PLATFORMS",
        "LAYERS",
        "FINDINGS",
        "VERDICT",
    ]);
    for image in &report.images {
        let (platforms, layers, findings, verdict) = match (&image.report, &image.error) {
            (Some(r), _) => (
                r.images
                    .iter()
                    .map(|i| i.platform.as_deref().unwrap_or("unknown"))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.stats.layers.to_string(),
                r.active_findings().count().to_string(),
                r.highest_severity()
                    .map_or_else(|| "clean".to_string(), |s| s.to_string()),
            ),
            (None, error) => (
                String::new(),
                String::new(),
                String::new(),
                format!("error: {}", error.as_deref().unwrap_or("not scanned")),
            ),
        };
        table.add_row(vec![
            image.reference(),
            short_digest(&image.digest).to_string(),
            platforms,
            layers,
            findings,
            verdict,
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for image in &report.images {
        let Some(r) = image.report.as_ref().filter(|r| !r.findings.is_empty()) else {
            continue;
        };
        let mut findings = Table::new();
        findings
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec![
                "SEVERITY", "RULE", "PATH", "LAYER", "STATUS", "PLATFORM",
            ]);
        for f in &r.findings {
            let status = status_text(f);
            findings.add_row(vec![
                f.severity.to_string(),
                f.rule.clone(),
                f.path.clone(),
                format!("#{}", f.layer.index),
                status,
                f.platform.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&format!("\n{}:\n{findings}\n", image.reference()));
    }
    if !report.skipped.is_empty() {
        out.push_str(&format!("\nNot scanned ({}):\n", report.skipped.len()));
        for s in &report.skipped {
            out.push_str(&format!("  {}: {}\n", s.what, s.reason));
        }
    }
    let s = &report.summary;
    out.push_str(&format!(
        "\n{} images ({} failed, {} platform manifests) in {} repositories; \
         {} layer references, {} unique layers ({} scanned, {} from the layer cache), \
         {} compressed / {} uncompressed bytes; findings: {}; {:.1}s\n",
        s.images,
        s.images_failed,
        s.platform_images,
        s.repositories,
        s.layer_references,
        s.unique_layers,
        s.layers_scanned,
        s.layers_cached,
        s.bytes,
        s.bytes_uncompressed,
        s.findings,
        s.seconds
    ));
    out
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
