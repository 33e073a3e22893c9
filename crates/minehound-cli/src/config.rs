//! `minehound.toml`: the scan options a project or a user wants every time.
//!
//! Keys are the long flag names (`fail-on = "high"`, `rules = ["x.yar"]`).
//! Precedence: command line, then `MINEHOUND_*` environment (both through
//! clap), then this file, then built-in defaults. Relative paths in the file are
//! relative to the file's directory, so a project's config works from anywhere.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::args::{FailOn, Format, ScanOptions, parse_age, parse_report, parse_size};

/// Name of the project config file looked for in the current directory.
pub const PROJECT_FILE: &str = "minehound.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    platform: Option<String>,
    all_platforms: Option<bool>,
    format: Option<Format>,
    output: Option<PathBuf>,
    report: Option<Vec<String>>,
    fail_on: Option<FailOn>,
    allowlist: Option<PathBuf>,
    rules: Option<Vec<PathBuf>>,
    hashes: Option<Vec<PathBuf>>,
    no_default_signatures: Option<bool>,
    max_file_size: Option<Size>,
    max_layer_size: Option<Size>,
    max_depth: Option<u32>,
    file_timeout: Option<String>,
    memory_budget: Option<Size>,
    username: Option<String>,
    insecure_registry: Option<Vec<String>>,
    ca_file: Option<Vec<PathBuf>>,
    registry_connections: Option<usize>,
    cache_dir: Option<PathBuf>,
    no_cache: Option<bool>,
    cache_url: Option<String>,
    database: Option<String>,
    jobs: Option<usize>,
    gzip_inflaters: Option<usize>,
    quiet: Option<bool>,
    no_progress: Option<bool>,
}

/// A size as a number of bytes or a string like `"64MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => parse_size(t).map_err(anyhow::Error::msg),
        }
    }
}

/// The config file to use: `explicit` (which must exist), else the project's
/// `minehound.toml`, else the user's; `None` when there is none.
pub fn find(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("config file {} does not exist", path.display());
        }
        return Ok(Some(path.to_path_buf()));
    }
    let project = PathBuf::from(PROJECT_FILE);
    if project.is_file() {
        return Ok(Some(project));
    }
    let user_dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    Ok(user_dir
        .map(|d| d.join("minehound").join("config.toml"))
        .filter(|p| p.is_file()))
}

/// Reads and checks a config file; errors name the file and the line.
pub fn load(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))
}

impl FileConfig {
    /// Fills what `options` left open from this file (read from `path`).
    /// The `database` the file sets (`minehound serve`'s store).
    pub fn database(&self) -> Option<String> {
        self.database.clone()
    }

    /// The `cache-dir` the file sets, relative to the file.
    pub fn cache_dir(&self, path: &Path) -> Option<PathBuf> {
        let base = path.parent().unwrap_or(Path::new("."));
        self.cache_dir.as_ref().map(|dir| base.join(dir))
    }

    pub fn fill(self, options: &mut ScanOptions, path: &Path) -> Result<()> {
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let key = |name: &str| format!("{}: {name}", path.display());

        options.platform = options.platform.take().or(self.platform);
        options.all_platforms = options.all_platforms.or(self.all_platforms);
        options.format = options.format.or(self.format);
        options.output = options.output.take().or(self.output.map(rel));
        if options.report.is_empty() {
            for text in self.report.unwrap_or_default() {
                let (format, file) = parse_report(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| key("report"))?;
                options.report.push((format, rel(file)));
            }
        }
        options.fail_on = options.fail_on.or(self.fail_on);
        options.allowlist = options.allowlist.take().or(self.allowlist.map(rel));
        if options.rules.is_empty() {
            options.rules = self
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(rel)
                .collect();
        }
        if options.hashes.is_empty() {
            options.hashes = self
                .hashes
                .unwrap_or_default()
                .into_iter()
                .map(rel)
                .collect();
        }
        options.no_default_signatures =
            options.no_default_signatures.or(self.no_default_signatures);
        if options.max_file_size.is_none() {
            options.max_file_size = self
                .max_file_size
                .map(|s| s.bytes())
                .transpose()
                .with_context(|| key("max-file-size"))?;
        }
        if options.max_layer_size.is_none() {
            options.max_layer_size = self
                .max_layer_size
                .map(|s| s.bytes())
                .transpose()
                .with_context(|| key("max-layer-size"))?;
        }
        options.max_depth = options.max_depth.or(self.max_depth);
        if options.memory_budget.is_none() {
            options.memory_budget = self
                .memory_budget
                .map(|s| s.bytes())
                .transpose()
                .with_context(|| key("memory-budget"))?;
        }
        if options.file_timeout.is_none() {
            options.file_timeout = self
                .file_timeout
                .as_deref()
                .map(parse_age)
                .transpose()
                .map_err(anyhow::Error::msg)
                .with_context(|| key("file-timeout"))?;
        }
        options.username = options.username.take().or(self.username);
        if options.insecure_registry.is_empty() {
            options.insecure_registry = self.insecure_registry.unwrap_or_default();
        }
        if options.ca_file.is_empty() {
            options.ca_file = self
                .ca_file
                .unwrap_or_default()
                .into_iter()
                .map(rel)
                .collect();
        }
        options.registry_connections = options.registry_connections.or(self.registry_connections);
        options.cache_dir = options.cache_dir.take().or(self.cache_dir.map(rel));
        options.no_cache = options.no_cache.or(self.no_cache);
        options.cache_url = options.cache_url.take().or(self.cache_url);
        options.jobs = options.jobs.or(self.jobs);
        options.gzip_inflaters = options.gzip_inflaters.or(self.gzip_inflaters);
        options.quiet = options.quiet.or(self.quiet);
        options.no_progress = options.no_progress.or(self.no_progress);
        Ok(())
    }
}
