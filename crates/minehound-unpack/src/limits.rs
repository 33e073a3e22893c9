/// Bounds that keep hostile layers from exhausting memory or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read into memory and scanned in full; larger files are scanned
    /// only up to this many bytes and listed as skipped.
    pub max_file_size: u64,
    /// Most bytes one layer (or nested archive) may decompress to.
    pub max_layer_size: u64,
    /// Most tar entries in one layer.
    pub max_entries: u64,
    /// How deep archives inside archives are opened (0 = not at all).
    pub max_depth: u32,
    /// What the buffers of files being checked may hold at once, shared by
    /// every clone of these limits (a scanner's jobs).
    pub memory_budget: crate::MemoryBudget,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 64 * 1024 * 1024,
            max_layer_size: 16 * 1024 * 1024 * 1024,
            max_entries: 1_000_000,
            max_depth: 3,
            memory_budget: crate::MemoryBudget::default(),
        }
    }
}
