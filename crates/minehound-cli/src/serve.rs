//! `minehound serve`: the scan settings every job uses, logging, the runtime,
//! and the listener. The service itself is the minehound-server crate.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use minehound::PlatformChoice;
use minehound_server::{
    AdmissionSettings, AuthorizationType, PendingPolicy, ServerBuilder, UnresolvedPolicy,
};

use crate::args::{AdmissionPending, AdmissionUnresolved, HarborAuth, LogFormat, ServeArgs};
use crate::settings::{ConfigChoice, ScanSettings, database_url, severity};

pub fn serve(args: ServeArgs, config: ConfigChoice<'_>) -> Result<ExitCode> {
    if args.print_openapi {
        std::io::stdout().write_all(minehound_server::OPENAPI_YAML.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // The same resolution as `scan`, for a target that is never used: every
    // job names its own image.
    let admission = admission_settings(&args);
    let database = database_url(args.database.clone(), config)?;
    let mut options = args.options;
    // Replicas sharing a database share layer results through it too.
    if options.cache_url.is_none() {
        options.cache_url = database.clone();
    }
    let mut settings = ScanSettings::resolve("dir:/".into(), options, config)?;
    init_logging(args.log_format);
    let api_token = api_token(args.api_token_file.as_ref())?;
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => {
            default_state_dir().context("no state directory: set --state-dir (HOME is not set)")?
        }
    };
    // One task thread per worker, and as many again: a scan stopped at its
    // deadline gives its thread back only at its next block or file, and a
    // new job must not wait behind it with its own deadline running.
    let scanner = settings
        .take_builder()
        .tasks(args.workers.max(1).saturating_mul(2))
        .build()
        .context("cannot prepare the scanner")?;
    // Every platform of a multi-platform image, unless one was picked.
    let platform = match &settings.request.platform {
        PlatformChoice::Host => PlatformChoice::All,
        other => other.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("minehound-serve")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut builder = ServerBuilder::new(scanner, &state_dir)
            .registry(settings.request.registry.clone())
            .platform(platform)
            .allowlist(settings.allowlist.take())
            .fail_on(settings.fail_on)
            .workers(args.workers)
            .queue_size(args.queue_size)
            .api_token(api_token)
            .harbor_authorization(match args.harbor_auth {
                HarborAuth::Bearer => AuthorizationType::Bearer,
                HarborAuth::Basic => AuthorizationType::Basic,
            })
            .refresh_after(args.refresh_after)
            .notification_registry(args.notification_registry)
            .keep(args.keep)
            .job_timeout(args.job_timeout)
            .database(database)
            .job_lease(args.job_lease)
            .admission(admission);
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            builder = builder.tls(cert, key);
        }
        let server = builder.start().await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(
            address = %address,
            scheme = if server.tls() { "https" } else { "http" },
            state_dir = %state_dir.display(),
            workers = args.workers,
            "minehound serving"
        );
        server.serve(listener, shutdown()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How admission reviews are judged, from the flags.
fn admission_settings(args: &ServeArgs) -> AdmissionSettings {
    let mut exempt = AdmissionSettings::default().exempt_namespaces;
    for namespace in &args.admission_exempt_namespace {
        let namespace = namespace.trim();
        if !namespace.is_empty() && !exempt.iter().any(|n| n == namespace) {
            exempt.push(namespace.to_string());
        }
    }
    AdmissionSettings {
        budget: args.admission_budget,
        pending: match args.admission_pending {
            AdmissionPending::Deny => PendingPolicy::Deny,
            AdmissionPending::Warn => PendingPolicy::Warn,
            AdmissionPending::Allow => PendingPolicy::Allow,
        },
        unresolved: match args.admission_unresolved {
            AdmissionUnresolved::Deny => UnresolvedPolicy::Deny,
            AdmissionUnresolved::Allow => UnresolvedPolicy::Allow,
        },
        fail_on: severity(args.admission_fail_on),
        exempt_namespaces: exempt,
    }
}

/// Logs to standard error, as text or JSON; `MINEHOUND_LOG` filters.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINEHOUND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    // A contained panic (a hostile file) is one log line. Never a backtrace,
    // even under RUST_BACKTRACE: symbolizing one loads the binary's debug
    // information, hundreds of MiB kept for the life of the process, which
    // any image pushed with a crafted file could make the service pay.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            panic = minehound::panic_message(info.payload()),
            location,
            "internal error; contained: the file or job it struck fails, the service goes on"
        );
    }));
}

/// The API token from the file, else from `MINEHOUND_API_TOKEN`.
fn api_token(file: Option<&PathBuf>) -> Result<Option<String>> {
    let token = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API token from {}", path.display()))?,
        ),
        None => std::env::var("MINEHOUND_API_TOKEN").ok(),
    };
    let token = token.map(|t| t.trim().to_string());
    if token.as_deref() == Some("") {
        anyhow::bail!("the API token is empty");
    }
    Ok(token)
}

/// `$XDG_STATE_HOME/minehound`, else `~/.local/state/minehound`.
fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("minehound"))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: requests in flight finish, queued jobs resume on restart");
}
