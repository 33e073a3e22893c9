//! UPX-packed ELF executables unpacked in memory, so the rules judge the
//! program a packer hid and not only the fact that it was packed.
//!
//! A packed executable keeps UPX's layout after its own program headers:
//! `l_info` (checksum, `UPX!`, loader size), `p_info` (original file size,
//! largest block), then blocks, each a `b_info` (sizes, method, filter)
//! followed by its compressed bytes. The first blocks rebuild each `PT_LOAD`
//! of the original file, headers first; after the loader stub come the
//! stretches of the file no segment loads (section headers, symbols). The
//! last four bytes of the file point at `p_info`.
//!
//! Attackers patch out the `UPX!` magics so that `upx -d` refuses the file;
//! nothing here reads them. `p_info` is found from the trailer, or right
//! after the program headers where UPX puts it, and every block is
//! checked as it is read. Methods NRV2B, NRV2D, NRV2E (UPX's defaults) and
//! LZMA (`upx --lzma`); ELF executables, 32- and 64-bit little-endian.
//! Packed shared libraries (which UPX packs from an offset) are not unpacked.

mod filter;
mod nrv;

use nrv::Nrv;

/// Why a file was not unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpxError {
    /// No UPX block structure where UPX puts it.
    #[error("no UPX block structure found")]
    NotPacked,
    /// The original file is larger than the caller allows.
    #[error("the unpacked file would be {size} bytes, beyond the limit of {limit} bytes")]
    TooLarge {
        /// The original file's size, from `p_info`.
        size: u64,
        /// The caller's bound.
        limit: u64,
    },
    /// A block uses a compression method this reader does not decode.
    #[error("UPX compression method {0} is not read")]
    Method(u8),
    /// The blocks do not decode to what their headers say.
    #[error("damaged UPX data: {0}")]
    Corrupt(&'static str),
}

/// A damaged-data reason, shared by the decoders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Corrupt(pub(crate) &'static str);

impl From<Corrupt> for UpxError {
    fn from(Corrupt(what): Corrupt) -> Self {
        UpxError::Corrupt(what)
    }
}

/// UPX's compression method numbers.
const M_NRV2B_LE32: u8 = 2;
const M_NRV2D_LE32: u8 = 5;
const M_NRV2E_LE32: u8 = 8;
const M_LZMA: u8 = 14;

const L_INFO_LEN: usize = 12;
const P_INFO_LEN: usize = 12;
const B_INFO_LEN: usize = 12;
const PT_LOAD: u32 = 1;
/// How far past the last segment's blocks the first unloaded stretch is
/// looked for: the loader stub between them is a few KiB.
const LOADER_SEARCH: usize = 256 * 1024;
/// How far a later block may sit from where the previous one ended.
const BLOCK_SLACK: usize = 64;

/// The largest ELF header block UPX writes (its `MAX_ELF_HDR_64`).
const MAX_HEADERS: usize = 1024;
/// UPX packs in blocks of 512 KiB, or the whole file when smaller; far
/// smaller blocks would only multiply the work a hostile file asks for.
const MIN_BLOCK: usize = 64 * 1024;
/// LZMA literal context and position bits beyond what UPX chooses cost a
/// large probability table per block.
const MAX_LZMA_LC_LP: u8 = 8;

/// A UPX-packed ELF executable, located but not yet unpacked: what it will
/// cost is known first ([`Packed::size`]), so a caller can bound and
/// reserve it before any work.
#[derive(Debug, Clone)]
pub struct Packed<'a> {
    data: &'a [u8],
    class: Class,
    p_info: usize,
    file_size: usize,
    block_size: usize,
    first: BlockInfo,
}

impl<'a> Packed<'a> {
    /// Finds UPX's block structure in `data`: after the trailer's offset, or
    /// right after the program headers; the `UPX!` magics are not read.
    pub fn find(data: &'a [u8]) -> Result<Packed<'a>, UpxError> {
        let elf = ElfHeader::parse(data).ok_or(UpxError::NotPacked)?;
        let tail = data
            .len()
            .checked_sub(4)
            .and_then(|at| le32(data, at))
            .map(|offset| offset as usize);
        // Right after the packed file's own program headers, past `l_info`.
        let after_headers = elf
            .phnum
            .checked_mul(elf.phentsize)
            .and_then(|len| len.checked_add(elf.phoff))
            .and_then(|end| end.checked_add(L_INFO_LEN));
        let mut candidates = [tail, after_headers].into_iter().flatten();
        candidates
            .find_map(|p_info| Packed::at(data, p_info, elf.class))
            .ok_or(UpxError::NotPacked)
    }

    /// The structure at `p_info`, if what every UPX file holds is there:
    /// blocks no larger than `p_info` says, the first (the ELF headers)
    /// compressed and small.
    fn at(data: &'a [u8], p_info: usize, class: Class) -> Option<Packed<'a>> {
        let first_at = p_info.checked_add(P_INFO_LEN)?;
        let file_size = le32(data, p_info.checked_add(4)?)? as usize;
        let block_size = le32(data, p_info.checked_add(8)?)? as usize;
        let first = BlockInfo::read(data, first_at)?;
        let plausible = file_size > 0
            && block_size <= file_size
            && block_size >= file_size.min(MIN_BLOCK)
            && first.packed > 0
            && first.packed < first.unpacked
            && first.unpacked <= block_size.min(MAX_HEADERS);
        plausible.then_some(Packed {
            data,
            class,
            p_info,
            file_size,
            block_size,
            first,
        })
    }

    /// The size of the original file: what unpacking allocates.
    pub fn size(&self) -> u64 {
        self.file_size as u64
    }

    /// The original file, rebuilt from its blocks, if it is at most `limit`
    /// bytes. Where a stretch no segment loads cannot be found, it is left
    /// zeroed: the segments, what runs, are always there.
    pub fn unpack(&self, limit: u64) -> Result<Vec<u8>, UpxError> {
        if self.size() > limit {
            return Err(UpxError::TooLarge {
                size: self.size(),
                limit,
            });
        }
        let first_at = self.p_info + P_INFO_LEN;
        let mut blocks = Blocks {
            data: self.data,
            at: first_at,
            first_at,
            block_size: self.block_size,
            method: self.first.method,
        };
        // The first block alone: the original ELF and program headers, which
        // say where every segment goes. It is read again as the start of the
        // first segment.
        let mut headers = vec![0; self.first.unpacked];
        blocks.clone().read_into(&mut headers)?;
        let original = ElfHeader::parse(&headers)
            .filter(|header| header.class == self.class)
            .ok_or(UpxError::Corrupt(
                "the first block is not the ELF header (a packed shared library, or damage)",
            ))?;
        let loads = original.loads(&headers)?;
        drop(headers);
        // The headers open the first segment, as in every executable.
        if loads
            .first()
            .is_none_or(|&(offset, size)| offset != 0 || size < self.first.unpacked)
        {
            return Err(UpxError::Corrupt(
                "no loaded segment starts with the ELF header",
            ));
        }
        let mut image = vec![0u8; self.file_size];
        for &(offset, size) in &loads {
            let extent = offset
                .checked_add(size)
                .and_then(|end| image.get_mut(offset..end))
                .ok_or(UpxError::Corrupt(
                    "a segment reaches past the original file",
                ))?;
            blocks.read_into(extent)?;
        }
        // The stretches no segment loads, after the loader stub: best effort.
        let mut search = LOADER_SEARCH;
        for gap in unloaded_stretches(&loads, self.file_size) {
            let Some(at) = blocks.find_stretch(gap.len(), search) else {
                break;
            };
            blocks.at = at;
            if blocks.read_into(&mut image[gap]).is_err() {
                break;
            }
            search = BLOCK_SLACK;
        }
        Ok(image)
    }
}

/// [`Packed::find`] then [`Packed::unpack`]: the original file of a
/// UPX-packed ELF executable, at most `limit` bytes.
pub fn unpack(data: &[u8], limit: u64) -> Result<Vec<u8>, UpxError> {
    Packed::find(data)?.unpack(limit)
}

/// The fields of an ELF header that locate its program headers.
#[derive(Debug, Clone, Copy)]
struct ElfHeader {
    class: Class,
    phoff: usize,
    phnum: usize,
    phentsize: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Elf32,
    Elf64,
}

impl ElfHeader {
    fn parse(data: &[u8]) -> Option<ElfHeader> {
        if data.get(..4)? != b"\x7fELF" || *data.get(5)? != 1 {
            return None;
        }
        let (class, phoff, phentsize, phnum) = match data.get(4)? {
            1 => (Class::Elf32, u64::from(le32(data, 28)?), 42, 44),
            2 => (Class::Elf64, le64(data, 32)?, 54, 56),
            _ => return None,
        };
        Some(ElfHeader {
            class,
            phoff: usize::try_from(phoff).ok()?,
            phentsize: usize::from(le16(data, phentsize)?),
            phnum: usize::from(le16(data, phnum)?),
        })
    }

    /// The `PT_LOAD` segments' file extents as `(offset, size)`, in program
    /// header order; the headers must lie inside `headers` and have the
    /// standard entry size (this also bounds their number).
    fn loads(&self, headers: &[u8]) -> Result<Vec<(usize, usize)>, UpxError> {
        let bad = UpxError::Corrupt("packed program headers out of bounds");
        let entry = match self.class {
            Class::Elf32 => 32,
            Class::Elf64 => 56,
        };
        let table_end = self
            .phnum
            .checked_mul(entry)
            .and_then(|len| len.checked_add(self.phoff));
        if self.phentsize != entry || table_end.is_none_or(|end| end > headers.len()) {
            return Err(bad);
        }
        let mut loads = Vec::new();
        for index in 0..self.phnum {
            let at = self.phoff + index * entry;
            if le32(headers, at).ok_or(bad.clone())? != PT_LOAD {
                continue;
            }
            let (offset, size) = match self.class {
                Class::Elf32 => (
                    le32(headers, at + 4).map(u64::from),
                    le32(headers, at + 16).map(u64::from),
                ),
                Class::Elf64 => (le64(headers, at + 8), le64(headers, at + 32)),
            };
            let offset = offset.and_then(|o| usize::try_from(o).ok());
            let size = size.and_then(|s| usize::try_from(s).ok());
            loads.push((offset.ok_or(bad.clone())?, size.ok_or(bad.clone())?));
        }
        Ok(loads)
    }
}

/// One block's header.
#[derive(Debug, Clone, Copy)]
struct BlockInfo {
    unpacked: usize,
    packed: usize,
    method: u8,
    filter: u8,
    cto8: u8,
}

impl BlockInfo {
    fn read(data: &[u8], at: usize) -> Option<BlockInfo> {
        let header = data.get(at..at.checked_add(B_INFO_LEN)?)?;
        Some(BlockInfo {
            unpacked: le32(header, 0)? as usize,
            packed: le32(header, 4)? as usize,
            method: header[8],
            filter: header[9],
            cto8: header[10],
        })
    }
}

/// The file ranges after each `PT_LOAD` up to the next one (or the end of
/// the file), in program header order, as UPX stores them.
fn unloaded_stretches(loads: &[(usize, usize)], file_size: usize) -> Vec<std::ops::Range<usize>> {
    loads
        .iter()
        .filter_map(|&(offset, size)| {
            let end = offset + size;
            let next = loads
                .iter()
                .map(|&(other, _)| other)
                .filter(|&other| other >= end)
                .min()
                .unwrap_or(file_size);
            (next > end && next <= file_size).then_some(end..next)
        })
        .collect()
}

/// A reading position in the blocks.
#[derive(Clone)]
struct Blocks<'a> {
    data: &'a [u8],
    at: usize,
    /// Where the first block (the ELF headers, smaller than the rest) is.
    first_at: usize,
    block_size: usize,
    /// The method of the first block: later compressed blocks share it.
    method: u8,
}

impl Blocks<'_> {
    /// Fills `out` from consecutive blocks: each a whole block, but the last
    /// of an extent and the first of the file, as UPX writes them (so a
    /// file cannot ask for more blocks than its size needs).
    fn read_into(&mut self, out: &mut [u8]) -> Result<(), UpxError> {
        let mut done = 0;
        while done < out.len() {
            let block = BlockInfo::read(self.data, self.at)
                .ok_or(UpxError::Corrupt("the blocks end before the file does"))?;
            let left = out.len() - done;
            let whole = block.unpacked == self.block_size
                || block.unpacked == left
                || self.at == self.first_at;
            let fits = block.unpacked > 0
                && block.packed > 0
                && block.packed <= block.unpacked
                && block.unpacked <= self.block_size
                && block.unpacked <= left
                && whole;
            if !fits {
                return Err(UpxError::Corrupt("a block's sizes do not fit the file"));
            }
            let start = self.at + B_INFO_LEN;
            let packed = self
                .data
                .get(start..start + block.packed)
                .ok_or(UpxError::Corrupt(
                    "a block reaches past the end of the file",
                ))?;
            let dst = &mut out[done..done + block.unpacked];
            if block.packed == block.unpacked {
                dst.copy_from_slice(packed);
            } else {
                decompress(block.method, packed, dst)?;
                if block.filter != 0 {
                    filter::unfilter(block.filter, block.cto8, dst);
                }
            }
            done += block.unpacked;
            self.at = start + block.packed;
        }
        Ok(())
    }

    /// Where the block holding an unloaded stretch of `len` bytes starts,
    /// searched up to `window` bytes on: stored whole, or compressed with
    /// the file's method and no filter, as UPX writes them.
    fn find_stretch(&self, len: usize, window: usize) -> Option<usize> {
        let last = self.data.len().checked_sub(B_INFO_LEN)?;
        (self.at..=last.min(self.at.saturating_add(window))).find(|&at| {
            BlockInfo::read(self.data, at).is_some_and(|block| {
                let stored = block.packed == block.unpacked
                    && block.method == 0
                    && block.filter == 0
                    && block.cto8 == 0;
                let compressed = block.packed < block.unpacked
                    && block.method == self.method
                    && block.filter == 0
                    && block.cto8 == 0;
                block.unpacked == len.min(self.block_size)
                    && block.packed > 0
                    && (stored || compressed)
            })
        })
    }
}

fn decompress(method: u8, src: &[u8], dst: &mut [u8]) -> Result<(), UpxError> {
    match method {
        M_NRV2B_LE32 => Ok(nrv::decompress(Nrv::B, src, dst)?),
        M_NRV2D_LE32 => Ok(nrv::decompress(Nrv::D, src, dst)?),
        M_NRV2E_LE32 => Ok(nrv::decompress(Nrv::E, src, dst)?),
        M_LZMA => lzma(src, dst),
        other => Err(UpxError::Method(other)),
    }
}

/// UPX's LZMA block: two bytes of properties (its own layout), then a raw
/// LZMA stream with no end marker, whose size the block header gives.
fn lzma(src: &[u8], dst: &mut [u8]) -> Result<(), UpxError> {
    let bad = UpxError::Corrupt("bad LZMA properties");
    let [first, second, stream @ ..] = src else {
        return Err(bad);
    };
    let (pb, lp, lc) = (first & 7, second >> 4, second & 15);
    if pb >= 5 || lp >= 5 || lc >= 9 || first >> 3 != lc + lp || lc + lp > MAX_LZMA_LC_LP {
        return Err(bad);
    }
    // The classic 5-byte LZMA header lzma-rs reads: properties, then a
    // dictionary as large as the block (all of it may be referred to).
    let dict_size = u32::try_from(dst.len().max(4096)).map_err(|_| bad.clone())?;
    let mut input = Vec::with_capacity(5 + stream.len());
    input.push((pb * 5 + lp) * 9 + lc);
    input.extend_from_slice(&dict_size.to_le_bytes());
    input.extend_from_slice(stream);
    let options = lzma_rs::decompress::Options {
        unpacked_size: lzma_rs::decompress::UnpackedSize::UseProvided(Some(dst.len() as u64)),
        memlimit: Some(dst.len().max(4096)),
        allow_incomplete: false,
    };
    let mut out: &mut [u8] = dst;
    lzma_rs::lzma_decompress_with_options(&mut input.as_slice(), &mut out, &options)
        .map_err(|_| UpxError::Corrupt("LZMA stream does not decode"))?;
    if !out.is_empty() {
        return Err(UpxError::Corrupt("block ends before its stated size"));
    }
    Ok(())
}

fn le16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minehound_testdata::samples;

    const NO_LIMIT: u64 = u64::MAX;

    /// Every method `upx` offers for amd64 rebuilds XMRig byte for byte:
    /// segments, the loader skipped, the unloaded stretches, the filter undone.
    #[test]
    fn real_upx_output_unpacks_to_the_original_file() {
        let original = samples::xmrig().unwrap();
        for method in ["nrv2b", "nrv2d", "nrv2e", "lzma"] {
            let packed = samples::upx_packed_xmrig(method).unwrap();
            assert!(packed.len() < original.len() / 2, "{method}: really packed");
            let image = unpack(&packed, NO_LIMIT).unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(image.len(), original.len(), "{method}");
            assert!(image == original, "{method}: unpacked bytes differ");
        }
    }

    /// The tampering that stops `upx -d`: every `UPX!` magic overwritten.
    #[test]
    fn magics_patched_out_still_unpack() {
        let original = samples::xmrig().unwrap();
        let mut packed = samples::upx_packed_xmrig("nrv2e").unwrap();
        let mut patched = 0;
        while let Some(at) = memchr_upx(&packed) {
            packed[at..at + 4].copy_from_slice(b"\0\0\0\0");
            patched += 1;
        }
        assert!(patched >= 3, "l_info, the end block and the pack header");
        assert!(unpack(&packed, NO_LIMIT).unwrap() == original);
        // The trailer that points at p_info overwritten too.
        let end = packed.len();
        packed[end - 4..].copy_from_slice(&[0xff; 4]);
        assert!(unpack(&packed, NO_LIMIT).unwrap() == original);
    }

    fn memchr_upx(data: &[u8]) -> Option<usize> {
        data.windows(4).position(|window| window == b"UPX!")
    }

    #[test]
    fn the_limit_bounds_the_unpacked_size_before_any_work() {
        let mut packed = samples::upx_packed_xmrig("nrv2e").unwrap();
        let original_len = samples::xmrig().unwrap().len() as u64;
        assert_eq!(Packed::find(&packed).unwrap().size(), original_len);
        // Tiny blocks would multiply the work: no UPX writes them.
        let p_info = 64 + 3 * 56 + L_INFO_LEN;
        let block_size = packed[p_info + 8..p_info + 12].to_vec();
        packed[p_info + 8..p_info + 12].copy_from_slice(&16u32.to_le_bytes());
        assert_eq!(Packed::find(&packed).unwrap_err(), UpxError::NotPacked);
        packed[p_info + 8..p_info + 12].copy_from_slice(&block_size);
        assert_eq!(
            unpack(&packed, 1 << 20),
            Err(UpxError::TooLarge {
                size: original_len,
                limit: 1 << 20
            })
        );
    }

    /// Damaged packed files end in an error or a (partly zeroed) image of the
    /// stated size, never a panic or an image larger than the limit.
    #[test]
    fn damaged_packed_files_never_panic() {
        for method in ["nrv2e", "lzma"] {
            let packed = samples::upx_packed_xmrig(method).unwrap();
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            for cut in [0, 3, 64, 250, 300, 4096, packed.len() / 2, packed.len() - 5] {
                let _ = unpack(&packed[..cut], NO_LIMIT);
            }
            for _ in 0..40 {
                let mut damaged = packed.clone();
                // Damage near the headers, where sizes live, and anywhere.
                for _ in 0..4 {
                    let at = if next() % 2 == 0 {
                        (next() % 512) as usize
                    } else {
                        (next() % packed.len() as u64) as usize
                    };
                    damaged[at] = next() as u8;
                }
                if let Ok(image) = unpack(&damaged, 8 << 20) {
                    assert!(image.len() <= 8 << 20);
                }
            }
        }
    }

    #[test]
    fn files_that_are_not_upx_are_refused() {
        assert_eq!(unpack(b"", NO_LIMIT), Err(UpxError::NotPacked));
        assert_eq!(unpack(b"#!/bin/sh\n", NO_LIMIT), Err(UpxError::NotPacked));
        let original = samples::xmrig().unwrap();
        assert!(unpack(&original, NO_LIMIT).is_err());
    }

    /// A block decodes only into exactly the size its header states.
    #[test]
    fn a_block_fills_exactly_its_stated_size() {
        for (method, variant) in [("nrv2b", Nrv::B), ("nrv2d", Nrv::D), ("nrv2e", Nrv::E)] {
            let packed = samples::upx_packed_xmrig(method).unwrap();
            // The first block, the ELF headers, right after p_info.
            let at = 64 + 3 * 56 + L_INFO_LEN + P_INFO_LEN;
            let block = BlockInfo::read(&packed, at).unwrap();
            let src = &packed[at + B_INFO_LEN..at + B_INFO_LEN + block.packed];
            let mut exact = vec![0; block.unpacked];
            nrv::decompress(variant, src, &mut exact).unwrap();
            assert_eq!(&exact[..4], b"\x7fELF", "{method}");
            for wrong in [block.unpacked - 1, block.unpacked + 1] {
                let mut out = vec![0; wrong];
                assert!(nrv::decompress(variant, src, &mut out).is_err(), "{method}");
            }
            assert!(nrv::decompress(variant, &src[..src.len() - 1], &mut exact).is_err());
        }
    }
}
