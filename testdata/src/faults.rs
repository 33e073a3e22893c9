//! Fixtures for the fault switch (`minehound_detect::fault`, built only
//! into test binaries): files that make one component of the scanner panic
//! or stall, and a YARA rule that is slow on any large file, so tests can
//! prove that one file's failure stays that file's and that time limits hold.

use crate::{
    BuiltImage, Entry, ImageSpec, Layer, demo_image, tar_bytes, tiny_elf, tiny_elf_without_sections,
};

/// The components a file can make panic, as the marker names them, with the
/// name reports give them.
pub const PANICKING_COMPONENTS: &[(&str, &str)] = &[
    ("classifier", "classifier"),
    ("nested-archive-reader", "nested archive reader"),
    ("upx-unpacker", "UPX unpacker"),
    ("hash-list-lookup", "hash list lookup"),
    ("elf-parser", "ELF parser"),
    ("rules-engine", "rules engine"),
];

/// The bytes that ask `component` to `action` (`panic` or `stall`).
pub fn fault_marker(action: &str, component: &str) -> Vec<u8> {
    format!("#!/bin/sh\n# MINEHOUND-FAULT:{action}:{component}\necho hello\n").into_bytes()
}

/// Where the file for `component` sits in [`panicking_image`].
pub fn panicking_path(component: &str) -> String {
    format!("/opt/faults/{component}")
}

/// The demo image (a miner config, a dropper, …) with one more layer
/// holding a file per entry of [`PANICKING_COMPONENTS`], each making that
/// component panic when it reaches the file, and a clean file after them.
pub fn panicking_image() -> BuiltImage {
    let mut spec = demo_image();
    let entries = PANICKING_COMPONENTS
        .iter()
        .map(|(component, _)| {
            let marker = fault_marker("panic", component);
            let bytes = match *component {
                // An archive: its reader opens it (the marker is in a member).
                "nested-archive-reader" => tar_bytes(&[Entry::file("/inner.sh", marker)]),
                // An ELF file: only ELF files reach the ELF parser.
                "elf-parser" => tiny_elf(&marker),
                // A packed ELF: only those reach the unpacker.
                "upx-unpacker" => tiny_elf_without_sections(&[&marker[..], b"UPX!"].concat()),
                _ => marker,
            };
            Entry::executable(&panicking_path(component), bytes)
        })
        .chain([Entry::file(
            "/opt/faults/zz-after.txt",
            "checked after the panics\n",
        )])
        .collect();
    spec.layers
        .push(Layer::gzip("COPY faults /opt/faults/", entries));
    spec.build()
}

/// A one-layer image whose file makes the layer reader itself panic:
/// outside any one file's check.
pub fn layer_panic_image() -> BuiltImage {
    one_file_image("/opt/reader", fault_marker("panic", "layer-reader"))
}

/// A one-layer image whose config (an `Env` entry) makes the rules engine
/// panic while it checks the config: outside any file or layer.
pub fn config_panic_image() -> BuiltImage {
    let marker = String::from_utf8(fault_marker("panic", "rules-engine")).unwrap_or_default();
    ImageSpec {
        layers: vec![Layer::gzip(
            "COPY app /srv/",
            vec![Entry::file("/srv/app.txt", "an ordinary file\n")],
        )],
        env: vec![format!("NOTE={}", marker.replace('\n', " "))],
        ..ImageSpec::default()
    }
    .build()
}

/// A one-layer image whose file stalls the rules engine for
/// `minehound_detect::fault::STALL` (35 s), past any short job time limit.
pub fn stalling_image() -> BuiltImage {
    one_file_image("/opt/stall.sh", fault_marker("stall", "rules-engine"))
}

/// A one-layer image with one file at `path`.
pub fn one_file_image(path: &str, bytes: Vec<u8>) -> BuiltImage {
    ImageSpec {
        layers: vec![Layer::gzip(
            "COPY file /",
            vec![Entry::executable(path, bytes)],
        )],
        ..ImageSpec::default()
    }
    .build()
}

/// A YARA rule that costs the square of a file's size: minutes on a file of
/// a few hundred KiB, so a short `--file-timeout` stops it. Real rules can
/// be that slow by mistake; a crafted file can make a careless rule so.
pub const SLOW_RULE: &str = r#"rule slow_on_large_files {
  condition:
    filesize > 1000 and
    for all i in (0..filesize - 1) : (
      for all j in (0..filesize - 1) : ( uint8(i) + uint8(j) < 600 )
    )
}
"#;
