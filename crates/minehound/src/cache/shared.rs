//! A second tier behind the layer cache, shared by many machines (a database
//! every replica of a service, or every runner of a CI fleet, points at).
//!
//! The tier holds the same encoded entries as the directory, under the same
//! keys, so an entry read from it is checked exactly as one read from disk:
//! one that does not decode or whose checksum fails is a miss. What the tier
//! adds is a claim across machines: a layer another machine is reading is
//! waited for, not read again. Claims are leases the holder keeps renewing, so
//! a machine that dies mid-layer only delays the others until its lease runs
//! out.
//!
//! Whoever can write the tier decides the verdicts it serves, as with the
//! directory: only processes trusted with the verdicts may write it.

use std::fmt::Debug;

/// A store of layer results shared across processes and machines.
///
/// Implementations block; the scanner calls them from its worker threads,
/// never from an async task. Errors are the store's word on why it could not
/// answer: the scanner then goes on as if the tier were not there (a miss,
/// a claim granted), so an unreachable store costs work, never a verdict.
pub trait SharedLayerStore: Send + Sync + Debug {
    /// The entry stored under `key`.
    fn get(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, String>;
    /// Stores `entry` under `key` (an existing entry may be replaced).
    fn put(&self, key: &[u8; 32], entry: &[u8]) -> Result<(), String>;
    /// Takes the right to read layer `key`: `true` when this process now
    /// holds it (nobody held it, or the holder's lease ran out), `false`
    /// while another holder's lease runs. The store keeps renewing the
    /// leases it holds until [`release`](Self::release).
    fn try_claim(&self, key: &[u8; 32]) -> Result<bool, String>;
    /// Gives the right to read `key` back.
    fn release(&self, key: &[u8; 32]);
}
