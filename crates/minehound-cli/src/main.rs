//! `minehound`: a dispatcher. Parse arguments, run, map the outcome to an exit
//! code, print an error chain once.

mod args;
mod config;
mod progress;
mod rules_check;
mod run;
mod serve;
mod settings;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

/// Exit code when the scan could not be completed.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    // Before any thread starts; what it did is not the user's concern.
    let _ = minehound_alloc::tune_for_scanning();
    let args = match args::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_ERROR),
            };
        }
    };
    // Scans contain their panics (a file, a layer, a config fails instead);
    // one that gets past them still ends as an error, never an abort.
    let ran = std::panic::catch_unwind(|| run::run(args)).unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "internal error: {}",
            minehound::panic_message(&*panic)
        ))
    });
    match ran {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "minehound: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `minehound scan … | head` closing the pipe early is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
