//! What the fuzz targets share.

use minehound_unpack::Limits;

/// Small limits keep each run short; the code paths are those of the defaults.
pub const LIMITS: Limits = Limits {
    max_file_size: 1 << 20,
    max_layer_size: 64 << 20,
    max_entries: 10_000,
    max_depth: 3,
};
