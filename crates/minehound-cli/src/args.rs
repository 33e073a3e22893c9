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
///
/// Every scan flag can also come from a MINEHOUND_* environment variable (named
/// in each flag's help) or from a minehound.toml config file. Precedence:
/// command line, then environment, then config file, then built-in defaults.
#[derive(Debug, Parser)]
#[command(name = "minehound", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// Config file (default: ./minehound.toml, else $XDG_CONFIG_HOME/minehound/config.toml).
    #[arg(long, global = true, value_name = "FILE", env = "MINEHOUND_CONFIG")]
    pub config: Option<PathBuf>,

    /// Read no config file, so only flags, environment and defaults count (for CI
    /// gates that must not be loosened by a file in the repository).
    #[arg(long, global = true, conflicts_with = "config", env = "MINEHOUND_NO_CONFIG", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_config: bool,

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
    /// Scan a local image and push it to a registry only if the gate passes.
    ///
    /// SOURCE is a local image: oci:PATH[:TAG], oci-archive:FILE or
    /// docker-archive:FILE. DESTINATION is a registry reference
    /// (registry.example.com/team/app:1.4). Every platform of SOURCE is scanned
    /// and pushed (or those --platform picks). --username/--password-stdin and
    /// MINEHOUND_PASSWORD authenticate to the destination.
    ///
    /// Exit status: 0 scanned clean and pushed, 1 findings at or above
    /// --fail-on (nothing pushed), 2 the scan or the push failed.
    Push(Box<PushArgs>),
    /// Scan every image a CNCF Distribution registry stores, straight from
    /// its filesystem storage.
    ///
    /// PATH is the registry's storage root directory (holding
    /// docker/registry/v2) or the v2 directory. Every repository, every tag
    /// (and with --untagged, manifests no tag reaches) and every platform is
    /// scanned (or the one --platform picks), each unique layer once. The
    /// report holds one report per image and a summary. With the layer cache
    /// (on by default), a scan run again after an interruption reads only the
    /// layers not yet done. Registry flags do not apply.
    ///
    /// Exit status: 0 clean, 1 findings at or above --fail-on, 2 an image (or
    /// the storage) could not be scanned.
    ScanStorage(Box<StorageArgs>),
    /// Run the service registries and clusters call: Harbor's pluggable
    /// scanner API, CNCF Distribution push notifications, Kubernetes admission.
    ///
    /// Harbor: register http://ADDR as a scanner; it calls /api/v1/metadata,
    /// /api/v1/scan and /api/v1/scan/{id}/report. Distribution: point a
    /// notifications endpoint at http://ADDR/api/v1/notifications; every
    /// pushed manifest is scanned and GET /api/v1/images/{digest} answers its
    /// verdict. Also /healthz, /readyz, /metrics and /api/openapi.json. Jobs,
    /// reports and verdicts persist in --state-dir; the layer cache is shared
    /// by every job. Scan flags (signatures, limits, cache, --jobs, --fail-on,
    /// --allowlist, registry CA files and credentials for notified pulls)
    /// apply to every scan.
    ///
    /// Kubernetes: with --tls-cert and --tls-key, point a
    /// ValidatingWebhookConfiguration at https://ADDR/k8s/admission (or the
    /// ImagePolicyWebhook at /k8s/imagereview). Pods and workloads are judged
    /// by the verdict of every image they name (an unknown image is scanned
    /// within --admission-budget) and by how each container is launched. The
    /// images are pulled with the Docker config's credentials for their
    /// registry; pods' imagePullSecrets are not read. Stops on SIGINT or
    /// SIGTERM.
    Serve(Box<ServeArgs>),
    /// Show the signature set, or check rule files.
    Rules(RulesArgs),
    /// Show, prune or clear the layer cache.
    Cache(CacheArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into --dir.
    Man {
        /// Write minehound.1 and minehound-COMMAND.1 files here.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Layer cache directory (default: the config file's cache-dir, else
    /// $XDG_CACHE_HOME/minehound, else ~/.cache/minehound).
    #[arg(long, global = true, value_name = "DIR", env = "MINEHOUND_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Also the layer results shared through this PostgreSQL database
    /// (what scans' and the service's --cache-url or --database name).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "MINEHOUND_CACHE_URL",
        hide_env_values = true
    )]
    pub cache_url: Option<String>,

    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory, how many entries it holds and their size.
    Info,
    /// Remove entries not used for --older-than, then the least recently used
    /// ones until at most --max-size remain. Safe while scans use the cache.
    Prune {
        /// Keep at most this much (e.g. 2GiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Remove entries not used for this long (e.g. 30d, 12h).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<std::time::Duration>,
    },
    /// Remove every entry.
    Clear,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan.
    pub target: String,

    #[command(flatten)]
    pub options: ScanOptions,
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// The storage directory.
    pub path: PathBuf,

    /// Also scan manifests no tag reaches (overwritten tags, pushes by digest).
    #[arg(long)]
    pub untagged: bool,

    #[command(flatten)]
    pub options: ScanOptions,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is logged).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "MINEHOUND_LISTEN"
    )]
    pub listen: String,

    /// Where jobs, reports and verdicts are kept (default:
    /// $XDG_STATE_HOME/minehound, else ~/.local/state/minehound).
    #[arg(long, value_name = "DIR", env = "MINEHOUND_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Keep jobs, reports, verdicts and layer results in this PostgreSQL
    /// database instead (postgres://user:password@host/db, or the config
    /// file's `database`): every replica pointed at it shares one queue,
    /// one verdict per digest and one layer cache.
    #[arg(
        long,
        value_name = "URL",
        env = "MINEHOUND_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// How long a replica's claim on a job lasts without its heartbeat
    /// (with --database): how soon another replica takes over the jobs of
    /// one that died.
    #[arg(long, value_name = "AGE", default_value = "30s", value_parser = parse_age, env = "MINEHOUND_JOB_LEASE")]
    pub job_lease: std::time::Duration,

    /// Images scanned at once; their layers share the --jobs threads.
    #[arg(long, value_name = "N", default_value_t = 2, env = "MINEHOUND_WORKERS")]
    pub workers: usize,

    /// Jobs that may wait for a worker; beyond it, requests get 503.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        env = "MINEHOUND_QUEUE_SIZE"
    )]
    pub queue_size: usize,

    /// File holding the token the API requires as "Authorization: Bearer
    /// TOKEN" (health, readiness and metrics stay open). The token can also
    /// come from MINEHOUND_API_TOKEN.
    #[arg(long, value_name = "FILE", env = "MINEHOUND_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,

    /// The registry authorization Harbor is asked to send with scan requests.
    #[arg(
        long,
        value_enum,
        default_value = "bearer",
        env = "MINEHOUND_HARBOR_AUTH"
    )]
    pub harbor_auth: HarborAuth,

    /// Refresh-After given to Harbor while a report is pending (e.g. 5s).
    #[arg(long, value_name = "AGE", default_value = "5s", value_parser = parse_age, env = "MINEHOUND_REFRESH_AFTER")]
    pub refresh_after: std::time::Duration,

    /// Pull notified images from this registry URL (http://registry:5000)
    /// instead of the URL each event names. Only then do --username and
    /// MINEHOUND_PASSWORD go with those pulls (the Docker config's
    /// credentials go to the registry they are filed under, always).
    #[arg(long, value_name = "URL", env = "MINEHOUND_NOTIFICATION_REGISTRY")]
    pub notification_registry: Option<String>,

    /// How long ended jobs, their reports and verdicts are kept.
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = parse_age, env = "MINEHOUND_KEEP")]
    pub keep: std::time::Duration,

    /// Log lines as text or as JSON objects (one per line). MINEHOUND_LOG
    /// sets the level filter (default: info).
    #[arg(long, value_enum, default_value = "text", env = "MINEHOUND_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Print the service's OpenAPI description (YAML) and exit.
    #[arg(long)]
    pub print_openapi: bool,

    /// Serve HTTPS with this certificate chain (PEM), as the Kubernetes API
    /// server requires of webhooks. Read again when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "MINEHOUND_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert. Read again when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "MINEHOUND_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,

    /// The longest an admission review may take. An image not scanned yet is
    /// scanned within it; past it, --admission-pending decides. Keep it
    /// under the webhook's timeoutSeconds (10 s by default).
    #[arg(long, value_name = "AGE", default_value = "8s", value_parser = parse_age, env = "MINEHOUND_ADMISSION_BUDGET")]
    pub admission_budget: std::time::Duration,

    /// What an admission review gets while an image's scan is under way.
    #[arg(
        long,
        value_enum,
        default_value = "deny",
        env = "MINEHOUND_ADMISSION_PENDING"
    )]
    pub admission_pending: AdmissionPending,

    /// What an admission review gets for an image that cannot be resolved,
    /// pulled or scanned.
    #[arg(
        long,
        value_enum,
        default_value = "deny",
        env = "MINEHOUND_ADMISSION_UNRESOLVED"
    )]
    pub admission_unresolved: AdmissionUnresolved,

    /// The longest one scan job may take (e.g. 10m); past it the job ends
    /// failed with that reason, so a stalled scan never holds a verdict back.
    #[arg(long, value_name = "AGE", default_value = "10m", value_parser = parse_age, env = "MINEHOUND_JOB_TIMEOUT")]
    pub job_timeout: std::time::Duration,

    /// Findings at or above this deny an admission review; lower ones warn.
    #[arg(
        long,
        value_enum,
        default_value = "high",
        env = "MINEHOUND_ADMISSION_FAIL_ON"
    )]
    pub admission_fail_on: FailOn,

    /// A namespace whose objects pass admission unjudged (repeatable;
    /// kube-system, kube-public and kube-node-lease always are).
    #[arg(
        long,
        value_name = "NAMESPACE",
        env = "MINEHOUND_ADMISSION_EXEMPT_NAMESPACES",
        value_delimiter = ','
    )]
    pub admission_exempt_namespace: Vec<String>,

    #[command(flatten)]
    pub options: ScanOptions,
}

/// What admission answers while a scan is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdmissionPending {
    /// Refuse, saying the scan is under way (controllers retry).
    Deny,
    /// Allow with a warning.
    Warn,
    /// Allow.
    Allow,
}

/// What admission answers for an image that cannot be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdmissionUnresolved {
    /// Refuse, with the reason.
    Deny,
    /// Allow with a warning.
    Allow,
}

/// Registry authorization asked of Harbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HarborAuth {
    /// A pull token Harbor issues.
    Bearer,
    /// Robot account credentials.
    Basic,
}

/// How the service logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The local image to scan and push.
    pub source: String,

    /// Where to push it: a registry reference.
    pub destination: String,

    #[command(flatten)]
    pub options: ScanOptions,
}

/// Options shared by `scan` and `push`. `None` / empty means "not given here":
/// the config file or the default decides. Switches take an optional `=BOOL` so
/// the environment or the command line can turn off what a config file turned on.
#[derive(Debug, Args)]
pub struct ScanOptions {
    /// Platform to scan in a multi-platform image (default: the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", env = "MINEHOUND_PLATFORM")]
    pub platform: Option<String>,

    /// Scan every platform of a multi-platform image.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "MINEHOUND_ALL_PLATFORMS")]
    pub all_platforms: Option<bool>,

    /// Output format (default: table on a terminal, json otherwise).
    #[arg(short, long, value_enum, env = "MINEHOUND_FORMAT")]
    pub format: Option<Format>,

    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE", env = "MINEHOUND_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Also write the report in FORMAT to FILE, e.g. sarif=minehound.sarif (repeatable).
    #[arg(long, value_name = "FORMAT=FILE", value_parser = parse_report, env = "MINEHOUND_REPORT", value_delimiter = ',')]
    pub report: Vec<(Format, PathBuf)>,

    /// Exit 1 when an unsuppressed finding is at or above this severity [default: medium].
    #[arg(long, value_enum, env = "MINEHOUND_FAIL_ON")]
    pub fail_on: Option<FailOn>,

    /// Allowlist file (default: .minehound.yaml in the current directory, if present).
    #[arg(long, value_name = "FILE", env = "MINEHOUND_ALLOWLIST")]
    pub allowlist: Option<PathBuf>,

    /// Add YARA rules: a .yar/.yara file or a directory of them (repeatable; the
    /// environment variable holds one).
    #[arg(long, value_name = "PATH", env = "MINEHOUND_RULES")]
    pub rules: Vec<PathBuf>,

    /// Add a SHA-256 list: TSV with sha256, family, severity, name, source (repeatable;
    /// the environment variable holds one).
    #[arg(long, value_name = "FILE", env = "MINEHOUND_HASHES")]
    pub hashes: Vec<PathBuf>,

    /// Do not use the bundled rules and hashes.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "MINEHOUND_NO_DEFAULT_SIGNATURES")]
    pub no_default_signatures: Option<bool>,

    /// Largest file checked in full, e.g. 64MiB; larger files are checked in part and listed as skipped.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, env = "MINEHOUND_MAX_FILE_SIZE")]
    pub max_file_size: Option<u64>,

    /// Most bytes one layer may decompress to (decompression bombs), e.g. 16GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, env = "MINEHOUND_MAX_LAYER_SIZE")]
    pub max_layer_size: Option<u64>,

    /// How deep archives inside layers are opened.
    #[arg(long, value_name = "N", env = "MINEHOUND_MAX_DEPTH")]
    pub max_depth: Option<u32>,

    /// What the buffers of files being checked may hold at once, across all
    /// scans of the process (default 512MiB); a file waits for room rather
    /// than grow the process past it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, env = "MINEHOUND_MEMORY_BUDGET")]
    pub memory_budget: Option<u64>,

    /// How long the rules may run on one file (default 60s; e.g. 10s,
    /// 500ms). A file past it is listed as failed and the scan is
    /// incomplete (exit code 2).
    #[arg(long, value_name = "AGE", value_parser = parse_age, env = "MINEHOUND_FILE_TIMEOUT")]
    pub file_timeout: Option<std::time::Duration>,

    /// Registry user name; the password comes from --password-stdin or MINEHOUND_PASSWORD.
    #[arg(long, env = "MINEHOUND_USERNAME")]
    pub username: Option<String>,

    /// Read the registry password or token from standard input.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "MINEHOUND_PASSWORD_STDIN")]
    pub password_stdin: Option<bool>,

    /// Allow plain HTTP or unverified TLS for this registry host[:port] (repeatable).
    #[arg(
        long,
        value_name = "HOST",
        env = "MINEHOUND_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registry: Vec<String>,

    /// Trust this CA certificate (PEM) for registry TLS (repeatable; the environment
    /// variable holds one).
    #[arg(long, value_name = "FILE", env = "MINEHOUND_CA_FILE")]
    pub ca_file: Vec<PathBuf>,

    /// Range requests fetching one large registry layer at once (64 MiB and
    /// more, compressed) into a temporary file that --gzip-inflaters threads
    /// inflate while it arrives; 1 streams every layer (default: 4).
    #[arg(long, value_name = "N", env = "MINEHOUND_REGISTRY_CONNECTIONS")]
    pub registry_connections: Option<usize>,

    /// Layer cache directory (default: $XDG_CACHE_HOME/minehound, else ~/.cache/minehound).
    #[arg(long, value_name = "DIR", env = "MINEHOUND_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Read and write no layer cache: scan every layer.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "MINEHOUND_NO_CACHE")]
    pub no_cache: Option<bool>,

    /// Share layer results through this PostgreSQL database too
    /// (postgres://user:password@host/db): a layer another runner scanned
    /// is not read again. Whoever can write it decides the verdicts it
    /// serves: give write access to trusted runners only.
    #[arg(
        long,
        value_name = "URL",
        env = "MINEHOUND_CACHE_URL",
        hide_env_values = true
    )]
    pub cache_url: Option<String>,

    /// Worker threads (default: the number of cores).
    #[arg(short, long, value_name = "N", env = "MINEHOUND_JOBS")]
    pub jobs: Option<usize>,

    /// Threads that inflate one large gzip layer side by side, when it is
    /// read from a file (an OCI layout, an image archive); 0 for one thread
    /// (default: half of --jobs, at most 8, from 6 jobs up; 0 below).
    #[arg(long, value_name = "N", env = "MINEHOUND_GZIP_INFLATERS")]
    pub gzip_inflaters: Option<usize>,

    /// Print nothing on standard error but errors.
    #[arg(short, long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "MINEHOUND_QUIET")]
    pub quiet: Option<bool>,

    /// No progress bars (they only show on a terminal anyway).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "MINEHOUND_NO_PROGRESS")]
    pub no_progress: Option<bool>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A readable table.
    Table,
    /// The JSON report.
    Json,
    /// SARIF 2.1.0, for code-scanning services.
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

/// `sarif=out/minehound.sarif`: a format and the file it goes to.
pub fn parse_report(text: &str) -> Result<(Format, PathBuf), String> {
    let (format, file) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not FORMAT=FILE, e.g. sarif=minehound.sarif"))?;
    let format = Format::from_str(format, true)?;
    if file.is_empty() {
        return Err(format!("{text:?} names no file"));
    }
    Ok((format, PathBuf::from(file)))
}

/// `1048576`, `64K`, `64MiB`, `2G`… (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text, "a size like 64MiB")?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
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

/// `64MiB` as `(64, "MiB")`; `what` names the expected form in the error.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(u64, &'a str), String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number = digits
        .parse()
        .map_err(|_| format!("{text:?} is not {what}"))?;
    Ok((number, unit.trim()))
}

/// `30d`, `12h`, `90m`, `45s`, `500ms`.
pub fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = number_and_unit(text, "an age like 30d")?;
    let millis: u64 = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        "ms" => 1,
        other => return Err(format!("unknown age unit {other:?} (d, h, m, s or ms)")),
    };
    number
        .checked_mul(millis)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
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

    #[test]
    fn ages_take_a_unit() {
        assert_eq!(parse_age("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_age("12h").unwrap().as_secs(), 12 * 3_600);
        assert_eq!(parse_age("45s").unwrap().as_secs(), 45);
        assert_eq!(parse_age("250ms").unwrap().as_millis(), 250);
        assert!(parse_age("30").unwrap_err().contains("unknown age unit"));
        assert!(parse_age("d").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }
}
