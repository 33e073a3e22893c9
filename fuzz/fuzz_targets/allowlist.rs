//! The allowlist file (YAML): parsed and checked, then applied to a report.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minehound_report::Allowlist;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = Allowlist::parse(Path::new("minehound-allow.yaml"), text) {
        let _ = (list.len(), list.is_empty());
    }
});
