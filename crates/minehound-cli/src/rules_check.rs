//! `minehound rules check`: which rules match each file, and with what strings.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use minehound::{Detector, SignaturesBuilder, classify};
use minehound_detect::{PACKER_RULES, sha256_hex};

/// Matches shown per pattern identifier; the rest are counted.
const SHOWN_PER_PATTERN: usize = 3;

fn is_rule_path(path: &std::path::Path) -> bool {
    path.is_dir() || path.extension().is_some_and(|e| e == "yar" || e == "yara")
}

pub fn check(paths: Vec<PathBuf>, rules: Vec<PathBuf>, no_default: bool) -> Result<ExitCode> {
    let (mut rule_paths, files): (Vec<_>, Vec<_>) =
        paths.into_iter().partition(|p| is_rule_path(p));
    rule_paths.extend(rules);
    // Rule files alone: compile them and say so.
    let bundled = !no_default && !files.is_empty();
    let mut builder = SignaturesBuilder::new().bundled(bundled);
    for path in &rule_paths {
        builder = builder.rules(path);
    }
    let signatures = builder.build()?;
    let mut out = io::stdout().lock();
    if files.is_empty() {
        writeln!(out, "ok: {} rules compile", signatures.rule_count())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut detector = Detector::new(&signatures);
    for path in &files {
        let data = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.display().to_string();
        let packed = show(&mut out, &mut detector, &name, &data)?;
        if !packed {
            continue;
        }
        // What a packed file unpacks to, as a scan checks it.
        let limit = minehound::Limits::default().max_file_size;
        // A hostile file may not crash the tool: a panic is reported.
        let unpacked = std::panic::catch_unwind(|| minehound::upx::unpack(&data, limit));
        match unpacked {
            Ok(Ok(image)) => {
                let name = format!("{name}!upx-unpacked");
                show(&mut out, &mut detector, &name, &image)?;
            }
            Ok(Err(err)) => writeln!(out, "  not unpacked: {err}")?,
            Err(_) => writeln!(out, "  not unpacked: internal error in the UPX unpacker")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the rules and detectors matching one file; true when it is a
/// packed ELF.
fn show(
    out: &mut impl Write,
    detector: &mut Detector<'_>,
    name: &str,
    data: &[u8],
) -> Result<bool> {
    let kind = classify(data);
    writeln!(
        out,
        "{name} ({kind:?}, {} bytes, sha256 {})",
        data.len(),
        sha256_hex(data)
    )?;
    let matches = detector
        .rule_matches(data)
        .with_context(|| format!("cannot check {name}"))?;
    // Findings of the code detectors (hash list, ELF parser) have no strings.
    let code: Vec<_> = detector
        .check(kind, data)
        .with_context(|| format!("cannot check {name}"))?
        .into_iter()
        .filter(|d| d.detector != "yara")
        .collect();
    if matches.is_empty() && code.is_empty() {
        writeln!(out, "  no rule matches")?;
    }
    for rule in &matches {
        let note = match rule.confirmed {
            Some(true) => ", confirmed",
            Some(false) => ", NOT confirmed: no finding in a scan",
            None => "",
        };
        writeln!(
            out,
            "  {} {} ({}{note})",
            rule.rule, rule.severity, rule.origin
        )?;
        let mut by_pattern: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for m in &rule.strings {
            by_pattern.entry(&m.identifier).or_default().push(m);
        }
        for (identifier, found) in by_pattern {
            for m in found.iter().take(SHOWN_PER_PATTERN) {
                let more = if m.length > m.excerpt.len() {
                    "..."
                } else {
                    ""
                };
                writeln!(
                    out,
                    "    {identifier} @0x{:x}: \"{}\"{more}",
                    m.offset,
                    m.excerpt.escape_ascii()
                )?;
            }
            if found.len() > SHOWN_PER_PATTERN {
                writeln!(
                    out,
                    "    {identifier}: {} more matches",
                    found.len() - SHOWN_PER_PATTERN
                )?;
            }
        }
    }
    let packed = kind == minehound::FileKind::Elf
        && code.iter().any(|d| PACKER_RULES.contains(&d.rule.as_str()));
    for d in code {
        writeln!(
            out,
            "  {} {} ({} detector): {}",
            d.rule, d.severity, d.detector, d.description
        )?;
    }
    Ok(packed)
}
