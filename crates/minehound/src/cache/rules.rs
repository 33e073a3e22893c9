//! Compiled signature sets beside the layer results: yara-x compiles the
//! bundled rules in about 0.4 s, which every process paid before reading a
//! byte, the whole cost of a warm rescan. An entry is keyed by the rule texts
//! and this very build (see [`SignaturesBuilder::build_with_store`]), and
//! carries its own SHA-256 like a layer entry: one that does not check out is
//! a miss and the rules are compiled again.
//!
//! yara-x loads compiled rules only from bytes it wrote itself; the cache
//! directory is private to its user for that reason too.
//!
//! [`SignaturesBuilder::build_with_store`]: minehound_detect::SignaturesBuilder::build_with_store

use std::fs;
use std::time::SystemTime;

use minehound_detect::CompiledRulesStore;
use sha2::{Digest, Sha256};

use super::{LayerCache, fan_out, write_atomically};

impl CompiledRulesStore for LayerCache {
    fn load(&self, key: &str) -> Option<Vec<u8>> {
        let path = fan_out(&self.rules, &key_bytes(key));
        let mut stored = fs::read(&path).ok()?;
        if stored.len() < 32 || Sha256::digest(&stored[32..]).as_slice() != &stored[..32] {
            return None;
        }
        // A hit marks the entry used, so pruning keeps the sets in use.
        if let Ok(file) = fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        stored.drain(..32);
        Some(stored)
    }

    fn store(&self, key: &str, bytes: &[u8]) {
        let mut stored = Sha256::digest(bytes).to_vec();
        stored.extend_from_slice(bytes);
        let _ = write_atomically(&fan_out(&self.rules, &key_bytes(key)), &stored);
    }
}

/// The key as the file name's bytes: any string the caller gives is hashed.
fn key_bytes(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use minehound_detect::SignaturesBuilder;

    use crate::LayerCache;

    #[test]
    fn compiled_rules_are_loaded_with_the_same_fingerprint_and_damaged_ones_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(dir.path()).unwrap();
        let compiled = SignaturesBuilder::new().build().unwrap();
        let first = SignaturesBuilder::new()
            .build_with_store(&cache, "build a")
            .unwrap();
        let entries = cache.rule_entries();
        assert_eq!(entries.len(), 1, "stored once compiled");
        let stored = std::fs::read(&entries[0]).unwrap();
        let loaded = SignaturesBuilder::new()
            .build_with_store(&cache, "build a")
            .unwrap();
        for signatures in [&first, &loaded] {
            assert_eq!(signatures.fingerprint(), compiled.fingerprint());
            assert_eq!(signatures.rule_count(), compiled.rule_count());
            assert_eq!(signatures.rules(), compiled.rules());
        }
        assert_eq!(cache.rule_entries(), entries, "a hit adds nothing");

        // Another build keeps its own entry.
        SignaturesBuilder::new()
            .build_with_store(&cache, "build b")
            .unwrap();
        assert_eq!(cache.usage().unwrap().rules, 2);

        // A flipped bit is a miss: compiled again, stored again.
        let mut damaged = stored.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        std::fs::write(&entries[0], &damaged).unwrap();
        let again = SignaturesBuilder::new()
            .build_with_store(&cache, "build a")
            .unwrap();
        assert_eq!(again.fingerprint(), compiled.fingerprint());
        assert_eq!(std::fs::read(&entries[0]).unwrap(), stored, "rewritten");
        // As is a short one.
        std::fs::write(&entries[0], b"short").unwrap();
        let again = SignaturesBuilder::new()
            .build_with_store(&cache, "build a")
            .unwrap();
        assert_eq!(again.fingerprint(), compiled.fingerprint());
    }

    impl LayerCache {
        /// The files of the compiled rule sets.
        fn rule_entries(&self) -> Vec<std::path::PathBuf> {
            let mut out = Vec::new();
            for fan in std::fs::read_dir(&self.rules).unwrap() {
                for entry in std::fs::read_dir(fan.unwrap().path()).unwrap() {
                    out.push(entry.unwrap().path());
                }
            }
            out.sort();
            out
        }
    }
}
