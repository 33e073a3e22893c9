//! Byte-for-byte deterministic container image fixtures for minehound's tests.
//!
//! Describe an image as layers of tar [`Entry`]s ([`ImageSpec`]), [`build`](ImageSpec::build)
//! it into content-addressed [`Blob`]s, and write it in any format minehound
//! reads: an OCI layout directory (single or multi-platform), an `oci-archive`,
//! or a `docker save` archive (classic, or Docker 25+ OCI-shaped).
//!
//! Everything is reproducible: tar headers have mtime 0, uid/gid 0 and no user
//! names; gzip headers carry no name or mtime; JSON keys are sorted; archive
//! members come in sorted order. The same spec always gives the same digests
//! (for a given flate2 / zstd version).
//!
//! Fixtures hold no live malware. [`demo_image`] carries miner *evidence* (an
//! XMRig-style config, a dropper script deleted by a later layer) next to an
//! inert [`tiny_elf`].
//!
//! ```
//! use minehound_testdata::{Entry, ImageSpec, Layer, tiny_elf, write_oci_layout};
//!
//! let image = ImageSpec {
//!     layers: vec![Layer::gzip(
//!         "COPY miner /usr/bin/",
//!         vec![Entry::executable("/usr/bin/miner", tiny_elf(b"stratum+tcp://"))],
//!     )],
//!     ..ImageSpec::default()
//! }
//! .build();
//! assert!(image.layers[0].digest.starts_with("sha256:"));
//!
//! let dir = std::env::temp_dir().join(format!("minehound-doc-{}", std::process::id()));
//! write_oci_layout(&dir, &[(&image, Some("v1"))])?;
//! assert!(dir.join("index.json").is_file());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod archive;
mod blob;
mod compress;
mod demo;
mod document;
mod elf;
pub mod faults;
mod fuzz_seeds;
pub mod hostile;
mod image;
mod layer;
mod layout;
pub mod media_type;
pub mod postgres;
pub mod registry;
pub mod samples;
pub mod tools;

pub use archive::{
    write_docker_archive_classic, write_docker_archive_oci, write_oci_archive,
    write_oci_archive_multi_platform,
};
pub use blob::{Blob, HashingWriter, sha256_digest, sha256_hex};
pub use compress::{gzip, zip_bytes, zstd};
pub use demo::{
    DEMO_CONFIG_PATH, DEMO_DROPPER_PATH, DEMO_MONERO_ADDRESS, DEMO_POOL_URL, DEMO_REPO_TAG,
    DEMO_TAG, demo_image,
};
pub use elf::{TINY_ELF_PAYLOAD_OFFSET, tiny_elf, tiny_elf_without_sections};
pub use fuzz_seeds::write_fuzz_seeds;
pub use image::{BuiltImage, ImageSpec, MediaTypes, Platform};
pub use layer::{Compression, Entry, Layer, tar_bytes};
pub use layout::{
    REF_NAME_ANNOTATION, platform_index, write_oci_layout, write_oci_layout_multi_platform,
};
