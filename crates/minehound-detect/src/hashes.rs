use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::{Error, Severity};

/// One known build in a hash list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashEntry {
    /// Miner family, such as `xmrig`.
    pub family: String,
    /// Severity of a match (critical for a known miner build).
    pub severity: Severity,
    /// What the build is, such as `XMRig 6.23.0 linux-x64`.
    pub name: String,
    /// Where the hash comes from.
    pub source: String,
}

/// SHA-256 digests of known builds, loaded from tab-separated files with the
/// columns `sha256 family severity name source [size]` (a header line naming
/// them, `#` comments and blank lines are allowed).
///
/// The optional `size` (bytes) lets a scan skip hashing every file whose size
/// no entry has: an exact filter, since equal digests mean equal sizes. One
/// entry without a size switches the filter off (every file is hashed).
#[derive(Debug, Clone)]
pub struct HashList {
    entries: HashMap<[u8; 32], HashEntry>,
    /// Sizes of all entries; `None` once an entry has no size.
    sizes: Option<HashSet<u64>>,
}

impl Default for HashList {
    fn default() -> Self {
        HashList {
            entries: HashMap::new(),
            sizes: Some(HashSet::new()),
        }
    }
}

impl HashList {
    /// Number of digests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list holds no digest.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every digest with its entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8; 32], &HashEntry)> {
        self.entries.iter()
    }

    /// The entry for a digest, if the build is known.
    pub fn get(&self, sha256: &[u8; 32]) -> Option<&HashEntry> {
        self.entries.get(sha256)
    }

    /// Whether a file of `size` bytes may be in the list, so is worth hashing.
    pub fn may_hold_size(&self, size: u64) -> bool {
        self.sizes
            .as_ref()
            .is_none_or(|sizes| sizes.contains(&size))
    }

    /// Adds every line of `text`; `origin` names the file in errors.
    pub fn parse(&mut self, origin: &Path, text: &str) -> Result<(), Error> {
        for (index, line) in text.lines().enumerate() {
            let err = |message: String| Error::HashList {
                path: origin.to_path_buf(),
                line: index + 1,
                message,
            };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with("sha256\t") {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            if !(5..=6).contains(&cols.len()) {
                return Err(err(format!(
                    "expected 5 or 6 tab-separated columns (sha256 family severity name source [size]), found {}",
                    cols.len()
                )));
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(cols[0].to_ascii_lowercase(), &mut digest)
                .map_err(|_| err(format!("{:?} is not a SHA-256 in hex", cols[0])))?;
            let severity = cols[2].parse().map_err(|e| err(format!("{e}")))?;
            if cols[4].is_empty() {
                return Err(err("every hash needs a source".to_string()));
            }
            match cols.get(5).filter(|c| !c.is_empty()) {
                Some(size) => {
                    let size = size
                        .parse::<u64>()
                        .map_err(|_| err(format!("{size:?} is not a size in bytes")))?;
                    if let Some(sizes) = &mut self.sizes {
                        sizes.insert(size);
                    }
                }
                None => self.sizes = None,
            }
            self.entries.insert(
                digest,
                HashEntry {
                    family: cols[1].to_string(),
                    severity,
                    name: cols[3].to_string(),
                    source: cols[4].to_string(),
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_names_bad_lines() {
        let mut list = HashList::default();
        let digest = "ab".repeat(32);
        list.parse(
            Path::new("x.tsv"),
            &format!("sha256\tfamily\tseverity\tname\tsource\n# c\n\n{digest}\txmrig\tcritical\tXMRig\there\n"),
        )
        .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list.get(&[0xab; 32]).unwrap().family, "xmrig");

        let err = list
            .parse(Path::new("x.tsv"), "zz\txmrig\tcritical\tn\ts\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "x.tsv:1: \"zz\" is not a SHA-256 in hex");
        let err = list
            .parse(
                Path::new("y.tsv"),
                &format!("\n{digest}\txmrig\tsevere\tn\ts\n"),
            )
            .unwrap_err();
        assert!(
            err.to_string().starts_with("y.tsv:2: unknown severity"),
            "{err}"
        );
    }

    #[test]
    fn sizes_filter_what_is_worth_hashing() {
        let mut list = HashList::default();
        assert!(!list.may_hold_size(10), "an empty list needs no hashing");
        let line =
            |byte: &str, size: &str| format!("{}\txmrig\tcritical\tn\ts{size}\n", byte.repeat(32));
        list.parse(Path::new("x.tsv"), &line("ab", "\t4998584"))
            .unwrap();
        assert!(list.may_hold_size(4_998_584));
        assert!(!list.may_hold_size(4_998_585));
        let err = list
            .parse(Path::new("x.tsv"), &line("cd", "\tbig"))
            .unwrap_err();
        assert_eq!(err.to_string(), "x.tsv:1: \"big\" is not a size in bytes");
        // A build listed without its size could have any size.
        list.parse(Path::new("y.tsv"), &line("ef", "")).unwrap();
        assert!(list.may_hold_size(1));
    }
}
