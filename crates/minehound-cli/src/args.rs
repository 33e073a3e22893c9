//! The command line, as clap sees it. Nothing here reaches the library: see
//! `settings.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (signatures ",
    env!("MINEHOUND_SIGNATURES_VERSION"),
    ")"
);

/// Find cryptocurrency miners in container images before they run.
#[derive(Debug, Parser)]
#[command(name = "minehound", version = VERSION, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan an image, archive, directory or file and report miners.
    ///
    /// TARGET is one of: an image reference (alpine, registry:5000/team/app:1.4,
    /// docker://REF), oci:PATH[:TAG|@DIGEST] (OCI layout), oci-archive:FILE,
    /// docker-archive:FILE[:NAME:TAG] (docker save output), - (an archive on
    /// stdin), dir:PATH (a root filesystem), or a bare path judged by content.
    ///
    /// Exit status: 0 clean, 1 findings at or above --fail-on, 2 the scan could
    /// not be completed.
    Scan(Box<ScanArgs>),
    /// Show the signature set.
    Rules(RulesArgs),
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan.
    pub target: String,

    /// Platform to scan in a multi-platform image (default: the host's).
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "all_platforms"
    )]
    pub platform: Option<String>,

    /// Scan every platform of a multi-platform image.
    #[arg(long)]
    pub all_platforms: bool,

    /// Output format (default: table on a terminal, json otherwise).
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Medium)]
    pub fail_on: FailOn,

    /// Add YARA rules: a .yar/.yara file or a directory of them (repeatable).
    #[arg(long, value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Add a SHA-256 list: TSV with sha256, family, severity, name, source (repeatable).
    #[arg(long, value_name = "FILE")]
    pub hashes: Vec<PathBuf>,

    /// Do not use the bundled rules and hashes.
    #[arg(long)]
    pub no_default_signatures: bool,

    /// Largest file checked in full, e.g. 64MiB; larger files are checked in part and listed as skipped.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,

    /// Most bytes one layer may decompress to (decompression bombs), e.g. 16GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_layer_size: Option<u64>,

    /// How deep archives inside layers are opened.
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,

    /// Registry user name (with --password-stdin).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the registry password or token from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,

    /// Allow plain HTTP or unverified TLS for this registry host[:port] (repeatable).
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Trust this CA certificate (PEM) for registry TLS (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,

    /// Worker threads (default: the number of cores).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Print nothing on standard error but errors.
    #[arg(short, long)]
    pub quiet: bool,

    /// No progress bars (they only show on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules of the bundled set (and any added with --rules).
    List {
        /// Add YARA rules to the listing (repeatable).
        #[arg(long, value_name = "PATH")]
        rules: Vec<PathBuf>,
    },
    /// Show which rules match each file, with the matching strings.
    ///
    /// Rule files (.yar, .yara) and directories among the PATHs are compiled
    /// and added to the bundled set; given alone, they are only compiled, and
    /// errors name file and line. Every other PATH is a file to check.
    Check {
        /// Files to check, and rule files or directories to add.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Add YARA rules (repeatable).
        #[arg(long, value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// Check with the given rules only, not the bundled set.
        #[arg(long)]
        no_default_signatures: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// The JSON report.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

/// `1048576`, `64K`, `64MiB`, `2G`… (binary units).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
