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
//! ```
//! use minehound::{ScanRequest, ScannerBuilder, Severity};
//!
//! // A root filesystem with a script that starts a miner.
//! let root = std::env::temp_dir().join(format!("minehound-doc-{}", std::process::id()));
//! std::fs::create_dir_all(root.join("opt"))?;
//! std::fs::write(
//!     root.join("opt/start.sh"),
//!     "#!/bin/sh\nxmrig -o stratum+tcp://pool.example.com:3333 --donate-level 1 -u WALLET\n",
//! )?;
//!
//! let scanner = ScannerBuilder::new().jobs(2).build()?; // compile the rules once
//! let target = format!("dir:{}", root.display());
//! let report = scanner.scan(&ScanRequest::new(target.parse()?, &target))?;
//! for finding in &report.findings {
//!     println!("{} {} in {}", finding.severity, finding.rule, finding.path);
//! }
//! assert!(report.fails(Severity::High));
//! # std::fs::remove_dir_all(&root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Embedding in a registry
//!
//! - A [`Scanner`] is cheap to clone and share across threads and tasks:
//!   the compiled rules, the worker pool and the layer cache are shared.
//! - [`Scanner::scan_layer`] scans one layer stream by media type, as it is
//!   uploaded, before any manifest names it, and returns its [`LayerScan`].
//! - Implement [`ImageSource`] over the registry's blob store (manifest by
//!   digest, blob reader by digest) and call [`Scanner::scan_source`] with a
//!   manifest digest when a manifest is pushed.
//! - [`Scanner::scan_manifests`] scans many manifests of a source, each unique
//!   layer once, one [`Report`] per image and a summary;
//!   [`Scanner::scan_storage`] does it for a whole CNCF Distribution storage
//!   tree ([`DistributionStorage`]).
//! - A [`Progress`] observer hears layer started / advanced / finding / done;
//!   a [`CancelToken`] stops a scan; finished layers stay in the
//!   [`LayerCache`], so the next scan resumes.
//! - From async code, [`Scanner::scan_async`] and [`Scanner::spawn_task`] run
//!   the blocking work on a thread of its own and return a future, on any
//!   runtime.
//!
//! `examples/registry.rs` is a small registry doing all of this in memory
//! (`cargo run --release -p minehound --example registry`).
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
mod sources;
mod task;

pub use cache::{CacheError, CacheUsage, LayerCache};
pub use config::IMAGE_CONFIG_PATH;
pub use error::{Error, LayerError};
pub use layer::{FileFinding, LayerScan, SkippedFile, scan_layer_blob};
pub use minehound_detect::{
    Detection, Detector, FileKind, IMAGE_CONFIG_RULE, LAUNCH_RULE, RuleMatch, Signatures,
    SignaturesBuilder, StringMatch, classify, sha256,
};
/// Why an [`ImageSource`] could not give a manifest or blob; also the
/// source errors inside [`Error::Source`].
pub use minehound_oci::Error as SourceError;
pub use minehound_oci::{
    Credentials, DigestResolver, DistributionStorage, ImageName, ImageRef, ImageSource, Platform,
    PlatformChoice, Pushed, RegistryOptions, SkippedManifest, StorageListing, StoredManifest,
    Target, digest_of,
};
pub use minehound_report::{
    Allowlist, AllowlistError, Finding, ImageExemption, Report, Severity, SkippedImage, Status,
    StorageReport, StorageSummary, StoredImage, Suppression, render,
};
pub use minehound_unpack::Limits;
pub use progress::{CancelToken, Progress};
pub use scanner::{PushOutcome, ScanRequest, Scanner, ScannerBuilder};
pub use sources::SourceRequest;
pub use task::ScanTask;

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
