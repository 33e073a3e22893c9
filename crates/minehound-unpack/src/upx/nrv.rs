//! UCL's NRV2B, NRV2D and NRV2E decoders in their 32-bit little-endian bit
//! buffer form, the one UPX uses for ELF (methods 2, 5 and 8).
//!
//! Written from the public format: literals and matches are told apart by
//! one bit; offsets and lengths are gamma-coded bits read from a 32-bit word
//! taken whole from the input, high bit first; literal and offset bytes come
//! from the same input between the words. Every read and every copy is
//! bounded: hostile input ends in [`Corrupt`], never a panic or a write past
//! the block.

use super::Corrupt;

/// The three NRV variants: how match offsets and lengths are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nrv {
    B,
    D,
    E,
}

/// Offsets above this are coded with a length one longer (NRV2B).
const B_LONG_OFFSET: u32 = 0xd00;
/// Offsets above this are coded with a length one longer (NRV2D, NRV2E).
const DE_LONG_OFFSET: u32 = 0x500;
/// Coded offsets have at most 24 significant bits before the low byte.
const MAX_OFFSET_HIGH: u32 = 0x00ff_ffff;

/// Bits and bytes of one compressed block.
struct Input<'a> {
    src: &'a [u8],
    pos: usize,
    word: u32,
    left: u32,
}

impl Input<'_> {
    fn bit(&mut self) -> Result<u32, Corrupt> {
        if self.left == 0 {
            let bytes = self
                .src
                .get(self.pos..self.pos + 4)
                .ok_or(Corrupt("compressed block ends early"))?;
            self.word = u32::from_le_bytes(bytes.try_into().expect("four bytes"));
            self.pos += 4;
            self.left = 32;
        }
        self.left -= 1;
        Ok((self.word >> self.left) & 1)
    }

    fn byte(&mut self) -> Result<u8, Corrupt> {
        let byte = *self
            .src
            .get(self.pos)
            .ok_or(Corrupt("compressed block ends early"))?;
        self.pos += 1;
        Ok(byte)
    }

    /// A gamma-coded number: `value*2 + bit` until a stop bit, bounded.
    fn gamma(&mut self, mut value: u32, limit: u32) -> Result<u32, Corrupt> {
        loop {
            value = value * 2 + self.bit()?;
            if value > limit {
                return Err(Corrupt("coded number out of range"));
            }
            if self.bit()? == 1 {
                return Ok(value);
            }
        }
    }
}

/// Decodes `src` into exactly `dst.len()` bytes.
pub(super) fn decompress(variant: Nrv, src: &[u8], dst: &mut [u8]) -> Result<(), Corrupt> {
    let mut input = Input {
        src,
        pos: 0,
        word: 0,
        left: 0,
    };
    let mut out = 0usize;
    let mut last_offset: u32 = 1;
    // No offset or length can exceed the block: bounds every gamma code.
    // (Kept below 2^31 so that doubling it never overflows.)
    let most = u32::try_from(dst.len())
        .unwrap_or(u32::MAX)
        .min(0x7fff_fff0)
        + 4;
    loop {
        while input.bit()? == 1 {
            *dst.get_mut(out)
                .ok_or(Corrupt("more output than the block holds"))? = input.byte()?;
            out += 1;
        }
        let mut offset: u32 = 1;
        match variant {
            Nrv::B => offset = input.gamma(offset, MAX_OFFSET_HIGH + 3)?,
            Nrv::D | Nrv::E => loop {
                offset = offset * 2 + input.bit()?;
                if input.bit()? == 1 {
                    break;
                }
                offset = (offset - 1) * 2 + input.bit()?;
                if offset > MAX_OFFSET_HIGH + 3 {
                    return Err(Corrupt("coded number out of range"));
                }
            },
        }
        // NRV2D/E code the length's first bit in the offset's low bit.
        let mut length_bit = None;
        if offset == 2 {
            offset = last_offset;
            if variant != Nrv::B {
                length_bit = Some(input.bit()?);
            }
        } else {
            let high = offset
                .checked_sub(3)
                .filter(|high| *high <= MAX_OFFSET_HIGH);
            let high = high.ok_or(Corrupt("coded offset out of range"))?;
            offset = high * 256 + u32::from(input.byte()?);
            if offset == u32::MAX {
                break;
            }
            if variant != Nrv::B {
                length_bit = Some((offset ^ u32::MAX) & 1);
                offset >>= 1;
            }
            offset += 1;
            last_offset = offset;
        }
        let mut length = match (variant, length_bit) {
            (Nrv::B, _) | (Nrv::D | Nrv::E, None) => {
                let length = input.bit()? * 2 + input.bit()?;
                if length == 0 {
                    input.gamma(1, most)? + 2
                } else {
                    length
                }
            }
            (Nrv::D, Some(bit)) => {
                let length = bit * 2 + input.bit()?;
                if length == 0 {
                    input.gamma(1, most)? + 2
                } else {
                    length
                }
            }
            (Nrv::E, Some(1)) => 1 + input.bit()?,
            (Nrv::E, Some(_)) => {
                if input.bit()? == 1 {
                    3 + input.bit()?
                } else {
                    input.gamma(1, most)? + 3
                }
            }
        };
        let long = if variant == Nrv::B {
            B_LONG_OFFSET
        } else {
            DE_LONG_OFFSET
        };
        length += u32::from(offset > long);
        // The match is length + 1 bytes, copied byte by byte: it may overlap
        // its own output (a run).
        let count = length as usize + 1;
        let from = out
            .checked_sub(offset as usize)
            .ok_or(Corrupt("match reaches before the block"))?;
        if out + count > dst.len() {
            return Err(Corrupt("more output than the block holds"));
        }
        for i in 0..count {
            dst[out + i] = dst[from + i];
        }
        out += count;
    }
    if out != dst.len() {
        return Err(Corrupt("block ends before its stated size"));
    }
    Ok(())
}
