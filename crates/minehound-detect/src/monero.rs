//! Monero addresses, recognised only when they decode: Monero's block-wise
//! base58, a known network byte, and the Keccak-256 checksum. YARA finds
//! address-shaped candidates; this module confirms them, so random base58 text
//! (hashes, keys, test vectors) is never taken for a wallet.

use tiny_keccak::{Hasher, Keccak};

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Bytes per full block and the base58 characters that encode it.
const FULL_BLOCK: usize = 8;
const FULL_ENCODED: usize = 11;
/// Encoded length of a block of `n` bytes, `n` = 0..=8.
const ENCODED_LEN: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/// What kind of address a network byte stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// A primary (standard) address: spend and view keys.
    Standard,
    /// A standard address with an 8-byte payment id.
    Integrated,
    /// A subaddress.
    Subaddress,
}

/// Which Monero network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The real network.
    Mainnet,
    /// The public test network.
    Testnet,
    /// The staging network.
    Stagenet,
}

/// A decoded, checksum-valid Monero address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoneroAddress {
    /// Network of the address.
    pub network: Network,
    /// Standard, integrated or subaddress.
    pub kind: AddressKind,
}

impl std::fmt::Display for MoneroAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let network = match self.network {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Stagenet => "stagenet",
        };
        let kind = match self.kind {
            AddressKind::Standard => "standard address",
            AddressKind::Integrated => "integrated address",
            AddressKind::Subaddress => "subaddress",
        };
        write!(f, "Monero {network} {kind}")
    }
}

fn network_byte(byte: u8) -> Option<(Network, AddressKind)> {
    use AddressKind::*;
    use Network::*;
    Some(match byte {
        18 => (Mainnet, Standard),
        19 => (Mainnet, Integrated),
        42 => (Mainnet, Subaddress),
        53 => (Testnet, Standard),
        54 => (Testnet, Integrated),
        63 => (Testnet, Subaddress),
        24 => (Stagenet, Standard),
        25 => (Stagenet, Integrated),
        36 => (Stagenet, Subaddress),
        _ => return None,
    })
}

/// Decodes Monero base58: 11-character blocks of 8 bytes, a shorter last block.
/// `None` for a character outside the alphabet, an impossible last block
/// length, or a block whose value overflows its byte count.
pub fn base58_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    let full = text.len() / FULL_ENCODED;
    let rest = text.len() % FULL_ENCODED;
    let rest_bytes = ENCODED_LEN.iter().position(|&n| n == rest)?;
    let mut out = Vec::with_capacity(full * FULL_BLOCK + rest_bytes);
    for (i, block) in text.chunks(FULL_ENCODED).enumerate() {
        let size = if i < full { FULL_BLOCK } else { rest_bytes };
        let mut value: u128 = 0;
        for &c in block {
            let digit = ALPHABET.iter().position(|&a| a == c)? as u128;
            value = value * 58 + digit;
        }
        if size < 16 && value >> (8 * size) != 0 {
            return None;
        }
        out.extend_from_slice(&value.to_be_bytes()[16 - size..]);
    }
    Some(out)
}

/// Encodes bytes in Monero base58 (the inverse of [`base58_decode`]).
pub fn base58_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for block in bytes.chunks(FULL_BLOCK) {
        let mut value = block.iter().fold(0u128, |v, &b| (v << 8) | u128::from(b));
        let mut digits = vec![b'1'; ENCODED_LEN[block.len()]];
        for slot in digits.iter_mut().rev() {
            *slot = ALPHABET[(value % 58) as usize];
            value /= 58;
        }
        out.extend(digits.into_iter().map(char::from));
    }
    out
}

fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak::v256();
    hasher.update(data);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

/// Parses a Monero address: decodes it, checks the network byte against the
/// length (69 bytes for standard and subaddresses, 77 for integrated) and the
/// 4-byte Keccak-256 checksum.
pub fn parse_address(text: &str) -> Option<MoneroAddress> {
    if !matches!(text.len(), 95 | 106) {
        return None;
    }
    let bytes = base58_decode(text)?;
    let (&tag, _) = bytes.split_first()?;
    let (network, kind) = network_byte(tag)?;
    let expected = if kind == AddressKind::Integrated {
        77
    } else {
        69
    };
    if bytes.len() != expected {
        return None;
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 4);
    (keccak256(body)[..4] == *checksum).then_some(MoneroAddress { network, kind })
}

/// Builds a checksum-valid address from a network byte and key bytes: for
/// fixtures that must look real to the checker yet belong to no one.
pub fn encode_address(tag: u8, keys: &[u8]) -> String {
    let mut body = Vec::with_capacity(1 + keys.len() + 4);
    body.push(tag);
    body.extend_from_slice(keys);
    let checksum = keccak256(&body);
    body.extend_from_slice(&checksum[..4]);
    base58_encode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Monero general fund's published donation address.
    const GENERAL_FUND: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

    #[test]
    fn a_real_address_decodes_and_round_trips() {
        assert_eq!(
            parse_address(GENERAL_FUND),
            Some(MoneroAddress {
                network: Network::Mainnet,
                kind: AddressKind::Standard
            })
        );
        let bytes = base58_decode(GENERAL_FUND).unwrap();
        assert_eq!(bytes.len(), 69);
        assert_eq!(base58_encode(&bytes), GENERAL_FUND);
    }

    #[test]
    fn every_one_character_change_fails() {
        let alphabet = std::str::from_utf8(ALPHABET).unwrap();
        for i in 0..GENERAL_FUND.len() {
            for c in alphabet.chars().step_by(7) {
                let mut s: Vec<char> = GENERAL_FUND.chars().collect();
                if s[i] == c {
                    continue;
                }
                s[i] = c;
                let s: String = s.into_iter().collect();
                assert_eq!(parse_address(&s), None, "{s}");
            }
        }
    }

    #[test]
    fn random_base58_text_is_not_an_address() {
        // A deterministic generator: no dependency, same text every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in [95, 106] {
            for _ in 0..2000 {
                let s: String = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        ALPHABET[(state % 58) as usize] as char
                    })
                    .collect();
                assert_eq!(parse_address(&s), None, "{s}");
            }
        }
        let demo_shaped = "4AminehoundDemoFixtureNotARea1Wa11et18FNVcjry6DLTahpw4BJRYfnu29GPWdksz7EMUbiqx5CKSZgov3AHQXemt1";
        assert_eq!(parse_address(demo_shaped), None);
    }

    #[test]
    fn built_addresses_carry_their_network_and_kind() {
        let keys = [7u8; 64];
        let sub = encode_address(42, &keys);
        assert!(sub.starts_with('8') && sub.len() == 95, "{sub}");
        assert_eq!(
            parse_address(&sub).map(|a| a.kind),
            Some(AddressKind::Subaddress)
        );
        let mut with_id = keys.to_vec();
        with_id.extend_from_slice(&[1; 8]);
        let integrated = encode_address(19, &with_id);
        assert_eq!(integrated.len(), 106);
        assert_eq!(
            parse_address(&integrated).map(|a| a.kind),
            Some(AddressKind::Integrated)
        );
        let test = encode_address(53, &keys);
        assert_eq!(
            parse_address(&test).map(|a| a.network),
            Some(Network::Testnet)
        );
        // A known network byte with the wrong length is not an address.
        assert_eq!(parse_address(&encode_address(18, &with_id)), None);
        assert_eq!(base58_decode("0OIl"), None);
    }
}
