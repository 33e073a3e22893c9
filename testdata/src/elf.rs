//! Minimal, inert x86-64 ELF executables that carry arbitrary bytes.

/// Where `payload` starts in a [`tiny_elf`] file: after the ELF header (64
/// bytes), the one program header (56) and the 2-byte `ud2` trap.
pub const TINY_ELF_PAYLOAD_OFFSET: usize = EHDR_SIZE + PHDR_SIZE + TRAP.len();

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const BASE_ADDR: u64 = 0x40_0000;
/// `ud2`: if the file is ever run it stops at its first instruction, so the
/// payload is never executed.
const TRAP: [u8; 2] = [0x0f, 0x0b];
const SHSTRTAB: &[u8] = b"\0.text\0.shstrtab\0";

/// A well-formed 64-bit little-endian x86-64 `ET_EXEC` with one `PT_LOAD`
/// segment (R+X) and a section header table (`.text`, `.shstrtab`). `.text`
/// is `ud2` followed by `payload`, and the entry point is the `ud2`.
pub fn tiny_elf(payload: &[u8]) -> Vec<u8> {
    build(payload, true)
}

/// Like [`tiny_elf`] but with no section header table, as stripped or
/// packed (UPX) binaries often are.
pub fn tiny_elf_without_sections(payload: &[u8]) -> Vec<u8> {
    build(payload, false)
}

fn build(payload: &[u8], with_sections: bool) -> Vec<u8> {
    let text_offset = EHDR_SIZE + PHDR_SIZE;
    let text_len = TRAP.len() + payload.len();
    let text_end = text_offset + text_len;
    let shstrtab_offset = text_end;
    let section_table_offset = (shstrtab_offset + SHSTRTAB.len()).next_multiple_of(8);
    let (shoff, shnum, shstrndx) = if with_sections {
        (section_table_offset as u64, 3, 2)
    } else {
        (0, 0, 0)
    };

    let mut out = Vec::with_capacity(section_table_offset + 3 * SHDR_SIZE);
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, System V ABI, padding.
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    out.extend_from_slice(&[0; 8]);
    put16(&mut out, 2); // e_type: ET_EXEC
    put16(&mut out, 62); // e_machine: EM_X86_64
    put32(&mut out, 1); // e_version
    put64(&mut out, BASE_ADDR + text_offset as u64); // e_entry: the ud2
    put64(&mut out, EHDR_SIZE as u64); // e_phoff
    put64(&mut out, shoff);
    put32(&mut out, 0); // e_flags
    put16(&mut out, EHDR_SIZE as u16);
    put16(&mut out, PHDR_SIZE as u16);
    put16(&mut out, 1); // e_phnum
    put16(&mut out, SHDR_SIZE as u16);
    put16(&mut out, shnum);
    put16(&mut out, shstrndx);
    debug_assert_eq!(out.len(), EHDR_SIZE);

    // The one PT_LOAD maps the file from offset 0 through the end of .text.
    put32(&mut out, 1); // p_type: PT_LOAD
    put32(&mut out, 4 | 1); // p_flags: PF_R | PF_X
    put64(&mut out, 0); // p_offset
    put64(&mut out, BASE_ADDR); // p_vaddr
    put64(&mut out, BASE_ADDR); // p_paddr
    put64(&mut out, text_end as u64); // p_filesz
    put64(&mut out, text_end as u64); // p_memsz
    put64(&mut out, 0x1000); // p_align

    out.extend_from_slice(&TRAP);
    out.extend_from_slice(payload);
    if !with_sections {
        return out;
    }

    out.extend_from_slice(SHSTRTAB);
    out.resize(section_table_offset, 0);
    out.extend_from_slice(&[0; SHDR_SIZE]); // SHN_UNDEF
    section_header(
        &mut out,
        1,     // ".text"
        1,     // SHT_PROGBITS
        2 | 4, // SHF_ALLOC | SHF_EXECINSTR
        BASE_ADDR + text_offset as u64,
        text_offset,
        text_len,
    );
    section_header(
        &mut out,
        7, /* ".shstrtab" */
        3, /* SHT_STRTAB */
        0,
        0,
        shstrtab_offset,
        SHSTRTAB.len(),
    );
    out
}

fn section_header(
    out: &mut Vec<u8>,
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: usize,
    size: usize,
) {
    put32(out, name);
    put32(out, kind);
    put64(out, flags);
    put64(out, addr);
    put64(out, offset as u64);
    put64(out, size as u64);
    put32(out, 0); // sh_link
    put32(out, 0); // sh_info
    put64(out, 1); // sh_addralign
    put64(out, 0); // sh_entsize
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use goblin::elf::{Elf, header, program_header, section_header};

    use super::*;

    #[test]
    fn goblin_parses_tiny_elf() {
        let payload = b"hello, stratum+tcp://example.invalid";
        let bytes = tiny_elf(payload);
        let elf = Elf::parse(&bytes).expect("goblin parses it");

        assert!(elf.is_64 && elf.little_endian);
        assert_eq!(elf.header.e_type, header::ET_EXEC);
        assert_eq!(elf.header.e_machine, header::EM_X86_64);
        assert_eq!(elf.entry, BASE_ADDR + (EHDR_SIZE + PHDR_SIZE) as u64);

        assert_eq!(elf.program_headers.len(), 1);
        let load = &elf.program_headers[0];
        assert_eq!(load.p_type, program_header::PT_LOAD);
        assert!(load.is_read() && load.is_executable() && !load.is_write());
        assert!(load.vm_range().contains(&(elf.entry as usize)));

        let names: Vec<_> = elf
            .section_headers
            .iter()
            .map(|s| elf.shdr_strtab.get_at(s.sh_name))
            .collect();
        assert_eq!(names, [Some(""), Some(".text"), Some(".shstrtab")]);
        let text = &elf.section_headers[1];
        assert_eq!(text.sh_type, section_header::SHT_PROGBITS);
        let range = text.file_range().unwrap();
        assert_eq!(&bytes[range], [&TRAP[..], payload].concat());
        assert_eq!(&bytes[TINY_ELF_PAYLOAD_OFFSET..][..payload.len()], payload);
    }

    #[test]
    fn goblin_parses_the_sectionless_variant() {
        let bytes = tiny_elf_without_sections(b"hello");
        let elf = Elf::parse(&bytes).expect("goblin parses it");
        assert!(elf.section_headers.is_empty());
        assert_eq!(elf.program_headers.len(), 1);
        assert_eq!(bytes.len(), TINY_ELF_PAYLOAD_OFFSET + 5);
    }

    #[test]
    fn empty_payload_is_still_valid() {
        assert!(Elf::parse(&tiny_elf(b"")).is_ok());
    }
}
