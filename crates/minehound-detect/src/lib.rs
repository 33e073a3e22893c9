//! Decides what a file is and whether it is, or helps run, a cryptocurrency miner.
//!
//! [`classify`] sorts a file by its magic bytes (never by its name) into ELF,
//! script, text, archive or other. [`Signatures`] holds the compiled YARA rules
//! (yara-x) and SHA-256 lists, built once by [`SignaturesBuilder`] and shared by
//! every worker; each worker makes its own [`Detector`] from them, because a
//! yara-x scanner must stay on one thread.
//!
//! ```
//! use minehound_detect::{classify, Detector, FileKind, SignaturesBuilder};
//!
//! let signatures = SignaturesBuilder::new().build().unwrap();
//! let mut detector = Detector::new(&signatures);
//! let script = b"#!/bin/sh\necho hello\n";
//! assert_eq!(classify(script), FileKind::Script);
//! let detections = detector.check(FileKind::Script, script).unwrap();
//! assert!(detections.is_empty());
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}
mod classify;
mod detector;
mod elf;
mod error;
pub mod fault;
mod hashes;
mod hiding;
pub mod monero;
mod signatures;

pub use classify::{FileKind, SNIFF_LEN, classify};
pub use detector::{
    CheckedFile, DEFAULT_FILE_TIMEOUT, DETECTORS, Detection, Detector, EXCERPT_LEN,
    IMAGE_CONFIG_RULE, KNOWN_HASH_RULE, LAUNCH_RULE, RuleMatch, Stage, StringMatch, sha256,
    sha256_hex,
};
pub use elf::{MALFORMED_RULE, PACKED_ENTROPY_RULE, PACKER_RULES, UPX_RULE, UPX_TAMPERED_RULE};
pub use error::Error;
pub use hashes::{HashEntry, HashList};
pub use hiding::{HIDDEN_PATH_RULE, hidden_path, hiding_place};
pub use minehound_report::Severity;
pub use signatures::{CompiledRulesStore, Confirm, RuleInfo, Signatures, SignaturesBuilder};

/// The rules minehound's own detectors report, beside the YARA rules of a
/// signature set: each is documented in `signatures/README.md` like them.
pub const DETECTOR_RULES: [&str; 8] = [
    KNOWN_HASH_RULE,
    UPX_RULE,
    UPX_TAMPERED_RULE,
    PACKED_ENTROPY_RULE,
    MALFORMED_RULE,
    HIDDEN_PATH_RULE,
    IMAGE_CONFIG_RULE,
    LAUNCH_RULE,
];
