//! The config file (`minehound.toml`), with the CLI's own parser: its
//! argument and config modules are compiled in from the binary crate.
#![no_main]

use std::path::Path;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/minehound-cli/src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../../crates/minehound-cli/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<config::FileConfig>(text) else {
        return;
    };
    let cli = args::Cli::try_parse_from(["minehound", "scan", "oci:x"]).expect("fixed arguments");
    if let args::Command::Scan(mut scan) = cli.command {
        let _ = file.fill(&mut scan.options, Path::new("/project/minehound.toml"));
    }
});
