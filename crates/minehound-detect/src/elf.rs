//! ELF facts that need a parser rather than a pattern: packers and tampering.

use goblin::elf::Elf;

use crate::{Detection, Severity};

/// Id for a UPX-packed ELF.
pub const UPX_RULE: &str = "MH-ELF-UPX-PACKED";
/// Id for an ELF that goblin cannot parse.
pub const MALFORMED_RULE: &str = "MH-ELF-MALFORMED";

/// Parses the ELF with goblin and reports packing or damage. Never panics on
/// hostile input: goblin returns errors, and we read no offset it did not check.
pub(crate) fn inspect(data: &[u8]) -> Vec<Detection> {
    match Elf::parse(data) {
        Ok(elf) => {
            let has_upx_magic = memchr::memmem::find(data, b"UPX!").is_some();
            let no_sections = elf.section_headers.is_empty();
            if has_upx_magic && no_sections {
                vec![Detection {
                    rule: UPX_RULE.to_string(),
                    detector: "elf",
                    severity: Severity::Medium,
                    family: Some("upx".to_string()),
                    description: "ELF packed with UPX: no section table and a UPX! header; \
                                  miners are often packed to hide their strings"
                        .to_string(),
                }]
            } else {
                Vec::new()
            }
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
