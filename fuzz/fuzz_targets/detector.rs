//! The detector, as a scan runs it on each file of a layer: `classify`, then
//! `Detector::check_file` with the bundled signatures (SHA-256 list, goblin's
//! ELF checks for an ELF, yara-x and the rules' checks in code), on the whole
//! file and on a file cut at the size limit, then the hiding-place evidence.
//!
//! Built only with `--features detector` and, by `run.sh`, without a
//! sanitizer: yara-x brings wasmtime and cranelift (see the README).
#![no_main]

use std::cell::RefCell;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use minehound_detect::{Detector, FileKind, Signatures, SignaturesBuilder, classify, hidden_path};

/// Compiled once per process (about 0.4 s), shared like a scan's workers do.
static SIGNATURES: LazyLock<Signatures> = LazyLock::new(|| {
    SignaturesBuilder::new()
        .build()
        .expect("bundled signatures compile")
});

thread_local! {
    /// One detector (one yara-x scanner) per thread, as each scan worker has.
    static DETECTOR: RefCell<Detector<'static>> = RefCell::new(Detector::new(&SIGNATURES));
}

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    DETECTOR.with_borrow_mut(|detector| {
        // A whole file: hash lookup when a listed size matches, the ELF
        // checks when it sniffs as ELF, the rules. Scan errors (a yara-x
        // timeout) are results, not bugs.
        if let Ok(checked) = detector.check_file(kind, data, true) {
            if let Some(digest) = checked.sha256 {
                assert_eq!(digest, minehound_detect::sha256(data));
            }
            let _ = hidden_path("/tmp/.X11-unix/kworkerds", kind, &checked.detections);
        }
        // A file larger than the size limit: only its start, rules only.
        if let Ok(checked) = detector.check_file(kind, data, false) {
            assert!(checked.sha256.is_none());
            if kind == FileKind::Elf {
                assert!(checked.detections.iter().all(|d| d.detector != "elf"));
            }
        }
    });
});
