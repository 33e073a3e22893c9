//! What each command does, once its settings are resolved.

use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use minehound::{Report, SignaturesBuilder, render};

use crate::args::{Cli, Command, Format, RulesCommand};
use crate::settings::ScanSettings;

/// Exit code when a finding is at or above `--fail-on`.
const EXIT_FINDINGS: u8 = 1;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan(ScanSettings::from_args(*args)?),
        Command::Rules(args) => rules(args.command),
    }
}

fn scan(settings: ScanSettings) -> Result<ExitCode> {
    let scanner = settings
        .builder
        .build()
        .context("cannot prepare the scanner")?;
    let report = scanner
        .scan(&settings.request)
        .with_context(|| format!("scan of {} failed", settings.request.target_name))?;

    let text = match settings.format {
        Format::Json => render::json(&report).context("cannot encode the report")?,
        Format::Table => render::table(&report),
    };
    match &settings.output {
        Some(path) => fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => {
            let mut stdout = io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }

    let fails = report.fails(settings.fail_on);
    if !settings.quiet && (settings.output.is_some() || settings.format == Format::Json) {
        eprintln!("{}", verdict_line(&report, settings.fail_on, fails));
    }
    Ok(if fails {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// One line for CI logs: what was found and whether the gate passes.
fn verdict_line(report: &Report, fail_on: minehound::Severity, fails: bool) -> String {
    format!(
        "minehound: {} findings ({}); {} files in {} layers; gate at {fail_on}: {}",
        report.findings.len(),
        report.stats.findings,
        report.stats.files,
        report.stats.layers,
        if fails { "FAIL" } else { "pass" }
    )
}

fn rules(command: RulesCommand) -> Result<ExitCode> {
    match command {
        RulesCommand::List { rules } => {
            let mut builder = SignaturesBuilder::new();
            for path in rules {
                builder = builder.rules(path);
            }
            let signatures = builder.build()?;
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "signatures {} ({} rules, {} hashes)",
                signatures.version(),
                signatures.rule_count(),
                signatures.hash_count()
            )?;
            for rule in signatures.rules() {
                writeln!(
                    out,
                    "{:<24} {:<9} {:<10} {}",
                    rule.id,
                    rule.severity,
                    rule.family.as_deref().unwrap_or("-"),
                    rule.description
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Check {
            paths,
            rules,
            no_default_signatures,
        } => crate::rules_check::check(paths, rules, no_default_signatures),
    }
}
