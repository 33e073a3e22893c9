use sha2::{Digest, Sha256};

use crate::Error;

/// Checks that `digest` is `sha256:` plus 64 lower-case hex digits and returns the
/// hex part. Digests come from untrusted manifests and become file names, so
/// nothing else (no `/`, no `..`) may pass.
pub fn sha256_hex_of(digest: &str) -> Result<&str, Error> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::InvalidDigest(digest.to_string()))?;
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(Error::InvalidDigest(digest.to_string()))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Verifies a small document against its declared digest.
pub fn verify(what: &str, bytes: &[u8], expected: &str) -> Result<(), Error> {
    sha256_hex_of(expected)?;
    let actual = digest_of(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_digests_that_could_escape_a_directory() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(sha256_hex_of(&good).is_ok());
        assert!(sha256_hex_of("sha256:../../etc/passwd").is_err());
        assert!(sha256_hex_of(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(sha256_hex_of(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
