//! Embedding in a registry, through the public API only: layers of any
//! media type scanned by their first bytes, cancelled and dropped scans,
//! images from an async store in bounded memory, upload-then-manifest
//! reading each layer once, error kinds, awkward callers and stores.
//!
//! This binary counts the heap (a global allocator), so its tests run one
//! at a time: each takes [`serial`] first.

mod async_store;
mod cancel;
mod errors;
mod hostile;
mod memory;
mod sniffing;
mod upload;

use std::sync::{Mutex, MutexGuard, OnceLock};

use minehound::{Scanner, ScannerBuilder};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// One test at a time: the heap counts are the whole process's.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// One scanner (two workers, no cache) for the tests that need nothing else.
pub fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| ScannerBuilder::new().jobs(2).build().unwrap())
}

/// A current-thread runtime, as a registry's request handler might run on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}
