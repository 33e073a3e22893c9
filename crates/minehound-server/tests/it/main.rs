//! Service tests: the HTTP API against real registries.
