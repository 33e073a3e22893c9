//! Image metadata documents: an OCI layout's `index.json` and the indexes,
//! manifests and configs it points at, or a `docker save` `manifest.json`.
//! The input is parts split at `\n--\n`: the first is `index.json` (or, when
//! the input starts with `D`, `manifest.json`); every other part is stored
//! under its own digest (and as `<hex>.json`), so references can resolve.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minehound_oci::{MemoryStore, PlatformChoice, images_from_docker_archive, images_from_layout};
use sha2::{Digest, Sha256};

fn parts(data: &[u8]) -> Vec<&[u8]> {
    const SEP: &[u8] = b"\n--\n";
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let docker = data.first() == Some(&b'D');
    let parts = parts(if docker { &data[1..] } else { data });
    let mut store = MemoryStore::new("fuzz");
    let first = if docker {
        "manifest.json"
    } else {
        "index.json"
    };
    store.insert(first.to_string(), parts[0].to_vec());
    for part in &parts[1..] {
        let hex = hex::encode(Sha256::digest(part));
        store.insert(format!("blobs/sha256/{hex}"), part.to_vec());
        store.insert(format!("{hex}.json"), part.to_vec());
    }
    for platform in [PlatformChoice::Host, PlatformChoice::All] {
        let images = if docker {
            images_from_docker_archive(&store, None, &platform)
        } else {
            images_from_layout(&store, None, &platform)
        };
        if let Ok(images) = images {
            for image in images {
                assert!(image.layers.len() <= minehound_oci::MAX_LAYERS);
            }
        }
    }
});
