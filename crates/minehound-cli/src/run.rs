//! What each command does, once its settings are resolved.

use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use minehound::{
    DistributionStorage, PlatformChoice, PushOutcome, Report, SignaturesBuilder, SourceRequest,
    StorageReport, render,
};

use crate::args::{
    CacheArgs, CacheCommand, Cli, Command, Format, PushArgs, RulesCommand, StorageArgs,
};
use crate::settings::{ConfigChoice, ScanSettings};

/// Exit code when a finding is at or above `--fail-on`.
const EXIT_FINDINGS: u8 = 1;

/// Exit code when the scanner failed on a file (an internal error, a time
/// limit): no verdict, whatever was found, as for any other error.
const EXIT_INCOMPLETE: u8 = 2;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = if cli.no_config {
        ConfigChoice::Skip
    } else {
        ConfigChoice::Find(cli.config.as_deref())
    };
    match cli.command {
        Command::Scan(args) => scan(ScanSettings::resolve(args.target, args.options, config)?),
        Command::Push(args) => push(*args, config),
        Command::ScanStorage(args) => scan_storage(*args, config),
        Command::Serve(args) => crate::serve::serve(*args, config),
        Command::Rules(args) => rules(args.command),
        Command::Cache(args) => cache(args, config),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "minehound", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir.as_deref()),
    }
}

fn scan(mut settings: ScanSettings) -> Result<ExitCode> {
    let scanner = settings
        .take_builder()
        .build()
        .context("cannot prepare the scanner")?;
    let mut report = scanner
        .scan(&settings.request)
        .with_context(|| format!("scan of {} failed", settings.request.target_name))?;
    apply_allowlist(&settings, &mut report);
    emit(&settings, &report)?;
    let fails = report.fails(settings.fail_on);
    if !settings.quiet && (settings.output.is_some() || settings.format != Format::Table) {
        eprintln!("{}", verdict_line(&report, settings.fail_on, fails));
    }
    if !settings.quiet
        && let Some(path) = &settings.config_used
    {
        eprintln!("minehound: settings from {}", path.display());
    }
    if report.incomplete() {
        warn_incomplete(&report);
        return Ok(ExitCode::from(EXIT_INCOMPLETE));
    }
    Ok(exit_code(fails))
}

/// Says which files the scanner failed on: the verdict is not whole.
fn warn_incomplete(report: &Report) {
    let failed: Vec<_> = report.skipped.iter().filter(|s| s.failed).collect();
    eprintln!(
        "minehound: error: the scan is incomplete: the scanner failed on {} file(s), which have no verdict",
        failed.len()
    );
    for skipped in failed.iter().take(5) {
        eprintln!("minehound:   {}: {}", skipped.path, skipped.reason);
    }
}

/// The pre-push gate: scan SOURCE, push it to DESTINATION only if it passes.
fn push(args: PushArgs, config: ConfigChoice<'_>) -> Result<ExitCode> {
    let platform_given = args.options.platform.is_some();
    let mut settings = ScanSettings::resolve(args.source, args.options, config)?;
    // What is pushed is every platform, unless the user picked one.
    if !platform_given && settings.request.platform == PlatformChoice::Host {
        settings.request.platform = PlatformChoice::All;
    }
    let scanner = settings
        .take_builder()
        .build()
        .context("cannot prepare the scanner")?;
    // Credentials given for the push go to the destination only: a registry
    // source is read with what the config files hold for it.
    let destination_registry = settings.request.registry.clone();
    settings.request.registry.credentials = None;
    let fail_on = settings.fail_on;
    let outcome = scanner
        .scan_and_push(
            &settings.request,
            &args.destination,
            &destination_registry,
            |report| {
                apply_allowlist(&settings, report);
                // An incomplete scan vouches for nothing: not pushed.
                !report.fails(fail_on) && !report.incomplete()
            },
        )
        .with_context(|| {
            format!(
                "push of {} to {} failed",
                settings.request.target_name, args.destination
            )
        })?;
    let (report, pushed) = match outcome {
        PushOutcome::Refused(report) if report.incomplete() => {
            emit(&settings, &report)?;
            warn_incomplete(&report);
            eprintln!("minehound: not pushing {}", args.destination);
            return Ok(ExitCode::from(EXIT_INCOMPLETE));
        }
        PushOutcome::Refused(report) => (report, None),
        PushOutcome::Pushed(report, pushed) => (report, Some(pushed)),
        PushOutcome::Failed(report, err) => {
            // The verdict is still worth keeping (CI uploads it); then the error.
            emit(&settings, &report)?;
            return Err(anyhow::Error::new(err).context(format!(
                "push of {} to {} failed after the scan passed",
                settings.request.target_name, args.destination
            )));
        }
        _ => anyhow::bail!("unknown push outcome"),
    };
    emit(&settings, &report)?;
    match pushed {
        None => {
            eprintln!("{}", verdict_line(&report, fail_on, true));
            eprintln!(
                "minehound: not pushing {}: {} findings at or above {fail_on}",
                args.destination,
                report
                    .active_findings()
                    .filter(|f| f.severity >= fail_on)
                    .count()
            );
            Ok(exit_code(true))
        }
        Some(pushed) => {
            if !settings.quiet {
                eprintln!("{}", verdict_line(&report, fail_on, false));
                eprintln!(
                    "minehound: pushed {}@{} ({} manifests, {} blobs uploaded, {} already there, {} bytes)",
                    pushed.reference,
                    pushed.digest,
                    pushed.manifests,
                    pushed.blobs_uploaded,
                    pushed.blobs_present,
                    pushed.bytes_uploaded
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Every image of a Distribution storage tree, each unique layer once.
fn scan_storage(args: StorageArgs, config: ConfigChoice<'_>) -> Result<ExitCode> {
    let name = args.path.display().to_string();
    let mut settings = ScanSettings::resolve(name.clone(), args.options, config)?;
    if settings.format == Format::Sarif || settings.reports.iter().any(|(f, _)| *f == Format::Sarif)
    {
        anyhow::bail!("scan-storage writes table or json reports, not sarif");
    }
    let storage = DistributionStorage::open(&args.path)?;
    let scanner = settings
        .take_builder()
        .build()
        .context("cannot prepare the scanner")?;
    let mut request = SourceRequest::new(&name).untagged(args.untagged);
    // Every platform, unless the user picked one.
    if settings.request.platform != PlatformChoice::Host {
        request = request.platform(settings.request.platform.clone());
    }
    if let Some(progress) = &settings.request.progress {
        request = request.progress(progress.clone());
    }
    let mut report = scanner
        .scan_storage(&storage, &request)
        .with_context(|| format!("scan of the storage at {name} failed"))?;
    for image in &mut report.images {
        if let Some(image_report) = &mut image.report {
            apply_allowlist(&settings, image_report);
        }
    }
    report.finish();
    let render = |format: Format| -> Result<String> {
        Ok(match format {
            Format::Json => render::storage_json(&report).context("cannot encode the report")?,
            _ => render::storage_table(&report),
        })
    };
    for (format, path) in &settings.reports {
        fs::write(path, render(*format)?)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    write_output(&settings, &render(settings.format)?)?;
    let fails = report.fails(settings.fail_on);
    let s = &report.summary;
    if !settings.quiet && (settings.output.is_some() || settings.format != Format::Table) {
        eprintln!(
            "minehound: {} images ({} failed) in {} repositories; {} layer references, {} unique layers ({} scanned, {} cached); findings: {}; gate at {}: {}",
            s.images,
            s.images_failed,
            s.repositories,
            s.layer_references,
            s.unique_layers,
            s.layers_scanned,
            s.layers_cached,
            s.findings,
            settings.fail_on,
            if fails { "FAIL" } else { "pass" }
        );
    }
    Ok(storage_exit_code(&report, fails))
}

/// 2 when an image has no verdict or an incomplete one, else the gate's code.
fn storage_exit_code(report: &StorageReport, fails: bool) -> ExitCode {
    if report.summary.images_failed > 0 {
        for image in report.images.iter().filter(|i| i.error.is_some()) {
            eprintln!(
                "minehound: error: {} could not be scanned: {}",
                image.reference(),
                image.error.as_deref().unwrap_or_default()
            );
        }
        return ExitCode::from(EXIT_INCOMPLETE);
    }
    let mut incomplete = false;
    for image in &report.images {
        if let Some(scan) = image.report.as_ref().filter(|r| r.incomplete()) {
            eprintln!(
                "minehound: error: the scan of {} is incomplete:",
                image.reference()
            );
            warn_incomplete(scan);
            incomplete = true;
        }
    }
    if incomplete {
        return ExitCode::from(EXIT_INCOMPLETE);
    }
    exit_code(fails)
}

fn apply_allowlist(settings: &ScanSettings, report: &mut Report) {
    let Some(allowlist) = &settings.allowlist else {
        return;
    };
    allowlist.apply_today(report);
    if let Some(summary) = &report.allowlist {
        for expired in &summary.expired {
            eprintln!(
                "minehound: warning: allowlist entry {} expired on {}; it no longer suppresses anything",
                expired.entry, expired.expires
            );
        }
    }
}

/// Writes the report in the chosen format to the chosen place, and every
/// extra rendering (`--report FORMAT=FILE`) to its file.
fn emit(settings: &ScanSettings, report: &Report) -> Result<()> {
    let render = |format: Format| -> Result<String> {
        Ok(match format {
            Format::Json => render::json(report).context("cannot encode the report")?,
            Format::Sarif => render::sarif(report).context("cannot encode the report")?,
            Format::Table => render::table(report),
        })
    };
    for (format, path) in &settings.reports {
        fs::write(path, render(*format)?)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    write_output(settings, &render(settings.format)?)
}

/// Writes the main rendering to `--output`, else to standard output.
fn write_output(settings: &ScanSettings, text: &str) -> Result<()> {
    match &settings.output {
        Some(path) => fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => {
            let mut stdout = io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}

fn exit_code(fails: bool) -> ExitCode {
    if fails {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}

/// One line for CI logs: what was found and whether the gate passes.
fn verdict_line(report: &Report, fail_on: minehound::Severity, fails: bool) -> String {
    let suppressed = report.allowlist.as_ref().map_or(0, |a| a.suppressed);
    format!(
        "minehound: {} findings ({}){}; {} files in {} layers; gate at {fail_on}: {}",
        report.active_findings().count(),
        report.stats.findings,
        if suppressed > 0 {
            format!(", {suppressed} suppressed by the allowlist")
        } else {
            String::new()
        },
        report.stats.files,
        report.stats.layers,
        if fails { "FAIL" } else { "pass" }
    )
}

/// The man page from the CLI definition: to stdout, or one file per command.
fn man(dir: Option<&std::path::Path>) -> Result<ExitCode> {
    let command = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(command).render(&mut io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = vec![("minehound".to_string(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("minehound-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
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

/// A cache command on the layer results shared through the database at `url`.
fn shared_cache_command(url: &str, command: &CacheCommand) -> Result<String> {
    let shared = minehound_postgres::SharedLayers::connect(url)?;
    let shown = minehound_postgres::redact(url);
    let describe = |(layers, bytes): (u64, u64)| {
        format!(
            "{layers} layer results, {:.1} MiB",
            bytes as f64 / f64::from(1 << 20)
        )
    };
    Ok(match command {
        CacheCommand::Info => format!("{shown}: {}", describe(shared.usage()?)),
        CacheCommand::Prune {
            max_size,
            older_than,
        } => format!(
            "{shown}: removed {}; left {}",
            describe(shared.prune(*max_size, *older_than)?),
            describe(shared.usage()?)
        ),
        CacheCommand::Clear => format!(
            "{shown}: removed {}",
            describe(shared.prune(Some(0), None)?)
        ),
    })
}

fn cache(args: CacheArgs, config: ConfigChoice<'_>) -> Result<ExitCode> {
    let dir = crate::settings::cache_dir(args.cache_dir, config)?;
    let cache = minehound::LayerCache::open(&dir)?;
    let describe = |usage: minehound::CacheUsage| {
        format!(
            "{} layer results, {} file stamps, {} compiled rule sets, {:.1} MiB",
            usage.layers,
            usage.stamps,
            usage.rules,
            usage.bytes as f64 / f64::from(1 << 20)
        )
    };
    let line = match &args.command {
        CacheCommand::Info => format!("{}: {}", dir.display(), describe(cache.usage()?)),
        CacheCommand::Prune {
            max_size,
            older_than,
        } => {
            if max_size.is_none() && older_than.is_none() {
                anyhow::bail!("prune needs --max-size, --older-than or both");
            }
            let removed = cache.prune(*max_size, *older_than)?;
            format!(
                "removed {}; left {}",
                describe(removed),
                describe(cache.usage()?)
            )
        }
        CacheCommand::Clear => format!("removed {}", describe(cache.prune(Some(0), None)?)),
    };
    writeln!(io::stdout(), "{line}")?;
    if let Some(url) = &args.cache_url {
        writeln!(
            io::stdout(),
            "{}",
            shared_cache_command(url, &args.command)?
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
