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
//! `examples/registry.rs` is the pattern to copy (`cargo run --release -p
//! minehound --example registry`): an async registry that scans each layer
//! as it is uploaded, scans the image when its manifest is pushed without
//! reading those layers again, keeps each verdict with the scanner's
//! version, and cancels scans it no longer needs.
//!
//! - **One scanner.** A [`Scanner`] is cheap to clone and share across
//!   threads and tasks: the compiled rules, the workers, the task threads
//!   and the [`LayerCache`] are shared.
//! - **Upload time.** [`Scanner::scan_layer`] scans a layer stream before any
//!   manifest names it, whatever media type the blob was stored under: gzip,
//!   zstd and plain tar are told apart by their first bytes
//!   ([`is_layer_media_type`] tells a layer's type from a generic one).
//!   [`Scanner::scan_layer_with`] takes a [`LayerRequest`]: the digest to
//!   check (a scan that matches fills the layer cache), a [`CancelToken`], a
//!   [`Progress`] observer. From async code, [`Scanner::scan_layer_async`]
//!   (a sync reader) and [`Scanner::scan_layer_stream`] (an async body) run
//!   it on the scanner's task threads.
//! - **Manifest time.** [`Scanner::scan_async_source`] scans an image from
//!   async storage ([`AsyncImageSource`]): blobs fetched lazily, a few chunks
//!   of each open layer in memory, the caller's runtime never blocked. A
//!   sync store implements [`ImageSource`] for [`Scanner::scan_source`].
//!   Layers scanned at upload come from the cache, unread when the store
//!   [vouches for digests](AsyncImageSource::verifies_digests).
//!   [`Scanner::scan_manifests`] and [`Scanner::scan_storage`] scan many
//!   images, each unique layer once.
//! - **Verdicts.** [`LayerScan::findings`] gives the same [`Finding`] a
//!   [`Report`] holds, so one code path handles both; each bundled rule
//!   links to its documentation ([`rule_reference`]). Store
//!   [`Scanner::version`] with each verdict and rescan when it changes.
//! - **Failures.** [`Error::kind`] says whether the input was bad (refuse
//!   it), the storage failed (retry) or the engine did (fix the setup);
//!   [`Error::chain`] prints every cause on one line.
//! - **Tasks.** Every async call returns a future that needs no particular
//!   runtime; dropping it cancels the scan. The blocking work runs on a
//!   bounded pool of task threads owned by the scanner
//!   ([`ScannerBuilder::tasks`]), never a thread per call. A scan of async
//!   storage is queued when its future is first polled and holds a task
//!   thread until it ends: size the pool above the image scans that run at
//!   once.
//!
//! ```
//! use std::collections::HashMap;
//! use std::io::Read;
//! use minehound::{
//!     ImageSource, LayerCache, LayerRequest, ScannerBuilder, Severity, SourceError, SourceRequest,
//! };
//! use minehound_testdata::demo_image;
//!
//! /// The registry's storage (here: memory), which checked every upload's digest.
//! struct Store(HashMap<String, Vec<u8>>);
//!
//! impl ImageSource for Store {
//!     fn name(&self) -> String { "registry".into() }
//!     fn manifest(&self, digest: &str, _limit: u64) -> Result<Vec<u8>, SourceError> {
//!         self.0.get(digest).cloned().ok_or_else(|| SourceError::MissingBlob(digest.into()))
//!     }
//!     fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, SourceError> {
//!         let bytes = self.0.get(digest).ok_or_else(|| SourceError::MissingBlob(digest.into()))?;
//!         Ok(Box::new(&bytes[..]))
//!     }
//!     fn verifies_digests(&self) -> bool { true }
//! }
//!
//! let cache = tempfile::tempdir()?;
//! let scanner = ScannerBuilder::new()
//!     .jobs(2)
//!     .cache(LayerCache::open(cache.path())?)
//!     .build()?;
//! let image = demo_image().build();
//! let mut store = Store(HashMap::new());
//!
//! // Upload time: each layer, stored as an opaque blob, checked against its digest.
//! for layer in &image.layers {
//!     let request = LayerRequest::new("application/octet-stream").digest(&layer.digest);
//!     let scan = scanner.scan_layer_with(&layer.bytes[..], &request)?;
//!     for finding in scan.findings().iter().filter(|f| f.severity >= Severity::High) {
//!         let docs = minehound::rule_reference(&finding.rule).unwrap_or_default();
//!         println!("{} {} in {} ({docs})", finding.severity, finding.rule, finding.path);
//!     }
//!     store.0.insert(layer.digest.clone(), layer.bytes.clone());
//! }
//!
//! // Manifest time: the layers come from the cache, unread.
//! for blob in [&image.config, &image.manifest] {
//!     store.0.insert(blob.digest.clone(), blob.bytes.clone());
//! }
//! let request = SourceRequest::new("team/app:1");
//! let report = scanner.scan_source(&store, &image.manifest.digest, &request)?;
//! assert_eq!(report.stats.layers_cached, 3);
//!
//! // The verdict, kept with what made it: rescan when `scanner.version()` changes.
//! let verdict = (image.manifest.digest.clone(), scanner.version().key(), report.fails(Severity::High));
//! assert!(verdict.2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod async_source;
mod bridge;
mod builder;
mod cache;
mod config;
mod error;
mod file_check;
mod fs_scan;
mod launched;
mod layer;
mod layer_share;
mod media_type;
mod merge;
mod progress;
mod request;
mod rule_docs;
mod scanner;
mod sources;
mod stream_scan;
mod task;
mod task_pool;
mod upload;
mod version;

pub use async_source::{AsyncBlob, AsyncImageSource, AsyncScan, BoxFuture, CHUNKS_AHEAD};
pub use builder::ScannerBuilder;
pub use cache::{CacheError, CacheUsage, LayerCache, SharedLayerStore};
pub use config::IMAGE_CONFIG_PATH;
pub use error::{Error, ErrorChain, ErrorKind, LayerError, panic_message};
pub use layer::{FileFinding, LayerScan, SkippedFile, scan_layer_blob};
pub use media_type::is_layer_media_type;
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
    Allowlist, AllowlistError, Finding, ImageExemption, LayerRef, Report, Severity, SkippedImage,
    Status, StorageReport, StorageSummary, StoredImage, Suppression, render,
};
pub use minehound_unpack::{Limits, MemoryBudget, upx};
pub use progress::{CancelToken, Progress};
pub use request::ScanRequest;
pub use rule_docs::{RULES_DOC_URL, rule_anchor, rule_reference};
pub use scanner::{PushOutcome, Scanner};
pub use sources::SourceRequest;
pub use task::ScanTask;
pub use upload::LayerRequest;
pub use version::{ScannerVersion, VERSION};

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
