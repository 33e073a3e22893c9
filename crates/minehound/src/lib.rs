//! minehound finds cryptocurrency miners (XMRig and its kin) in container images
//! before they run.
//!
//! Build a [`Scanner`] once with [`ScannerBuilder`] (signatures, limits, worker
//! threads), then scan any number of targets. Every layer is streamed — never
//! extracted to disk — verified against its digests, and every file in it
//! classified by magic and checked by YARA rules and SHA-256 lists. The
//! [`Report`] says which file, in which layer, matched which rule, and whether a
//! later layer deleted it.
//!
//! ```no_run
//! use minehound::{ScannerBuilder, ScanRequest, Severity};
//!
//! let scanner = ScannerBuilder::new().jobs(2).build()?;
//! let request = ScanRequest::new("oci:./build/image".parse()?, "oci:./build/image");
//! let report = scanner.scan(&request)?;
//! for finding in &report.findings {
//!     println!("{} {} in layer {}", finding.severity, finding.path, finding.layer.index);
//! }
//! assert!(!report.fails(Severity::High));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod config;
mod error;
mod fs_scan;
mod layer;
mod merge;
mod progress;
mod scanner;

pub use cache::{CacheError, CacheUsage, LayerCache};
pub use config::IMAGE_CONFIG_PATH;
pub use error::{Error, LayerError};
pub use layer::{FileFinding, LayerScan, SkippedFile, scan_layer_blob};
pub use minehound_detect::{
    Detection, Detector, FileKind, IMAGE_CONFIG_RULE, RuleMatch, Signatures, SignaturesBuilder,
    StringMatch, classify, sha256,
};
pub use minehound_oci::{
    Credentials, ImageRef, Platform, PlatformChoice, Pushed, RegistryOptions, Target,
};
pub use minehound_report::{
    Allowlist, AllowlistError, Finding, Report, Severity, Status, Suppression, render,
};
pub use minehound_unpack::Limits;
pub use progress::Progress;
pub use scanner::{PushOutcome, ScanRequest, Scanner, ScannerBuilder};

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
