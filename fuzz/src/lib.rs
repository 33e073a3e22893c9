//! What the fuzz targets share.

#[cfg(feature = "parsers")]
use minehound_unpack::Limits;

/// Small limits keep each run short; the code paths are those of the defaults.
/// A static rather than a constant: the memory budget is shared state.
#[cfg(feature = "parsers")]
pub static LIMITS: std::sync::LazyLock<Limits> = std::sync::LazyLock::new(|| Limits {
    max_file_size: 1 << 20,
    max_layer_size: 64 << 20,
    max_entries: 10_000,
    max_depth: 3,
    ..Limits::default()
});
