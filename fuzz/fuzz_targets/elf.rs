//! ELF triage: the goblin parse minehound-detect runs on every ELF file
//! (`Elf::parse`, then the section and program tables it reads), and the
//! UPX unpacker minehound runs on packed ones. The rest of minehound-detect
//! needs yara-x, too heavy to build with fuzzing instrumentation; yara-x's
//! own ELF module is fuzzed upstream.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The unpacked size bound, as `--max-file-size` sets it (smaller here, so
/// an iteration stays fast).
const UNPACK_LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(elf) = goblin::elf::Elf::parse(data) {
        let _ = elf.section_headers.is_empty();
        for header in &elf.program_headers {
            let _ = (header.p_offset, header.p_filesz, header.p_type);
        }
        let _ = (elf.header.e_machine, elf.is_64, elf.entry);
    }
    if let Ok(image) = minehound_unpack::upx::unpack(data, UNPACK_LIMIT) {
        assert!(image.len() as u64 <= UNPACK_LIMIT);
    }
});
