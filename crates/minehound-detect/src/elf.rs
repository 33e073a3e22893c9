//! ELF facts that need a parser rather than a pattern: packers and tampering.

use goblin::elf::Elf;

use crate::{Detection, Severity};

/// Id for a UPX-packed ELF.
pub const UPX_RULE: &str = "MH-ELF-UPX-PACKED";
/// Id for an ELF that goblin cannot parse.
pub const MALFORMED_RULE: &str = "MH-ELF-MALFORMED";
/// Id for a UPX-packed ELF whose `UPX!` magic was removed.
pub const UPX_TAMPERED_RULE: &str = "MH-ELF-UPX-TAMPERED";
/// Id for a section-less ELF made mostly of high-entropy (packed) bytes.
pub const PACKED_ENTROPY_RULE: &str = "MH-ELF-PACKED-ENTROPY";

/// The rules that say an ELF is packed: worth unpacking before judging it.
pub const PACKER_RULES: [&str; 3] = [UPX_RULE, UPX_TAMPERED_RULE, PACKED_ENTROPY_RULE];

/// Text of UPX's decompression stubs and banner, which survive when a packer
/// patches out the `UPX!` magic to stop `upx -d`.
const UPX_STUB_TEXT: &[&[u8]] = &[
    b"$Info: This file is packed with the UPX executable packer",
    b"$Id: UPX ",
    b"PROT_EXEC|PROT_WRITE failed.",
    b"the UPX Team. All Rights Reserved.",
];

/// Shannon entropy (bits per byte) above which bytes look compressed or
/// encrypted; code and data of ordinary binaries stay well below.
const PACKED_ENTROPY: f64 = 7.2;
/// Smaller files are not judged by entropy: too few bytes to tell.
const MIN_ENTROPY_SIZE: usize = 16 * 1024;

/// Parses the ELF with goblin and reports packing or damage. Never panics on
/// hostile input: goblin returns errors, and we read no offset it did not check.
pub(crate) fn inspect(data: &[u8]) -> Vec<Detection> {
    match Elf::parse(data) {
        Ok(elf) => {
            if !elf.section_headers.is_empty() {
                return Vec::new();
            }
            let packed = |rule: &str, description: String| {
                vec![Detection {
                    rule: rule.to_string(),
                    detector: "elf",
                    severity: Severity::Medium,
                    family: Some("packer".to_string()),
                    description,
                }]
            };
            if memchr::memmem::find(data, b"UPX!").is_some() {
                return packed(
                    UPX_RULE,
                    "ELF packed with UPX: no section table and a UPX! header; \
                     miners are often packed to hide their strings"
                        .to_string(),
                );
            }
            if UPX_STUB_TEXT
                .iter()
                .any(|text| memchr::memmem::find(data, text).is_some())
            {
                return packed(
                    UPX_TAMPERED_RULE,
                    "ELF packed with UPX whose UPX! magic was removed (the stub text remains): \
                     tampering that stops `upx -d` and hides a packed payload"
                        .to_string(),
                );
            }
            let entropy = entropy(data);
            if data.len() >= MIN_ENTROPY_SIZE && entropy > PACKED_ENTROPY {
                return packed(
                    PACKED_ENTROPY_RULE,
                    format!(
                        "ELF with no section table whose bytes are compressed or encrypted \
                         (entropy {entropy:.2} bits per byte): a packed binary hiding its code"
                    ),
                );
            }
            Vec::new()
        }
        Err(err) => vec![Detection {
            rule: MALFORMED_RULE.to_string(),
            detector: "elf",
            severity: Severity::Info,
            family: None,
            description: format!("ELF that does not parse ({err}); scanned as raw bytes"),
        }],
    }
}

/// Shannon entropy of `data` in bits per byte (0 to 8).
fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[usize::from(b)] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for compressed bytes.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn rules(data: &[u8]) -> Vec<String> {
        inspect(data).into_iter().map(|d| d.rule).collect()
    }

    /// A section-less ELF: the ELF header, one program header, then `payload`.
    fn sectionless(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\x00\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&62u16.to_le_bytes()); // x86-64
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0x40_0078u64.to_le_bytes()); // entry
        out.extend_from_slice(&64u64.to_le_bytes()); // phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // shoff
        out.extend_from_slice(&0u32.to_le_bytes());
        for v in [64u16, 56, 1, 64, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let size = (120 + payload.len()) as u64;
        out.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out.extend_from_slice(&5u32.to_le_bytes()); // R+X
        for v in [0u64, 0x40_0000, 0x40_0000, size, size, 0x1000] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn upx_tampered_upx_and_packed_bytes_are_medium() {
        let mut upx = noise(20_000);
        upx[100..104].copy_from_slice(b"UPX!");
        assert_eq!(rules(&sectionless(&upx)), [UPX_RULE]);

        let mut tampered = noise(20_000);
        let banner = UPX_STUB_TEXT[0];
        tampered[500..500 + banner.len()].copy_from_slice(banner);
        assert_eq!(rules(&sectionless(&tampered)), [UPX_TAMPERED_RULE]);

        assert_eq!(rules(&sectionless(&noise(20_000))), [PACKED_ENTROPY_RULE]);
        assert!(
            inspect(&sectionless(&noise(20_000)))
                .iter()
                .all(|d| d.severity == Severity::Medium)
        );

        // Plain code-like bytes, or too few bytes to judge: nothing.
        let text: Vec<u8> = b"mov rax, rbx; call printf; ret; ".repeat(1000);
        assert!(rules(&sectionless(&text)).is_empty());
        assert!(rules(&sectionless(&noise(4000))).is_empty());
    }
}
