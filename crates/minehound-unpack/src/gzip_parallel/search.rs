//! Finding where a DEFLATE block may start, from a bit position in the middle
//! of a stream: the header of a (non-last) dynamic Huffman block has to hold
//! complete, well-formed codes, which random bits almost never do. A false
//! find costs time, not correctness: a chunk is only used when the chunk
//! before it, decoded from a known boundary, ends exactly where it starts.

use std::io;
use std::sync::Arc;

use super::ReadAt;
use super::inflate::{Bits, Inflater};

/// Bytes a dynamic block's header can take: 3 + 14 + 19 × 3 bits, then at
/// most 316 code lengths of 7 bits each.
const MAX_HEADER_BYTES: u64 = 300;

/// Compressed bytes held in memory while searching.
struct Held {
    bytes: Vec<u8>,
    offset: u64,
}

impl ReadAt for Held {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let from = offset.saturating_sub(self.offset) as usize;
        let have = self.bytes.get(from..).unwrap_or(&[]);
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

/// The bit positions in `from..to` where a dynamic block's header parses,
/// in order; read from `source` once.
pub(crate) fn block_starts(
    source: &dyn ReadAt,
    from: u64,
    to: u64,
) -> io::Result<impl Iterator<Item = u64>> {
    let first = from / 8;
    let last = (to.div_ceil(8) + MAX_HEADER_BYTES).min(source.size());
    let mut bytes = vec![0u8; last.saturating_sub(first) as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        match source.read_at(&mut bytes[filled..], first + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    let held: Arc<dyn ReadAt> = Arc::new(Held {
        bytes,
        offset: first,
    });
    Ok((from..to).filter(move |&bit| quick_check(held.as_ref(), bit) && header_parses(&held, bit)))
}

/// 64 bits from `bit` of the held bytes (zeros past their end).
fn word(held: &dyn ReadAt, bit: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = held.read_at(&mut bytes, bit / 8);
    u64::from_le_bytes(bytes) >> (bit % 8)
}

/// The first bits: a non-last dynamic block, symbol counts in range and a
/// complete code-length code.
fn quick_check(held: &dyn ReadAt, bit: u64) -> bool {
    let head = word(held, bit);
    if head & 7 != 0b100 {
        return false;
    }
    if (head >> 3) & 31 > 29 || (head >> 8) & 31 > 29 {
        return false;
    }
    let code_lengths = ((head >> 13) & 15) as u32 + 4;
    let lengths = word(held, bit + 17);
    let mut kraft = 0u32;
    for i in 0..code_lengths {
        let length = ((lengths >> (3 * i)) & 7) as u32;
        if length > 0 {
            kraft += 1 << (7 - length);
        }
    }
    kraft == 1 << 7
}

fn header_parses(held: &Arc<dyn ReadAt>, bit: u64) -> bool {
    Inflater::over(Bits::at(held.clone(), bit, 1024))
        .start_block()
        .is_ok()
}
