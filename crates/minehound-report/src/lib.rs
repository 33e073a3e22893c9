//! The minehound report: what a scan found, where, and what it could not read.
//!
//! The library builds a [`Report`]; this crate only models and renders it, so the
//! CLI, the service and embedders all print the same thing. The JSON form is the
//! contract described in `DESIGN.md`: fields only grow, and [`SCHEMA_VERSION`]
//! changes when a field changes meaning.
//!
//! ```
//! use minehound_report::{Report, Severity};
//! let report = Report::new("oci:./image");
//! assert_eq!(report.highest_severity(), None);
//! assert!(Severity::Critical > Severity::High);
//! let json = minehound_report::render::json(&report).unwrap();
//! assert!(json.contains("\"findings\": []"));
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod allowlist;
mod model;
pub mod render;
mod severity;
mod storage;

pub use allowlist::{Allowlist, AllowlistError, ImageExemption};
pub use model::*;
pub use severity::{ParseSeverityError, Severity};
pub use storage::{SkippedImage, StorageReport, StorageSummary, StoredImage};

/// The JSON Schema (draft 2020-12) of the JSON report; `docs/report.schema.json`
/// is this, written out.
pub fn report_schema() -> serde_json::Value {
    sorted(serde_json::to_value(schemars::schema_for!(Report)).expect("a schema is plain JSON"))
}

/// The JSON Schema of the storage report (`minehound scan-storage --format
/// json`); `docs/storage-report.schema.json` is this, written out.
pub fn storage_report_schema() -> serde_json::Value {
    sorted(
        serde_json::to_value(schemars::schema_for!(StorageReport)).expect("a schema is plain JSON"),
    )
}

/// Keys in sorted order whatever map serde_json was built with, so the
/// schema file is the same in every build.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// Version of the JSON report's schema; bumped when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;
