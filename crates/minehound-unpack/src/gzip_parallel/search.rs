//! Finding where a DEFLATE block may start, from a bit position in the middle
//! of a stream: the header of a (non-last) dynamic Huffman block has to hold
//! complete, well-formed codes, which random bits almost never do. A false
//! find costs time, not correctness: a chunk is only used when the chunk
//! before it, decoded from a known boundary, ends exactly where it starts.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Full header checks one chunk may cost: stored data can hold any bits,
/// headers that pass the first checks included.
const MAX_HEADER_CHECKS: usize = 4096;

/// The bit positions in `from..to` where a dynamic block's header parses,
/// in order, until `stop` (or too many near misses); read from `source` once.
pub(crate) fn block_starts<'a>(
    source: &dyn ReadAt,
    from: u64,
    to: u64,
    stop: &'a AtomicBool,
) -> io::Result<impl Iterator<Item = u64> + 'a> {
    let first = from / 8;
    let last = (to.div_ceil(8) + MAX_HEADER_BYTES).min(source.size());
    let mut bytes = vec![0u8; last.saturating_sub(first) as usize];
    let filled = super::read_at_full(source, &mut bytes, first)?;
    bytes.truncate(filled);
    let held = Arc::new(Held {
        bytes,
        offset: first,
    });
    // One decoder checks every header that passes the first bits.
    let mut checker = Inflater::over(Bits::at(held.clone(), from, 1024));
    let mut checks = 0;
    Ok((from..to)
        .take_while(move |bit| bit % 4096 != 0 || !stop.load(Ordering::Relaxed))
        .filter(move |&bit| {
            let at = (bit / 8 - first) as usize;
            if !quick_check(&held.bytes, at, (bit % 8) as u32) {
                return false;
            }
            checks += 1;
            checks <= MAX_HEADER_CHECKS && {
                checker.restart(bit);
                checker.start_block().is_ok()
            }
        }))
}

/// 64 bits from byte `at`, shifted by `shift` (zeros past the end).
#[inline]
fn word(bytes: &[u8], at: usize, shift: u32) -> u64 {
    let word = match bytes.get(at..at + 8) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
        None => {
            let mut b = [0u8; 8];
            let tail = bytes.get(at..).unwrap_or(&[]);
            b[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(b)
        }
    };
    word >> shift
}

/// The first bits: a non-last dynamic block, symbol counts in range and a
/// complete code-length code.
#[inline]
fn quick_check(bytes: &[u8], at: usize, shift: u32) -> bool {
    let head = word(bytes, at, shift);
    if head & 7 != 0b100 {
        return false;
    }
    if (head >> 3) & 31 > 29 || (head >> 8) & 31 > 29 {
        return false;
    }
    let code_lengths = ((head >> 13) & 15) as u32 + 4;
    // Bit 17 on: 57 bits at most, past what one shifted word holds.
    let bit17 = u64::from(shift) + 17;
    let lengths = word(bytes, at + (bit17 / 8) as usize, (bit17 % 8) as u32);
    let mut kraft = 0u32;
    for i in 0..code_lengths {
        let length = ((lengths >> (3 * i)) & 7) as u32;
        if length > 0 {
            kraft += 1 << (7 - length);
        }
    }
    kraft == 1 << 7
}
