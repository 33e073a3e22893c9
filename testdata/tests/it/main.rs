//! Integration tests: build images, write every format, read them back the
//! way a scanner would, and check every digest, size and reference.

mod archive;
mod cli;
mod image;
mod layout;
mod support;
