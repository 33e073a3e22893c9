//! Undoing UPX's x86 call/jump filter (filter ids 0x46 and 0x49, the only
//! ones UPX applies to amd64 ELF code).
//!
//! Before compressing, UPX rewrites the relative target of each `call`/`jmp`
//! (and, for 0x49, each two-byte `jcc`) into an absolute, big-endian one
//! tagged with a marker byte (`cto8`), which compresses better. The packed
//! program's stub undoes it before jumping in; we do the same, so the image
//! we check has the bytes the original file had.

/// Undoes filter `id` with marker `cto8` in place. Other filter ids are left
/// as they are: only call operands differ, the rules' strings do not.
pub(super) fn unfilter(id: u8, cto8: u8, buf: &mut [u8]) {
    if !matches!(id, 0x46 | 0x49) || buf.len() < 5 {
        return;
    }
    let with_jcc = id & 0x0f >= 9;
    let cto = u32::from(cto8) << 24;
    let mut last_call = 0usize;
    let mut at = 0usize;
    while at < buf.len() - 5 {
        let opcode = buf[at];
        let call_or_jmp = opcode == 0xe8 || opcode == 0xe9;
        let jcc = with_jcc
            && at != last_call
            && at >= 1
            && buf[at - 1] == 0x0f
            && (0x80..=0x8f).contains(&opcode);
        if (call_or_jmp || jcc) && buf[at + 1] == cto8 {
            let operand: [u8; 4] = buf[at + 1..at + 5].try_into().expect("four bytes");
            let absolute = u32::from_be_bytes(operand);
            let relative = absolute
                .wrapping_sub(at as u32)
                .wrapping_sub(1)
                .wrapping_sub(cto);
            buf[at + 1..at + 5].copy_from_slice(&relative.to_le_bytes());
            at += 4;
            last_call = at + 1;
        }
        at += 1;
    }
}
