//! `docker-archive:` and `oci-archive:` readers: a tar of an image read as a
//! stream (members kept or streamed by), then its images resolved.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minehound_oci::{PlatformChoice, images_from_archive, read_archive_stream};

fuzz_target!(|data: &[u8]| {
    let mut drain = |_path: &str, blob: &mut dyn std::io::Read| {
        let _ = std::io::copy(blob, &mut std::io::sink());
    };
    if let Ok(streamed) = read_archive_stream(data, "fuzz.tar", &mut drain) {
        let _ = streamed.resolve("blobs/sha256/0");
        let _ = images_from_archive(&streamed.store, None, &PlatformChoice::All);
    }
});
