//! The report's published forms: the JSON Schema in `docs/` and SARIF.

mod schema;
