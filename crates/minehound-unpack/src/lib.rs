//! Turns a layer blob into a stream of file entries, without touching disk.
//!
//! A layer is decompressed (gzip, zstd or none, told apart by magic bytes), its tar
//! entries are walked in order, and each regular file is handed to a [`Visitor`]
//! with its bytes in one reused buffer, up to [`Limits::max_file_size`]. Whiteouts
//! and opaque directories are reported as such, so the caller can tell which files a
//! later layer deleted. Archives found inside layers (tar, tar.gz, tar.zst, zip, or a
//! single gzip/zstd file) are walked the same way by [`walk_nested`]. UPX-packed
//! ELF executables are unpacked in memory by [`upx::unpack`]. A layer can be
//! decompressed on threads of its own ahead of its walk ([`read_ahead`],
//! [`pump_decompressed`]), a zstd layer of many frames (`zstd:chunked`) frame
//! by frame on several threads, in order.
//!
//! ```
//! use minehound_unpack::{walk_layer, Limits, Visitor, FileEntry};
//!
//! #[derive(Default)]
//! struct Names(Vec<String>);
//! impl Visitor for Names {
//!     fn file(&mut self, file: FileEntry<'_>) -> Result<(), minehound_unpack::Error> {
//!         self.0.push(file.path.to_string());
//!         Ok(())
//!     }
//!     fn skipped(&mut self, path: &str, _size: u64, reason: &str) {
//!         panic!("{path} skipped: {reason}");
//!     }
//! }
//!
//! let mut builder = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_gnu();
//! header.set_size(2);
//! header.set_cksum();
//! builder.append_data(&mut header, "etc/motd", &b"hi"[..]).unwrap();
//! let layer = builder.into_inner().unwrap();
//!
//! let mut names = Names::default();
//! let counts = walk_layer(&layer[..], &Limits::default(), &mut names).unwrap();
//! assert_eq!(names.0, ["/etc/motd"]);
//! assert_eq!(counts.uncompressed_bytes, layer.len() as u64);
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

// Only for its "std" feature (run-time CPU detection in the inflater).
use zlib_rs as _;

mod budget;
mod compression;
mod error;
mod gzip_parallel;
mod hashing;
mod limits;
mod nested;
mod path;
mod read_ahead;
pub mod upx;
mod walk;
mod zstd_frames;

pub use budget::{HandedOver, MemoryBudget, Reservation};
pub use compression::{
    Compression, LimitExceeded, Pumped, decompress, pump_decompressed, pump_decompressed_at,
};
pub use error::Error;
pub use gzip_parallel::{FileRange, ReadAt};
pub use hashing::HashingReader;
pub use limits::Limits;
pub use nested::{ArchiveFormat, walk_nested};
pub use path::{join_nested, normalize};
pub use read_ahead::{AheadReader, ReadAhead, read_ahead, read_ahead_within};
pub use walk::{
    FileBuffer, FileEntry, LayerCounts, OwnedFile, Visitor, walk_layer, walk_layer_tar,
};
