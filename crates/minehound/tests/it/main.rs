//! Library tests: whole scans of generated images in every format, hostile
//! input, and real miner builds fetched from package registries.

mod evidence;
mod formats;
mod hostile;
mod real_samples;
mod registry;
mod sharing;
mod storage;
mod support;
