//! Arguments resolved into what the library needs: no clap types past here.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use minehound::{
    Credentials, Limits, PlatformChoice, RegistryOptions, ScanRequest, ScannerBuilder, Severity,
    Target,
};

use crate::args::{FailOn, Format, ScanArgs};

/// Everything `minehound scan` decided from its arguments and environment.
#[derive(Debug)]
pub struct ScanSettings {
    pub request: ScanRequest,
    pub builder: ScannerBuilder,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub fail_on: Severity,
    pub quiet: bool,
}

impl ScanSettings {
    pub fn from_args(args: ScanArgs) -> Result<Self> {
        let target: Target = args.target.parse()?;
        let platform = if args.all_platforms {
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
            .bundled_signatures(!args.no_default_signatures)
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

        // A person at a terminal gets a table; a pipe or a file gets JSON.
        let format = args.format.unwrap_or(
            if args.output.is_none() && std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Json
            },
        );
        let fail_on = match args.fail_on {
            FailOn::Critical => Severity::Critical,
            FailOn::High => Severity::High,
            FailOn::Medium => Severity::Medium,
            FailOn::Low => Severity::Low,
            FailOn::Info => Severity::Info,
        };
        let credentials = match args.username {
            Some(username) => {
                if matches!(target, Target::Stdin) {
                    anyhow::bail!("--password-stdin cannot be used when the image comes on stdin");
                }
                let mut password = String::new();
                std::io::stdin()
                    .read_line(&mut password)
                    .context("reading the password from stdin")?;
                Some(Credentials {
                    username,
                    password: password.trim_end_matches(['\r', '\n']).to_string(),
                })
            }
            None => None,
        };
        let registry = RegistryOptions {
            credentials,
            insecure_registries: args.insecure_registry,
            ca_files: args.ca_file,
            ..RegistryOptions::default()
        };
        let mut request = ScanRequest::new(target, args.target)
            .platform(platform)
            .registry(registry);
        if !args.quiet && !args.no_progress && std::io::stderr().is_terminal() {
            request = request.progress(std::sync::Arc::new(crate::progress::LayerBars::new()));
        }
        Ok(ScanSettings {
            request,
            builder,
            format,
            output: args.output,
            fail_on,
            quiet: args.quiet,
        })
    }
}
