//! SARIF 2.1.0 for code-scanning services (GitHub code scanning among them).
//!
//! One run; one SARIF rule per minehound rule that fired; one result per
//! finding, located at the file's path in the image with the layer as a
//! logical location. Suppressed findings carry a SARIF suppression, so
//! services show them as dismissed. Files that could not be fully read become
//! tool notifications, so they are not lost either.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{Finding, Report, Severity, Status};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The report as SARIF 2.1.0.
pub fn sarif(report: &Report) -> serde_json::Result<String> {
    // A rule's metadata from its most severe finding: a hash list rule's
    // severity varies by entry, and the rule must claim the worst.
    let mut rules: BTreeMap<&str, &Finding> = BTreeMap::new();
    for finding in &report.findings {
        let entry = rules.entry(&finding.rule).or_insert(finding);
        if finding.severity > entry.severity {
            *entry = finding;
        }
    }
    let rule_index: BTreeMap<&str, usize> =
        rules.keys().enumerate().map(|(i, id)| (*id, i)).collect();

    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": report.tool.name,
                    "version": report.tool.version,
                    "semanticVersion": report.tool.version,
                    "rules": rules.values().map(|f| rule(f)).collect::<Vec<_>>(),
                    "properties": {
                        "signatures": report.signatures.version,
                    },
                }
            },
            "invocations": [{
                "executionSuccessful": !report.incomplete(),
                "toolExecutionNotifications": report.skipped.iter().map(|s| json!({
                    "level": if s.failed { "error" } else { "warning" },
                    "message": { "text": format!("{} was not fully scanned: {}", s.path, s.reason) },
                    "locations": [location(&s.path, s.size, s.layer.index, s.layer.digest.as_deref(), s.platform.as_deref())],
                })).collect::<Vec<_>>(),
            }],
            "results": report.findings.iter().map(|f| result(f, rule_index[f.rule.as_str()])).collect::<Vec<_>>(),
            "properties": {
                "target": report.target,
                "images": report.images.iter().map(|i| json!({
                    "manifestDigest": i.manifest_digest,
                    "platform": i.platform,
                })).collect::<Vec<_>>(),
            },
        }],
    });
    let mut out = serde_json::to_string_pretty(&doc)?;
    out.push('\n');
    Ok(out)
}

fn rule(f: &Finding) -> Value {
    let family = f.family.as_deref().unwrap_or("unspecified");
    let text = format!(
        "{} Severity {}; family {family}. Rule {} of the minehound signature set.",
        sentence(&f.description),
        f.severity,
        f.rule
    );
    let markdown = format!(
        "**{}**\n\n{}\n\n| severity | family |\n| --- | --- |\n| {} | {family} |\n\n\
         A finding names the file's path in the image and the layer that added it. \
         Remove the file (and the layer step that fetched it), or, if it is expected, \
         add an entry with a reason to the allowlist (`.minehound.yaml`).",
        f.rule,
        sentence(&f.description),
        f.severity
    );
    let mut tags = vec!["security".to_string(), "cryptominer".to_string()];
    if let Some(family) = &f.family {
        tags.push(family.clone());
    }
    json!({
        "id": f.rule,
        "name": rule_name(&f.rule),
        "shortDescription": { "text": sentence(&f.description) },
        "fullDescription": { "text": text },
        "help": { "text": text, "markdown": markdown },
        "defaultConfiguration": { "level": level(f.severity) },
        "properties": {
            "tags": tags,
            "security-severity": security_severity(f.severity),
            "precision": if f.severity >= Severity::High { "high" } else { "medium" },
            "problem.severity": if f.severity >= Severity::High { "error" } else { "warning" },
        },
    })
}

fn result(f: &Finding, rule_index: usize) -> Value {
    let status = match f.status {
        Status::Present => "present in the final filesystem",
        Status::Deleted => "deleted by a later layer but still shipped in the image",
    };
    let layer = match &f.layer.digest {
        Some(d) => format!("layer {} ({d})", f.layer.index),
        None => format!("layer {}", f.layer.index),
    };
    let mut result = json!({
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": {
            "text": format!("{} ({}): {} in {layer}, {status}.", sentence_body(&f.description), f.severity, f.path)
        },
        "locations": [location(&f.path, f.size, f.layer.index, f.layer.digest.as_deref(), f.platform.as_deref())],
        "partialFingerprints": {
            "minehoundFinding/v1": format!("{}:{}:{}", f.rule, f.path, f.sha256.as_deref().unwrap_or("-")),
        },
        "properties": {
            "severity": f.severity,
            "detector": f.detector,
            "family": f.family,
            "status": f.status,
            "layerIndex": f.layer.index,
            "layerDigest": f.layer.digest,
            "createdBy": f.layer.created_by,
            "sha256": f.sha256,
            "size": f.size,
            "platform": f.platform,
        },
    });
    if let Some(s) = &f.suppression {
        result["suppressions"] = json!([{
            "kind": "external",
            "status": "accepted",
            "justification": s.reason,
            "location": { "physicalLocation": { "artifactLocation": { "uri": file_uri(s.entry.rsplit_once(':').map_or(s.entry.as_str(), |(file, _)| file)) } } },
            "properties": { "entry": s.entry, "expires": s.expires },
        }]);
    }
    result
}

/// The file's path in the image as a relative URI, the whole file as the
/// region (a binary file has no lines), and the layer (and the platform, for
/// multi-platform images) as the logical location.
fn location(
    path: &str,
    size: u64,
    layer: usize,
    digest: Option<&str>,
    platform: Option<&str>,
) -> Value {
    let mut name = format!("layer {layer}");
    if let Some(p) = platform {
        name = format!("{p} {name}");
    }
    json!({
        "physicalLocation": {
            "artifactLocation": { "uri": uri_of(path) },
            "region": { "startLine": 1, "byteOffset": 0, "byteLength": size },
        },
        "logicalLocations": [{
            "name": name,
            "fullyQualifiedName": digest.unwrap_or("unknown"),
            "kind": "module",
        }],
    })
}

/// A path in the image as a relative URI reference: no leading `/`, and every
/// byte outside the unreserved set percent-encoded.
fn uri_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.trim_start_matches('/').bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// A file on this machine (the allowlist) as a URI: absolute paths as
/// `file:///…`, relative ones as relative references.
fn file_uri(path: &str) -> String {
    if path.starts_with('/') {
        format!("file:///{}", uri_of(path))
    } else {
        uri_of(path)
    }
}

/// `critical`/`high` block a merge, `medium` warns, the rest is a note.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub's scale: 9.0+ critical, 7.0+ high, 4.0+ medium, below that low.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

/// `MH-XMRIG-ELF` → `MhXmrigElf`: SARIF wants a readable, identifier-like name.
fn rule_name(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let lower = p.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// SARIF messages must end with a period.
fn sentence(text: &str) -> String {
    format!("{}.", sentence_body(text))
}

fn sentence_body(text: &str) -> &str {
    text.trim().trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_relative_uris() {
        assert_eq!(uri_of("/usr/bin/xmrig"), "usr/bin/xmrig");
        assert_eq!(uri_of("/opt/a b/x.tar.gz!/c"), "opt/a%20b/x.tar.gz%21/c");
        assert_eq!(uri_of("/é"), "%C3%A9");
        assert_eq!(
            file_uri("/ci/allow list.yaml"),
            "file:///ci/allow%20list.yaml"
        );
        assert_eq!(file_uri(".minehound.yaml"), ".minehound.yaml");
    }

    #[test]
    fn rule_names_are_identifiers() {
        assert_eq!(rule_name("MH-XMRIG-ELF"), "MhXmrigElf");
    }
}
