//! Where container images come from, and which of their bytes to trust.
//!
//! [`Target`] parses the transport names skopeo and podman users know
//! (`docker://` and bare registry references, `oci:`, `oci-archive:`,
//! `docker-archive:`, `dir:`, `-`, a bare path);
//! [`open`] turns one into images ([`Image`]: platform, config, layers with their
//! expected digests and history) and a [`BlobStore`] to stream layer blobs from.
//! Manifests, indexes and configs are verified against their digests when read;
//! layer blobs are verified by the caller while it streams them.
//!
//! ```no_run
//! use minehound_oci::{open, Opened, PlatformChoice, RegistryOptions, Target};
//!
//! let target: Target = "oci:./build/image:latest".parse()?;
//! let opened = open(&target, &PlatformChoice::Host, &RegistryOptions::default())?;
//! if let Opened::Images { images, .. } = opened {
//!     for image in &images {
//!         println!("{:?}: {} layers", image.platform, image.layers.len());
//!     }
//! }
//! # Ok::<(), minehound_oci::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod digest;
mod docs;
mod error;
mod image;
mod image_source;
mod platform;
mod registry;
mod resolve;
mod source;
mod storage;
mod store;
mod stream;
mod target;

pub use digest::{digest_of, sha256_hex_of};
pub use error::Error;
pub use image::{BlobLocation, HistoryLine, Image, ImageProcess, Layer};
pub use image_source::{ImageSource, SourceStore, images_from_source};
pub use platform::{Platform, PlatformChoice};
pub use registry::{
    Credentials, DigestResolver, ImageName, Pushed, RegistryOptions, RegistryStore, SpooledBlob,
    SpooledReader, looks_like_reference, open_registry, push_images,
};
pub use resolve::{MAX_LAYERS, images_from_docker_archive, images_from_layout};
pub use source::{Opened, images_from_archive, open};
pub use storage::{DistributionStorage, SkippedManifest, StorageListing, StoredManifest};
pub use store::{BlobFile, BlobStore, LayoutDir, MemoryStore, TarArchive};
pub use stream::{StreamedArchive, read_archive_stream};
pub use target::{ImageRef, Target};
