//! A fault switch for tests: a file whose bytes hold
//! `MINEHOUND-FAULT:<action>:<component>` makes that component panic
//! (`panic`) or stall for [`STALL`] (`stall`) when it reaches the file, so
//! tests can prove through the real binary that one file's failure stays
//! that file's. `<component>` is a component's name in lower case with
//! dashes: `classifier`, `nested-archive-reader`, `hash-list-lookup`,
//! `elf-parser`, `rules-engine`, `layer-reader`.
//!
//! Compiled in only with the `fault-injection` feature, which the tests
//! enable and release builds never do: without it [`inject`] is empty.

/// The marker's prefix.
pub const MARKER: &str = "MINEHOUND-FAULT:";

/// How long a `stall` fault holds its thread.
pub const STALL: std::time::Duration = std::time::Duration::from_secs(35);

/// Panics or stalls when `data` asks `component` to.
#[cfg(feature = "fault-injection")]
pub fn inject(component: &str, data: &[u8]) {
    let Some(at) = memchr::memmem::find(data, MARKER.as_bytes()) else {
        return;
    };
    let rest = &data[at + MARKER.len()..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_lowercase() || *b == b'-' || *b == b':'))
        .unwrap_or(rest.len());
    let Ok(request) = std::str::from_utf8(&rest[..end]) else {
        return;
    };
    let Some((action, target)) = request.split_once(':') else {
        return;
    };
    if target != component.to_ascii_lowercase().replace(' ', "-") {
        return;
    }
    match action {
        "panic" => panic!("fault injected into the {component}"),
        "stall" => std::thread::sleep(STALL),
        _ => {}
    }
}

/// Panics or stalls when `data` asks `component` to: not in this build.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_component: &str, _data: &[u8]) {}
