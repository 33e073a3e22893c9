//! Arguments resolved into what the library needs: no clap types past here.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minehound::{
    Allowlist, Credentials, LayerCache, Limits, PlatformChoice, RegistryOptions, ScanRequest,
    ScannerBuilder, Severity, Target,
};

use crate::args::{FailOn, Format, ScanOptions};
use crate::config;

/// Whether to read a config file: find one (this one, if given) or none.
#[derive(Debug, Clone, Copy)]
pub enum ConfigChoice<'a> {
    /// `--config FILE`, else the project's, else the user's.
    Find(Option<&'a Path>),
    /// `--no-config`.
    Skip,
}

/// The allowlist picked up from the current directory when none is named.
const PROJECT_ALLOWLIST: &[&str] = &[".minehound.yaml", ".minehound.yml"];

/// Everything `minehound scan` decided from its arguments and environment.
#[derive(Debug)]
pub struct ScanSettings {
    pub request: ScanRequest,
    pub builder: ScannerBuilder,
    pub format: Format,
    pub output: Option<PathBuf>,
    /// Extra renderings: each format to its file.
    pub reports: Vec<(Format, PathBuf)>,
    pub fail_on: Severity,
    pub quiet: bool,
    pub allowlist: Option<Allowlist>,
    /// The config file that was read, if any (named in the verdict line).
    pub config_used: Option<PathBuf>,
}

impl ScanSettings {
    /// The scanner builder, taken out to build the scanner (it is consumed).
    pub fn take_builder(&mut self) -> ScannerBuilder {
        std::mem::replace(&mut self.builder, ScannerBuilder::new())
    }

    /// Resolves `options` for `target_name`: the command line and environment
    /// first, then the config file, then defaults.
    pub fn resolve(
        target_name: String,
        mut args: ScanOptions,
        config: ConfigChoice<'_>,
    ) -> Result<Self> {
        // --platform and --all-platforms are one setting: the higher source wins.
        match (&args.platform, args.all_platforms) {
            (Some(_), Some(true)) => {
                anyhow::bail!("--platform and --all-platforms exclude each other")
            }
            (Some(_), None) => args.all_platforms = Some(false),
            (None, Some(_)) => args.platform = Some(String::new()),
            _ => {}
        }
        let mut config_used = None;
        if let ConfigChoice::Find(explicit) = config
            && let Some(path) = config::find(explicit)?
        {
            config::load(&path)?.fill(&mut args, &path)?;
            config_used = Some(path);
        }
        if args.platform.as_deref() == Some("") {
            args.platform = None;
        }
        if args.no_default_signatures == Some(true)
            && args.rules.is_empty()
            && args.hashes.is_empty()
        {
            anyhow::bail!(
                "no signatures: --no-default-signatures needs --rules or --hashes{}",
                config_used
                    .as_ref()
                    .map(|p| format!(" (no-default-signatures came from {})", p.display()))
                    .unwrap_or_default()
            );
        }
        let target: Target = target_name.parse()?;
        let platform = if args.all_platforms.unwrap_or(false) {
            PlatformChoice::All
        } else if let Some(text) = &args.platform {
            PlatformChoice::Only(
                text.parse()
                    .map_err(|e: String| anyhow::anyhow!(e))
                    .context("--platform")?,
            )
        } else {
            PlatformChoice::Host
        };

        let defaults = Limits::default();
        let limits = Limits {
            max_file_size: args.max_file_size.unwrap_or(defaults.max_file_size),
            max_layer_size: args.max_layer_size.unwrap_or(defaults.max_layer_size),
            max_depth: args.max_depth.unwrap_or(defaults.max_depth),
            ..defaults
        };
        let mut builder = ScannerBuilder::new()
            .bundled_signatures(!args.no_default_signatures.unwrap_or(false))
            .limits(limits);
        for path in args.rules {
            builder = builder.rules(path);
        }
        for path in args.hashes {
            builder = builder.hashes(path);
        }
        if let Some(jobs) = args.jobs {
            builder = builder.jobs(jobs);
        }
        if let Some(threads) = args.gzip_inflaters {
            builder = builder.gzip_inflaters(threads);
        }
        if let Some(timeout) = args.file_timeout {
            builder = builder.file_timeout(timeout);
        }
        if let Some(bytes) = args.memory_budget {
            builder = builder.memory_budget(bytes);
        }
        let quiet = args.quiet.unwrap_or(false);
        if !args.no_cache.unwrap_or(false) {
            // A cache that cannot be opened costs speed, not the verdict.
            match args.cache_dir.or_else(LayerCache::default_dir) {
                Some(dir) => match LayerCache::open(&dir) {
                    Ok(cache) => {
                        builder =
                            builder.cache(shared_cache(cache, args.cache_url.as_deref(), quiet))
                    }
                    Err(err) if !quiet => {
                        eprintln!("minehound: warning: {err}; scanning without a cache")
                    }
                    Err(_) => {}
                },
                None if !quiet => {
                    eprintln!(
                        "minehound: warning: no cache directory (no HOME); scanning without a cache"
                    )
                }
                None => {}
            }
        }

        // A person at a terminal gets a table; a pipe or a file gets JSON.
        let format = args.format.unwrap_or(
            if args.output.is_none() && std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Json
            },
        );
        let fail_on = severity(args.fail_on.unwrap_or(FailOn::Medium));
        let credentials = credentials(
            args.username,
            args.password_stdin.unwrap_or(false),
            matches!(target, Target::Stdin),
        )?;
        let registry = RegistryOptions {
            credentials,
            insecure_registries: args.insecure_registry,
            ca_files: args.ca_file,
            connections: args
                .registry_connections
                .unwrap_or(RegistryOptions::default().connections),
            ..RegistryOptions::default()
        };
        let mut request = ScanRequest::new(target, target_name)
            .platform(platform)
            .registry(registry);
        if !quiet && !args.no_progress.unwrap_or(false) && std::io::stderr().is_terminal() {
            request = request.progress(std::sync::Arc::new(crate::progress::LayerBars::new()));
        }
        Ok(ScanSettings {
            request,
            builder,
            format,
            output: args.output,
            reports: args.report,
            fail_on,
            quiet,
            allowlist: load_allowlist(args.allowlist)?,
            config_used,
        })
    }
}

/// The named allowlist, else the project's, else none. A named file that is
/// missing or malformed is an error: a gate must not pass by accident.
fn load_allowlist(named: Option<PathBuf>) -> Result<Option<Allowlist>> {
    let path = match named {
        Some(path) => path,
        None => match PROJECT_ALLOWLIST
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    Ok(Some(Allowlist::load(&path)?))
}

/// Registry credentials: `--username` with the password from standard input
/// or, for CI secrets, `MINEHOUND_PASSWORD`.
fn credentials(
    username: Option<String>,
    password_stdin: bool,
    image_on_stdin: bool,
) -> Result<Option<Credentials>> {
    let Some(username) = username else {
        if password_stdin {
            anyhow::bail!("--password-stdin needs --username");
        }
        return Ok(None);
    };
    let password = if password_stdin {
        if image_on_stdin {
            anyhow::bail!("--password-stdin cannot be used when the image comes on stdin");
        }
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .context("reading the password from stdin")?;
        password.trim_end_matches(['\r', '\n']).to_string()
    } else {
        std::env::var("MINEHOUND_PASSWORD").map_err(|_| {
            anyhow::anyhow!("--username needs a password: --password-stdin or MINEHOUND_PASSWORD")
        })?
    };
    Ok(Some(Credentials { username, password }))
}

/// `cache` with the database at `url` behind it, when one is given and can be
/// reached; a database out of reach costs speed, not the verdict.
pub fn shared_cache(cache: LayerCache, url: Option<&str>, quiet: bool) -> LayerCache {
    let Some(url) = url else { return cache };
    match minehound_postgres::SharedLayers::connect(url) {
        Ok(shared) => cache.shared(std::sync::Arc::new(shared)),
        Err(err) => {
            if !quiet {
                eprintln!("minehound: warning: {err}; the layer cache is not shared");
            }
            cache
        }
    }
}

/// The database `minehound serve` keeps its state in: the flag or
/// environment, else the config file's `database`.
pub fn database_url(given: Option<String>, config: ConfigChoice<'_>) -> Result<Option<String>> {
    if given.is_some() {
        return Ok(given);
    }
    if let ConfigChoice::Find(explicit) = config
        && let Some(path) = config::find(explicit)?
    {
        return Ok(config::load(&path)?.database());
    }
    Ok(None)
}

/// The layer cache directory for cache commands: the flag or environment,
/// else the config file's `cache-dir`, else the user's cache directory.
pub fn cache_dir(given: Option<PathBuf>, config: ConfigChoice<'_>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    if let ConfigChoice::Find(explicit) = config
        && let Some(path) = config::find(explicit)?
        && let Some(dir) = config::load(&path)?.cache_dir(&path)
    {
        return Ok(dir);
    }
    LayerCache::default_dir().context("no cache directory: set --cache-dir, XDG_CACHE_HOME or HOME")
}

/// The severity a `--fail-on` style flag names.
pub fn severity(fail_on: FailOn) -> Severity {
    match fail_on {
        FailOn::Critical => Severity::Critical,
        FailOn::High => Severity::High,
        FailOn::Medium => Severity::Medium,
        FailOn::Low => Severity::Low,
        FailOn::Info => Severity::Info,
    }
}
