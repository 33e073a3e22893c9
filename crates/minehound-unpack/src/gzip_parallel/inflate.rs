//! A DEFLATE (RFC 1951) decoder that can start at any block boundary, even
//! without the 32 KiB of output that came before it: a byte copied from that
//! unknown window is written as a marker naming its place in the window, and
//! resolved once the window is known.
//!
//! It refuses everything zlib refuses (and a little more: a code-length code
//! of no codes). A refusal only sends a range back to the one thread that
//! decodes in order, so strictness costs speed on odd input, never a result.

use std::io;
use std::sync::{Arc, OnceLock};

use super::ReadAt;

/// How far back a DEFLATE copy may reach.
pub(crate) const WINDOW: usize = 32 * 1024;

/// Compressed bytes read per refill.
const REFILL: usize = 256 * 1024;

/// Why decoding stopped short.
#[derive(Debug)]
pub(crate) enum InflateError {
    /// Not DEFLATE: zlib's "corrupt deflate stream".
    Corrupt,
    /// The compressed bytes ended inside a block.
    Incomplete,
    /// The source failed.
    Io(io::Error),
}

impl From<io::Error> for InflateError {
    fn from(e: io::Error) -> Self {
        InflateError::Io(e)
    }
}

impl InflateError {
    /// The error flate2 gives for the same stream, so that a layer fails
    /// with the same words whichever way it was inflated.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            InflateError::Corrupt => {
                io::Error::new(io::ErrorKind::InvalidInput, "corrupt deflate stream")
            }
            InflateError::Incomplete => {
                io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete deflate stream")
            }
            InflateError::Io(e) => e,
        }
    }
}

/// Bits of a positional source, least significant first, read on demand.
pub(crate) struct Bits {
    source: Arc<dyn ReadAt>,
    /// Bytes read per refill.
    refill: usize,
    buf: Vec<u8>,
    /// Source offset of `buf[0]`.
    start: u64,
    /// Absolute bit position.
    pos: u64,
    /// The source's size in bits.
    end: u64,
}

impl Bits {
    pub(crate) fn at(source: Arc<dyn ReadAt>, bit: u64, refill: usize) -> Self {
        let end = source.size().saturating_mul(8);
        Bits {
            source,
            refill,
            buf: Vec::new(),
            start: bit / 8,
            pos: bit,
            end,
        }
    }

    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Makes at least 8 bytes from the position readable, unless the source
    /// ends first.
    #[inline]
    fn ensure(&mut self) -> io::Result<()> {
        let index = (self.pos / 8 - self.start) as usize;
        if index + 8 <= self.buf.len() {
            return Ok(());
        }
        self.refill(index)
    }

    #[cold]
    fn refill(&mut self, index: usize) -> io::Result<()> {
        // Keep what is left from the position on; past the buffer, nothing.
        if index >= self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..index);
        }
        self.start = self.pos / 8;
        let have_end = self.start + self.buf.len() as u64;
        let size = self.source.size();
        if have_end >= size {
            return Ok(());
        }
        let want = self.refill.min((size - have_end) as usize);
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let mut filled = 0;
        while filled < want {
            match self
                .source
                .read_at(&mut self.buf[old + filled..], have_end + filled as u64)
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the layer blob got shorter while it was read",
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next 56 bits or more (zeros past the end of the source).
    #[inline]
    fn peek(&self) -> u64 {
        let index = (self.pos / 8 - self.start) as usize;
        let word = match self.buf.get(index..index + 8) {
            Some(bytes) => u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])),
            None => {
                let mut bytes = [0u8; 8];
                let tail = self.buf.get(index..).unwrap_or(&[]);
                bytes[..tail.len()].copy_from_slice(tail);
                u64::from_le_bytes(bytes)
            }
        };
        word >> (self.pos % 8)
    }

    #[inline]
    fn consume(&mut self, n: u32) -> Result<(), InflateError> {
        self.pos += u64::from(n);
        if self.pos > self.end {
            return Err(InflateError::Incomplete);
        }
        Ok(())
    }

    /// The next `n` bits (at most 32) as a number.
    #[inline]
    fn take(&mut self, n: u32) -> Result<u32, InflateError> {
        self.ensure()?;
        let value = (self.peek() & ((1u64 << n) - 1)) as u32;
        self.consume(n)?;
        Ok(value)
    }

    /// `error`, or [`InflateError::Incomplete`] if the `needed` bits zlib
    /// reads before it judges the code run past the end.
    fn or_incomplete(&self, error: InflateError, needed: u32) -> InflateError {
        match self.pos + u64::from(needed) > self.end {
            true => InflateError::Incomplete,
            false => error,
        }
    }

    fn align_to_byte(&mut self) -> Result<(), InflateError> {
        let skip = (8 - (self.pos % 8) as u32) % 8;
        self.consume(skip)
    }
}

/// Bits looked up in one step; longer codes are decoded bit by bit.
const FAST_BITS: u32 = 10;

/// A canonical Huffman code.
#[derive(Clone)]
struct Huffman {
    /// By the next `fast_bits` bits: `length << 16 | symbol`, 0 if longer.
    fast: Vec<u32>,
    /// `FAST_BITS`, or the longest code if shorter: a table no larger than
    /// the code needs.
    fast_bits: u32,
    counts: [u16; 16],
    /// Symbols in code order.
    symbols: Vec<u16>,
}

/// The fixed codes of block type 1 (RFC 1951 3.2.6), built once: a stream
/// of empty fixed blocks costs no table building.
fn fixed_codes() -> &'static (Huffman, Huffman) {
    static FIXED: OnceLock<(Huffman, Huffman)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let literal_lengths: Vec<u8> = std::iter::repeat_n(8, 144)
            .chain(std::iter::repeat_n(9, 112))
            .chain(std::iter::repeat_n(7, 24))
            .chain(std::iter::repeat_n(8, 8))
            .collect();
        let (mut literals, mut distances) = (Huffman::empty(), Huffman::empty());
        // Complete codes: they build. 286, 287 and distances 30, 31 have
        // codes, and are refused where they are met, as zlib does.
        let built = literals
            .build(&literal_lengths, Kind::Other)
            .and_then(|()| distances.build(&[5; 32], Kind::Other));
        debug_assert!(built.is_ok());
        (literals, distances)
    })
}

/// Which code a table is: code-length codes may not be incomplete at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    CodeLengths,
    Other,
}

impl Huffman {
    fn empty() -> Self {
        Huffman {
            fast: Vec::with_capacity(1 << FAST_BITS),
            fast_bits: 0,
            counts: [0; 16],
            symbols: Vec::new(),
        }
    }

    /// Rebuilds from code lengths, with zlib's rules: over-subscribed codes
    /// are refused, incomplete ones too but for a single code of one bit;
    /// a code of no codes decodes nothing.
    fn build(&mut self, lengths: &[u8], kind: Kind) -> Result<(), InflateError> {
        self.counts = [0; 16];
        for &length in lengths {
            self.counts[usize::from(length)] += 1;
        }
        self.counts[0] = 0;
        let mut left: i32 = 1;
        let mut max = 0;
        for length in 1..16 {
            left = (left << 1) - i32::from(self.counts[length]);
            if left < 0 {
                return Err(InflateError::Corrupt);
            }
            if self.counts[length] > 0 {
                max = length;
            }
        }
        if max > 0 && left > 0 && (kind == Kind::CodeLengths || max != 1) {
            return Err(InflateError::Corrupt);
        }
        let mut offsets = [0u16; 16];
        for length in 1..15 {
            offsets[length + 1] = offsets[length] + self.counts[length];
        }
        self.symbols.clear();
        self.symbols.resize(lengths.len(), 0);
        self.fast_bits = FAST_BITS.min(max as u32);
        self.fast.clear();
        self.fast.resize(1 << self.fast_bits, 0);
        // Canonical codes (RFC 1951 3.2.2).
        let mut next_code = [0u32; 16];
        let mut code = 0u32;
        for (length, next) in next_code.iter_mut().enumerate().skip(1) {
            code = (code + u32::from(self.counts[length - 1])) << 1;
            *next = code;
        }
        for (symbol, &length) in lengths.iter().enumerate() {
            if length == 0 {
                continue;
            }
            let length = usize::from(length);
            let slot = &mut offsets[length];
            self.symbols[usize::from(*slot)] = symbol as u16;
            *slot += 1;
            let code = next_code[length];
            next_code[length] += 1;
            if length as u32 <= self.fast_bits {
                let reversed = code.reverse_bits() >> (32 - length);
                let entry = (length as u32) << 16 | symbol as u32;
                let mut index = reversed as usize;
                while index < self.fast.len() {
                    self.fast[index] = entry;
                    index += 1 << length;
                }
            }
        }
        Ok(())
    }

    /// The symbol the bits of `word` start with, and its code's length.
    #[inline]
    fn lookup(&self, word: u64) -> Result<(u16, u32), InflateError> {
        let index = (word & ((1 << self.fast_bits) - 1)) as usize;
        match self.fast.get(index) {
            Some(&entry) if entry != 0 => Ok((entry as u16, entry >> 16)),
            _ => self.lookup_slow(word),
        }
    }

    #[cold]
    fn lookup_slow(&self, word: u64) -> Result<(u16, u32), InflateError> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for length in 1..16u32 {
            code |= ((word >> (length - 1)) & 1) as i32;
            let count = i32::from(self.counts[length as usize]);
            if code - first < count {
                return Ok((self.symbols[(index + code - first) as usize], length));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        // Past every code: only an incomplete code leaves such bits.
        Err(InflateError::Corrupt)
    }

    #[inline]
    fn decode(&self, bits: &mut Bits) -> Result<u16, InflateError> {
        bits.ensure()?;
        let (symbol, length) = self.lookup(bits.peek())?;
        bits.consume(length)?;
        Ok(symbol)
    }
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DISTANCE_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order code-length code lengths are stored in.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Where decoded bytes go.
pub(crate) trait Sink {
    fn len(&self) -> usize;
    fn literal(&mut self, byte: u8);
    fn bytes(&mut self, bytes: &[u8]);
    /// Copies `length` symbols from `distance` back.
    fn copy(&mut self, distance: usize, length: usize) -> Result<(), InflateError>;
}

/// Decoded bytes after a known window: `out` starts with the window (up to
/// 32 KiB, less at the start of a stream: a copy reaching before it is an
/// error, as in zlib).
pub(crate) struct ByteSink {
    pub(crate) out: Vec<u8>,
}

impl Sink for ByteSink {
    #[inline]
    fn len(&self) -> usize {
        self.out.len()
    }

    #[inline]
    fn literal(&mut self, byte: u8) {
        self.out.push(byte);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn copy(&mut self, distance: usize, length: usize) -> Result<(), InflateError> {
        let len = self.out.len();
        if distance > len {
            return Err(InflateError::Corrupt);
        }
        let from = len - distance;
        if distance >= length {
            self.out.extend_from_within(from..from + length);
        } else {
            self.out.reserve(length);
            for i in 0..length {
                let byte = self.out[from + i];
                self.out.push(byte);
            }
        }
        Ok(())
    }
}

/// Decoded symbols when the window before them is unknown: a symbol under
/// 256 is a byte, `256 + i` stands for byte `i` of the 32 KiB window.
pub(crate) struct MarkerSink {
    pub(crate) out: Vec<u16>,
    /// Where the last marker was written.
    pub(crate) last_marker: Option<usize>,
}

impl MarkerSink {
    /// Whether the last 32 KiB hold no marker: what follows can only copy
    /// known bytes, so decoding can go on in bytes.
    pub(crate) fn window_known(&self) -> bool {
        self.out.len() >= WINDOW
            && self
                .last_marker
                .is_none_or(|at| at < self.out.len() - WINDOW)
    }
}

impl Sink for MarkerSink {
    #[inline]
    fn len(&self) -> usize {
        self.out.len()
    }

    #[inline]
    fn literal(&mut self, byte: u8) {
        self.out.push(u16::from(byte));
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.out.extend(bytes.iter().map(|&b| u16::from(b)));
    }

    fn copy(&mut self, distance: usize, length: usize) -> Result<(), InflateError> {
        let len = self.out.len();
        if distance <= len && distance >= length {
            // From decoded symbols, not overlapping: in one go.
            let from = len - distance;
            self.out.extend_from_within(from..from + length);
            if let Some(at) = self.out[len..].iter().rposition(|&s| s >= 256) {
                self.last_marker = Some(len + at);
            }
            return Ok(());
        }
        for _ in 0..length {
            let len = self.out.len();
            let symbol = if distance <= len {
                self.out[len - distance]
            } else {
                // DEFLATE never reaches further back than the window.
                let back = distance - len;
                if back > WINDOW {
                    return Err(InflateError::Corrupt);
                }
                (256 + WINDOW - back) as u16
            };
            if symbol >= 256 {
                self.last_marker = Some(len);
            }
            self.out.push(symbol);
        }
        Ok(())
    }
}

/// Turns marked symbols into bytes with the window now known (its last
/// bytes; shorter at the start of a stream). `None` if a marker reaches
/// before the stream's start: a corrupt stream, for the ordered decoder to
/// find.
pub(crate) fn resolve(symbols: &[u16], window: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let missing = WINDOW - window.len().min(WINDOW);
    let window = &window[window.len() - (WINDOW - missing)..];
    out.reserve(symbols.len());
    for &symbol in symbols {
        if symbol < 256 {
            out.push(symbol as u8);
        } else {
            let at = usize::from(symbol - 256).checked_sub(missing)?;
            out.push(window[at]);
        }
    }
    Some(())
}

/// Where a call to [`Inflater::run`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Between two blocks (the next one not read yet).
    Boundary,
    /// The output reached the limit, inside a block.
    Full,
    /// After the last block.
    End,
}

enum Block {
    Between,
    Stored { remaining: usize },
    Huffman { fixed: bool },
}

/// A decoder's place in a DEFLATE stream: the bit position and, inside a
/// block, its codes. Output goes to whatever [`Sink`] each call gives.
pub(crate) struct Inflater {
    bits: Bits,
    block: Block,
    last_block: bool,
    literals: Huffman,
    distances: Huffman,
    code_lengths: Huffman,
    lengths: Vec<u8>,
}

impl Inflater {
    /// A decoder at a block boundary at `bit` of `source`.
    pub(crate) fn at(source: Arc<dyn ReadAt>, bit: u64) -> Self {
        Inflater::over(Bits::at(source, bit, REFILL))
    }

    /// A decoder past the last block, ending at `bit`.
    pub(crate) fn at_end(source: Arc<dyn ReadAt>, bit: u64) -> Self {
        let mut inflater = Inflater::at(source, bit);
        inflater.last_block = true;
        inflater
    }

    /// Whether the next run starts with a block's header (not past the
    /// last block).
    pub(crate) fn between_blocks(&self) -> bool {
        matches!(self.block, Block::Between) && !self.last_block
    }

    /// Back at a block boundary at `bit`, the tables kept for reuse.
    pub(crate) fn restart(&mut self, bit: u64) {
        self.bits.buf.clear();
        self.bits.start = bit / 8;
        self.bits.pos = bit;
        self.block = Block::Between;
        self.last_block = false;
    }

    pub(crate) fn over(bits: Bits) -> Self {
        Inflater {
            bits,
            block: Block::Between,
            last_block: false,
            literals: Huffman::empty(),
            distances: Huffman::empty(),
            code_lengths: Huffman::empty(),
            lengths: Vec::with_capacity(320),
        }
    }

    /// The bit position: a block boundary after [`Stop::Boundary`], the end
    /// of the stream after [`Stop::End`].
    pub(crate) fn position(&self) -> u64 {
        self.bits.position()
    }

    /// Decodes into `sink` up to the end of the current or next block, or
    /// until `sink` holds `limit` symbols (a copy may pass it by up to 258).
    pub(crate) fn run(&mut self, sink: &mut impl Sink, limit: usize) -> Result<Stop, InflateError> {
        if matches!(self.block, Block::Between) {
            if self.last_block {
                return Ok(Stop::End);
            }
            self.read_header()?;
        }
        match self.block {
            Block::Between => unreachable_between(),
            Block::Stored { .. } => self.stored(sink, limit),
            Block::Huffman { fixed } => self.huffman(sink, limit, fixed),
        }
    }

    /// Reads the next block's header (and codes), as [`Self::run`] would.
    pub(crate) fn start_block(&mut self) -> Result<(), InflateError> {
        self.read_header()
    }

    fn read_header(&mut self) -> Result<(), InflateError> {
        let header = self.bits.take(3)?;
        self.last_block = header & 1 == 1;
        match header >> 1 {
            0 => {
                self.bits.align_to_byte()?;
                let length = self.bits.take(16)?;
                let inverse = self.bits.take(16)?;
                if length != !inverse & 0xffff {
                    return Err(InflateError::Corrupt);
                }
                self.block = Block::Stored {
                    remaining: length as usize,
                };
            }
            1 => self.block = Block::Huffman { fixed: true },
            2 => {
                self.dynamic_header()?;
                self.block = Block::Huffman { fixed: false };
            }
            _ => return Err(InflateError::Corrupt),
        }
        Ok(())
    }

    fn dynamic_header(&mut self) -> Result<(), InflateError> {
        let literal_count = self.bits.take(5)? as usize + 257;
        let distance_count = self.bits.take(5)? as usize + 1;
        let code_length_count = self.bits.take(4)? as usize + 4;
        if literal_count > 286 || distance_count > 30 {
            return Err(InflateError::Corrupt);
        }
        let mut code_lengths = [0u8; 19];
        for &symbol in &CODE_LENGTH_ORDER[..code_length_count] {
            code_lengths[symbol] = self.bits.take(3)? as u8;
        }
        let total = literal_count + distance_count;
        if code_lengths == [0; 19] {
            // zlib reads every length as a zero of one bit, then finds no
            // end-of-block code.
            self.bits.consume(total as u32)?;
            return Err(InflateError::Corrupt);
        }
        self.code_lengths.build(&code_lengths, Kind::CodeLengths)?;
        self.lengths.clear();
        while self.lengths.len() < total {
            let symbol = self.code_lengths.decode(&mut self.bits)?;
            let (value, repeat) = match symbol {
                0..=15 => (symbol as u8, 1),
                16 => {
                    // zlib reads the repeat count before it judges it.
                    let repeat = 3 + self.bits.take(2)? as usize;
                    let previous = *self.lengths.last().ok_or(InflateError::Corrupt)?;
                    (previous, repeat)
                }
                17 => (0, 3 + self.bits.take(3)? as usize),
                _ => (0, 11 + self.bits.take(7)? as usize),
            };
            if self.lengths.len() + repeat > total {
                return Err(InflateError::Corrupt);
            }
            self.lengths.extend(std::iter::repeat_n(value, repeat));
        }
        if self.lengths[256] == 0 {
            return Err(InflateError::Corrupt);
        }
        self.literals
            .build(&self.lengths[..literal_count], Kind::Other)?;
        self.distances
            .build(&self.lengths[literal_count..], Kind::Other)?;
        Ok(())
    }

    fn block_ended(&mut self) -> Stop {
        self.block = Block::Between;
        if self.last_block {
            Stop::End
        } else {
            Stop::Boundary
        }
    }

    fn stored(&mut self, sink: &mut impl Sink, limit: usize) -> Result<Stop, InflateError> {
        let Block::Stored { mut remaining } = self.block else {
            return Ok(Stop::Boundary);
        };
        while remaining > 0 {
            if sink.len() >= limit {
                self.block = Block::Stored { remaining };
                return Ok(Stop::Full);
            }
            self.bits.ensure()?;
            let index = (self.bits.pos / 8 - self.bits.start) as usize;
            let available = self.bits.buf.len().saturating_sub(index);
            if available == 0 {
                return Err(InflateError::Incomplete);
            }
            let n = remaining.min(available).min(limit - sink.len());
            sink.bytes(&self.bits.buf[index..index + n]);
            self.bits.consume(8 * n as u32)?;
            remaining -= n;
        }
        Ok(self.block_ended())
    }

    fn huffman(
        &mut self,
        sink: &mut impl Sink,
        limit: usize,
        fixed: bool,
    ) -> Result<Stop, InflateError> {
        let (literals, distances) = match fixed {
            true => {
                let (literals, distances) = fixed_codes();
                (literals, distances)
            }
            false => (&self.literals, &self.distances),
        };
        let bits = &mut self.bits;
        while sink.len() < limit {
            // One look at the next 56 bits holds a whole symbol: at most 15
            // bits of length code, 5 extra, 15 of distance code, 13 extra.
            bits.ensure()?;
            let mut word = bits.peek();
            let (symbol, used) = literals
                .lookup(word)
                .map_err(|e| bits.or_incomplete(e, 1))?;
            if symbol < 256 {
                bits.consume(used)?;
                sink.literal(symbol as u8);
                continue;
            }
            if symbol == 256 {
                bits.consume(used)?;
                self.block = Block::Between;
                return Ok(if self.last_block {
                    Stop::End
                } else {
                    Stop::Boundary
                });
            }
            let index = usize::from(symbol - 257);
            let (Some(&base), Some(&extra)) = (LENGTH_BASE.get(index), LENGTH_EXTRA.get(index))
            else {
                return Err(bits.or_incomplete(InflateError::Corrupt, used));
            };
            word >>= used;
            let mut total = used + u32::from(extra);
            let length = usize::from(base) + (word & ((1 << extra) - 1)) as usize;
            word >>= extra;
            let (index, used) = distances
                .lookup(word)
                .map_err(|e| bits.or_incomplete(e, total + 1))?;
            let index = usize::from(index);
            let (Some(&base), Some(&extra)) = (DISTANCE_BASE.get(index), DISTANCE_EXTRA.get(index))
            else {
                return Err(bits.or_incomplete(InflateError::Corrupt, total + used));
            };
            word >>= used;
            total += used + u32::from(extra);
            let distance = usize::from(base) + (word & ((1 << extra) - 1)) as usize;
            bits.consume(total)?;
            sink.copy(distance, length)?;
        }
        Ok(Stop::Full)
    }
}

#[cold]
fn unreachable_between() -> Result<Stop, InflateError> {
    // `run` reads a header first: a block is open here.
    Err(InflateError::Corrupt)
}
