//! The binary's allocator setting.
//!
//! glibc's malloc maps a block of 128 KiB or more on its own and unmaps it
//! when freed, but each time such a block is freed it raises that threshold
//! to the block's size, up to 32 MiB. After the first large file buffer is
//! freed, the buffers of a few MiB a scan allocates and frees by the hundred
//! (files, inflated chunks) come from per-thread heaps, which keep their
//! pages: a one-layer scan of 1 GiB peaked at 219 MiB of RSS, 175 MiB with
//! the threshold fixed at 4 MiB, in the same time (the README's Performance
//! section has the runs). Blocks under 4 MiB (the read-ahead's 1 MiB chunks,
//! reused) still come from the heaps, where reuse is cheap.
//!
//! Only a binary sets this, in `main`: a library must not change the
//! allocator of the process it runs in.

/// The threshold [`tune_for_scanning`] fixes.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// What [`tune_for_scanning`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// The threshold is fixed at [`MMAP_THRESHOLD`].
    Fixed,
    /// The user set glibc's threshold (`MALLOC_MMAP_THRESHOLD_` or
    /// `GLIBC_TUNABLES`): left as they set it.
    LeftToTheUser,
    /// Not glibc's malloc, or it refused the value.
    Unavailable,
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`], unless the user set
/// one. Call it first thing in `main`, before threads start.
pub fn tune_for_scanning() -> Tuning {
    let user_set = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"));
    if user_set {
        return Tuning::LeftToTheUser;
    }
    match set_mmap_threshold(MMAP_THRESHOLD) {
        true => Tuning::Fixed,
        false => Tuning::Unavailable,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_mmap_threshold(bytes: usize) -> bool {
    let Ok(bytes) = libc::c_int::try_from(bytes) else {
        return false;
    };
    // SAFETY: mallopt only sets a parameter of the allocator, valid at any
    // time; it returns 1 when the value is taken, 0 when refused.
    #[allow(unsafe_code)]
    let taken = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) };
    taken == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold(_bytes: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_threshold() {
        assert!(set_mmap_threshold(MMAP_THRESHOLD));
        assert!(!set_mmap_threshold(usize::MAX), "more than mallopt takes");
    }
}
