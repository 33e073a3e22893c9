//! One gzip stream inflated by several threads, where the blob can be read at
//! any offset (a file): the method of pugz and rapidgzip.
//!
//! The compressed bytes are cut into chunks of [`CHUNK_BYTES`]. For each chunk
//! but the first, a worker looks for the first place in it where a block can
//! start ([`search`]), decodes from there to the first block boundary in the
//! next chunk, and writes the bytes it cannot know yet (those copied from
//! before its start) as markers ([`inflate`]). This thread decodes in order:
//! when its position is exactly where a worker's chunk starts, the chunk is
//! taken, its markers filled from the last 32 KiB, and decoding goes on from
//! where the chunk ended; otherwise (a false start, no start found, a chunk
//! too large, a worker that failed) this thread decodes on its own up to the
//! next chunk. So every byte comes from decoding in order from the stream's
//! start, with the same output, the same errors and the same CRC-32 and size
//! checks as one thread, whatever the workers found.
//!
//! Only the first member of a gzip stream is done this way; what follows it
//! (more members, or garbage) goes to flate2 as a stream of its own, which is
//! what one thread does there too. A header with fields this reader does not
//! take (a header CRC) sends the whole blob to flate2.

mod inflate;
mod search;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use inflate::{ByteSink, InflateError, Inflater, MarkerSink, Stop, WINDOW, resolve};

use crate::budget::{HandedOver, MemoryBudget};

/// Compressed bytes per chunk: several MiB of output, so that a worker's
/// search and the stretch it decodes with markers (up to a few hundred KiB
/// of output in a layer of binaries: copies of copies of unknown bytes) are
/// a small share of its work.
const CHUNK_BYTES: u64 = 2 << 20;
/// The smallest chunk: a small blob is cut into a few chunks per worker, so
/// that every blob takes this path the same way, a fuzzer's too.
const MIN_CHUNK_BYTES: u64 = 256;
/// Output bytes a worker may hold for one chunk (a marked symbol takes two):
/// past it, the chunk is left to the ordered decoder (a bomb, or data that
/// compresses very well). Binaries and text inflate to 3 to 5 times their
/// compressed size: 6 to 10 MiB a chunk. A chunk paid from a memory budget
/// reserves this much.
const CHUNK_OUTPUT_CAP: usize = 16 << 20;
/// Chunks the workers may hold at once outside a memory budget: with the
/// budget spent, one worker still decodes ahead of the ordered decoder.
const UNBUDGETED_CHUNKS: usize = 1;
/// Candidate starts a worker decodes from before it gives its chunk up.
const TRIES: usize = 4;
/// Bytes the ordered decoder hands on at a time.
const PIECE: usize = 1 << 20;
/// The largest gzip header this reader parses (flate2 takes the rest).
const MAX_HEADER: usize = 64 * 1024;

/// A source that can be read at any offset by several threads at once.
pub trait ReadAt: Send + Sync {
    /// Reads at `offset`, as [`FileExt::read_at`].
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The source's size in bytes.
    fn size(&self) -> u64;
}

/// A byte range of a file (a blob in an OCI layout, or a member of an image
/// archive).
#[derive(Debug)]
pub struct FileRange {
    file: File,
    offset: u64,
    len: u64,
}

impl FileRange {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: File, offset: u64, len: u64) -> Self {
        FileRange { file, offset, len }
    }
}

impl ReadAt for FileRange {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let left = self.len.saturating_sub(offset);
        let n = buf.len().min(left.min(usize::MAX as u64) as usize);
        if n == 0 {
            return Ok(0);
        }
        self.file.read_at(&mut buf[..n], self.offset + offset)
    }

    fn size(&self) -> u64 {
        self.len
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let have = self
            .get(offset.min(self.len() as u64) as usize..)
            .unwrap_or(&[]);
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A chunk a worker decoded.
struct Decoded {
    start: u64,
    /// A block boundary, or the end of the last block.
    end: u64,
    last: bool,
    /// Symbols up to the point the window was known (markers in them).
    marked: Vec<u16>,
    /// Bytes after that: the first 32 KiB repeat the end of `marked`.
    bytes: Vec<u8>,
    /// The room it was decoded in, given back when it is taken or dropped.
    room: Room,
}

/// What a chunk's memory is counted against.
#[derive(Debug)]
enum Room {
    Nothing,
    /// One of the [`UNBUDGETED_CHUNKS`].
    Unbudgeted,
    /// Paid from the budget, given back when dropped (held, never read); a
    /// chunk may end on another thread than the worker that reserved it.
    Budgeted(#[allow(dead_code)] HandedOver),
}

impl Decoded {
    fn output_len(&self) -> usize {
        self.marked.len() + self.bytes.len().saturating_sub(WINDOW)
    }
}

/// What the workers and the ordered decoder share.
struct Shared {
    source: Arc<dyn ReadAt>,
    /// Bit where the DEFLATE data starts.
    body: u64,
    chunk_bytes: u64,
    chunks: usize,
    state: Mutex<Board>,
    changed: Condvar,
    stop: AtomicBool,
    /// Whence chunks past the [`UNBUDGETED_CHUNKS`] are paid, leaving the
    /// bytes given free; without one, chunks are bounded by `ahead` alone.
    budget: Option<(MemoryBudget, u64)>,
}

#[derive(Default)]
struct Board {
    /// The next chunk a worker takes.
    next_claim: usize,
    /// The chunk the ordered decoder waits for next; workers stay within
    /// `ahead` of it.
    wanted: usize,
    ahead: usize,
    /// `None`: no usable start in that chunk.
    done: BTreeMap<usize, Option<Decoded>>,
    /// Where the workers at work decode their chunk from: the ordered
    /// decoder does not wait for a chunk decoded from a start it passed.
    starts: BTreeMap<usize, u64>,
    /// Workers still running: with none, nothing is waited for.
    workers: usize,
    /// Chunks held (claimed, decoded or waiting) in [`Room::Unbudgeted`].
    unbudgeted: usize,
}

impl Shared {
    /// Where chunk `index` is searched from.
    fn nominal(&self, index: usize) -> u64 {
        let end = self.source.size().saturating_mul(8);
        (self.body + index as u64 * self.chunk_bytes * 8).min(end)
    }

    fn worker(&self) {
        loop {
            let (index, room) = {
                let mut board = self.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if self.stop.load(Ordering::Relaxed) || board.next_claim >= self.chunks {
                        board.workers -= 1;
                        self.changed.notify_all();
                        return;
                    }
                    if board.next_claim < board.wanted + board.ahead
                        && let Some(room) = self.room(&mut board)
                    {
                        board.next_claim = board.next_claim.max(board.wanted);
                        board.next_claim += 1;
                        break (board.next_claim - 1, room);
                    }
                    // Woken when the ordered decoder moves on, which is also
                    // when an unbudgeted chunk's room comes back.
                    board = self.changed.wait(board).unwrap_or_else(|e| e.into_inner());
                }
            };
            let decoded = catch_unwind(AssertUnwindSafe(|| self.decode_chunk(index)))
                .ok()
                .flatten();
            let mut board = self.state.lock().unwrap_or_else(|e| e.into_inner());
            board.starts.remove(&index);
            match decoded {
                Some(decoded) if index >= board.wanted => {
                    board.done.insert(index, Some(Decoded { room, ..decoded }));
                }
                // A chunk the ordered decoder moved past is of no use.
                // A chunk the ordered decoder moved past is of no use; that
                // one had no start is (the first arm took the others).
                _ => {
                    self.give_back(&mut board, room);
                    if index >= board.wanted {
                        board.done.insert(index, None);
                    }
                }
            }
            self.changed.notify_all();
        }
    }

    /// Room for one more chunk: an unbudgeted one, else one paid from the
    /// budget (never waiting for it), else none until one comes back.
    fn room(&self, board: &mut Board) -> Option<Room> {
        let Some((budget, keep_free)) = &self.budget else {
            return Some(Room::Nothing);
        };
        if board.unbudgeted < UNBUDGETED_CHUNKS {
            board.unbudgeted += 1;
            return Some(Room::Unbudgeted);
        }
        budget
            .try_reserve_leaving(CHUNK_OUTPUT_CAP as u64, *keep_free)
            .map(|paid| Room::Budgeted(paid.hand_over()))
    }

    /// Gives a chunk's room back (a budget's bytes go back when dropped).
    fn give_back(&self, board: &mut Board, room: Room) {
        match room {
            Room::Nothing => return,
            Room::Unbudgeted => board.unbudgeted -= 1,
            Room::Budgeted(paid) => drop(paid),
        }
        // A worker waiting for room may take it now.
        self.changed.notify_all();
    }

    /// [`Self::give_back`], taking the lock.
    fn give_back_unlocked(&self, room: Room) {
        let mut board = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.give_back(&mut board, room);
    }

    /// Decodes chunk `index` (from 1) from the first start found in it to
    /// the first block boundary in the next chunk.
    fn decode_chunk(&self, index: usize) -> Option<Decoded> {
        let (from, to) = (self.nominal(index), self.nominal(index + 1));
        let starts = search::block_starts(self.source.as_ref(), from, to, &self.stop).ok()?;
        for start in starts.take(TRIES) {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            {
                let mut board = self.state.lock().unwrap_or_else(|e| e.into_inner());
                board.starts.insert(index, start);
                self.changed.notify_all();
            }
            match self.decode_from(start, to) {
                Ok(decoded) => return Some(decoded),
                // Too large to hold: another start would be too.
                Err(InflateError::Io(_)) => return None,
                // A false start, most likely: try the next one.
                Err(_) => continue,
            }
        }
        None
    }

    fn decode_from(&self, start: u64, to: u64) -> Result<Decoded, InflateError> {
        let mut inflater = Inflater::at(self.source.clone(), start);
        // Markers last a few hundred KiB into a chunk of binaries.
        let mut marked = MarkerSink {
            out: Vec::with_capacity(WINDOW * 16),
            last_marker: None,
        };
        let mut bytes: Option<ByteSink> = None;
        loop {
            let held = 2 * marked.out.len() + bytes.as_ref().map_or(0, |b| b.out.len());
            let room = CHUNK_OUTPUT_CAP.saturating_sub(held);
            if room < 2 || self.stop.load(Ordering::Relaxed) {
                return Err(InflateError::Io(io::ErrorKind::OutOfMemory.into()));
            }
            let stop = match &mut bytes {
                Some(sink) => {
                    let limit = sink.out.len() + room;
                    inflater.run(sink, limit)?
                }
                None => {
                    let limit = marked.out.len() + room / 2;
                    inflater.run(&mut marked, limit)?
                }
            };
            match stop {
                Stop::Full => continue,
                Stop::End => {}
                Stop::Boundary if inflater.position() < to => {
                    if bytes.is_none() && marked.window_known() {
                        // From here on only known bytes can be copied.
                        let tail = &marked.out[marked.out.len() - WINDOW..];
                        // Room for what 2 MiB of binaries or text inflate to,
                        // within the cap (what a budget paid counts lengths:
                        // pages reserved but never written are not resident).
                        let cap = CHUNK_OUTPUT_CAP.saturating_sub(2 * marked.out.len());
                        let mut out = Vec::with_capacity((4 * self.chunk_bytes as usize).min(cap));
                        out.extend(tail.iter().map(|&s| s as u8));
                        bytes = Some(ByteSink { out });
                    }
                    continue;
                }
                Stop::Boundary => {}
            }
            return Ok(Decoded {
                start,
                end: inflater.position(),
                last: stop == Stop::End,
                marked: marked.out,
                bytes: bytes.map(|b| b.out).unwrap_or_default(),
                room: Room::Nothing,
            });
        }
    }
}

/// The stream after its first member: flate2's, from the first byte past the
/// first member's trailer.
struct Rest {
    source: Arc<dyn ReadAt>,
    at: u64,
}

impl Read for Rest {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

enum Phase {
    Body,
    Rest(Box<dyn Read + Send>),
    Done,
}

/// The inflated stream, read in order; see the module's comment.
pub(crate) struct ParallelGzip {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    inflater: Inflater,
    /// The last 32 KiB of output, then output not handed on yet.
    sink: ByteSink,
    /// Where in `sink` the output not handed on yet starts.
    window_len: usize,
    crc: crc32fast::Hasher,
    total: u64,
    /// A worker's chunk waiting for the ordered decoder to reach its start.
    waiting: Option<(usize, Decoded)>,
    phase: Phase,
    piece: Vec<u8>,
    piece_pos: usize,
    /// Comes after the pieces before it.
    error: Option<io::Error>,
    /// Chunks taken from workers, for the caller's count.
    taken: Arc<AtomicU64>,
}

impl ParallelGzip {
    /// A reader of `source`, a gzip stream, on `threads` workers; `None` if
    /// its header is not one this reader parses (flate2 reads those). With
    /// a `budget`, the workers' chunks past the first are paid from it,
    /// leaving the bytes given free (see [`crate::read_ahead_within`]).
    pub(crate) fn new(
        source: Arc<dyn ReadAt>,
        threads: usize,
        taken: Arc<AtomicU64>,
        budget: Option<(MemoryBudget, u64)>,
    ) -> io::Result<Option<Self>> {
        let per_worker = source.size() / (4 * threads.max(1) as u64);
        let chunk_bytes = per_worker.clamp(MIN_CHUNK_BYTES, CHUNK_BYTES);
        Self::with_chunks(source, threads, taken, chunk_bytes, budget)
    }

    fn with_chunks(
        source: Arc<dyn ReadAt>,
        threads: usize,
        taken: Arc<AtomicU64>,
        chunk_bytes: u64,
        budget: Option<(MemoryBudget, u64)>,
    ) -> io::Result<Option<Self>> {
        let mut head = vec![0u8; MAX_HEADER.min(source.size() as usize)];
        let got = read_at_full(source.as_ref(), &mut head, 0)?;
        let Some(header_len) = gzip_header_len(&head[..got]) else {
            return Ok(None);
        };
        let body = header_len as u64 * 8;
        let chunks = (source.size().saturating_sub(header_len as u64)).div_ceil(chunk_bytes);
        let shared = Arc::new(Shared {
            source: source.clone(),
            body,
            chunk_bytes,
            chunks: chunks.max(1) as usize,
            state: Mutex::new(Board {
                // Chunk 0 is decoded in order: its start is known.
                next_claim: 1,
                wanted: 1,
                // One more than the workers: a worker always has a chunk
                // to take while this thread joins another.
                ahead: threads + 1,
                ..Board::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            budget,
        });
        let mut handles = Vec::new();
        // Chunk 0 is this thread's.
        for _ in 0..threads.min(shared.chunks - 1) {
            shared
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .workers += 1;
            let worker = shared.clone();
            match std::thread::Builder::new()
                .name("minehound-inflate".into())
                .spawn(move || worker.worker())
            {
                Ok(handle) => handles.push(handle),
                Err(_) => {
                    shared
                        .state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .workers -= 1;
                    break;
                }
            }
        }
        Ok(Some(ParallelGzip {
            inflater: Inflater::at(source, body),
            shared,
            threads: handles,
            sink: ByteSink { out: Vec::new() },
            window_len: 0,
            crc: crc32fast::Hasher::new(),
            total: 0,
            waiting: None,
            phase: Phase::Body,
            piece: Vec::new(),
            piece_pos: 0,
            error: None,
            taken,
        }))
    }

    /// The worker's chunk that starts at the ordered decoder's position, if
    /// one does: waits for the chunk the position is in, unless its worker
    /// decodes it from a start already passed.
    fn chunk_here(&mut self) -> Option<Decoded> {
        let position = self.inflater.position();
        loop {
            if let Some((index, decoded)) = self.waiting.take() {
                if decoded.start == position {
                    self.advance(index + 1);
                    return Some(decoded);
                }
                if decoded.start > position {
                    self.waiting = Some((index, decoded));
                    return None;
                }
                // Passed by: a false start.
                self.shared.give_back_unlocked(decoded.room);
                self.advance(index + 1);
                continue;
            }
            let mut board = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let index = board.wanted;
            if index >= self.shared.chunks || position < self.shared.nominal(index) {
                return None;
            }
            let decoded = loop {
                if let Some(decoded) = board.done.remove(&index) {
                    break decoded;
                }
                match board.starts.get(&index) {
                    _ if board.workers == 0 => break None,
                    Some(&start) if start >= position => {}
                    // Decoded from a start already passed: of no use.
                    Some(_) => break None,
                    // Searched for a start (a bounded search), or soon.
                    None => {}
                }
                board = self
                    .shared
                    .changed
                    .wait(board)
                    .unwrap_or_else(|e| e.into_inner());
            };
            drop(board);
            match decoded {
                Some(decoded) => self.waiting = Some((index, decoded)),
                // No start in that chunk, or one passed: decode on, into
                // the next chunk if need be.
                None => {
                    self.advance(index + 1);
                    if position < self.shared.nominal(index + 1) {
                        return None;
                    }
                }
            }
        }
    }

    /// Moves the workers' horizon on to chunk `index`.
    fn advance(&self, index: usize) {
        let mut board = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        board.wanted = board.wanted.max(index);
        let wanted = board.wanted;
        let kept = board.done.split_off(&wanted);
        for passed in std::mem::replace(&mut board.done, kept)
            .into_values()
            .flatten()
        {
            self.shared.give_back(&mut board, passed.room);
        }
        self.shared.changed.notify_all();
    }

    /// Hands on the output after the window (the buffer itself, not a
    /// copy) and keeps the last 32 KiB.
    fn hand_on(&mut self) {
        let fresh = &self.sink.out[self.window_len..];
        self.crc.update(fresh);
        self.total += fresh.len() as u64;
        let keep = self.sink.out.len().min(WINDOW);
        let mut window = std::mem::take(&mut self.piece);
        window.clear();
        window.extend_from_slice(&self.sink.out[self.sink.out.len() - keep..]);
        self.piece = std::mem::replace(&mut self.sink.out, window);
        self.piece_pos = self.window_len;
        self.window_len = keep;
    }

    /// Takes a worker's chunk: its markers filled from the last 32 KiB.
    fn take(&mut self, decoded: Decoded) -> bool {
        let taken = self.join(&decoded);
        self.shared.give_back_unlocked(decoded.room);
        taken
    }

    /// [`Self::take`] but for the chunk's room.
    fn join(&mut self, decoded: &Decoded) -> bool {
        let len = self.sink.out.len();
        let window = self.sink.out[len.saturating_sub(WINDOW)..].to_vec();
        self.sink.out.reserve(decoded.output_len());
        if resolve(&decoded.marked, &window, &mut self.sink.out).is_none() {
            self.sink.out.truncate(len);
            return false;
        }
        self.sink
            .out
            .extend_from_slice(decoded.bytes.get(WINDOW..).unwrap_or(&[]));
        self.hand_on();
        self.inflater = match decoded.last {
            false => Inflater::at(self.shared.source.clone(), decoded.end),
            // Past the last block: its next run says so.
            true => Inflater::at_end(self.shared.source.clone(), decoded.end),
        };
        self.taken.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The next piece of output. An error comes after every byte decoded
    /// before it, as from flate2 (so a layer fails at the same entry).
    fn fill(&mut self) {
        loop {
            match &mut self.phase {
                Phase::Done => return,
                Phase::Rest(rest) => {
                    self.piece.resize(PIECE, 0);
                    self.piece_pos = 0;
                    match rest.read(&mut self.piece) {
                        Ok(n) => {
                            self.piece.truncate(n);
                            if n == 0 {
                                self.phase = Phase::Done;
                            }
                        }
                        Err(e) => {
                            self.piece.clear();
                            self.fail(e);
                        }
                    }
                    return;
                }
                Phase::Body => {}
            }
            if self.inflater.between_blocks()
                && let Some(decoded) = self.chunk_here()
                && self.take(decoded)
            {
                return;
            }
            let limit = self.sink.out.len() + PIECE;
            match self.inflater.run(&mut self.sink, limit) {
                Ok(Stop::Boundary) if self.sink.out.len() - self.window_len < PIECE => continue,
                Ok(Stop::Boundary | Stop::Full) => self.hand_on(),
                Ok(Stop::End) => {
                    self.hand_on();
                    self.finish_workers();
                    match self.trailer() {
                        Ok(phase) => self.phase = phase,
                        Err(e) => self.fail(e),
                    }
                }
                Err(e) => {
                    self.hand_on();
                    self.fail(e.into_io());
                }
            }
            return;
        }
    }

    fn fail(&mut self, error: io::Error) {
        self.finish_workers();
        self.error = Some(error);
        self.phase = Phase::Done;
    }

    /// Checks the first member's CRC-32 and size, as flate2 does, and opens
    /// what follows.
    fn trailer(&mut self) -> io::Result<Phase> {
        let at = self.inflater.position().div_ceil(8);
        let source = self.shared.source.clone();
        let mut trailer = [0u8; 8];
        if read_at_full(source.as_ref(), &mut trailer, at)? < trailer.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != self.crc.clone().finalize() || size != self.total as u32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "corrupt gzip stream does not have a matching checksum",
            ));
        }
        if at + 8 >= source.size() {
            return Ok(Phase::Done);
        }
        let rest = Rest { source, at: at + 8 };
        Ok(Phase::Rest(Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(256 * 1024, rest),
        ))))
    }

    fn finish_workers(&mut self) {
        {
            // Under the lock: a worker about to wait sees it, or is woken.
            let _board = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        self.shared.changed.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        self.finish_workers();
    }
}

impl Read for ParallelGzip {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.piece_pos == self.piece.len() {
            if let Some(error) = self.error.take() {
                return Err(error);
            }
            if matches!(self.phase, Phase::Done) {
                return Ok(0);
            }
            self.fill();
        }
        let n = buf.len().min(self.piece.len() - self.piece_pos);
        buf[..n].copy_from_slice(&self.piece[self.piece_pos..self.piece_pos + n]);
        self.piece_pos += n;
        Ok(n)
    }
}

fn read_at_full(source: &dyn ReadAt, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The length of a gzip header of the kinds written in practice; `None` for
/// anything else (a header CRC, reserved flags, a field past `head`).
fn gzip_header_len(head: &[u8]) -> Option<usize> {
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let fixed = head.get(..10)?;
    if fixed[..3] != [0x1f, 0x8b, 8] || fixed[3] & !(FEXTRA | FNAME | FCOMMENT) != 0 {
        return None;
    }
    let flags = fixed[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = usize::from(u16::from_le_bytes([*head.get(at)?, *head.get(at + 1)?]));
        at += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            // flate2 refuses fields of 64 KiB and more.
            let len = head.get(at..)?.iter().position(|&b| b == 0)?;
            if len >= 0xffff {
                return None;
            }
            at += len + 1;
        }
    }
    (at <= head.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::{decompress, limited};
    use std::io::Write;

    /// Reads as the read-ahead pump does: 1 MiB at a time, a chunk cut
    /// short by an error is lost, the error comes after.
    fn pumped(mut reader: impl Read) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            match crate::compression::read_full(&mut reader, &mut chunk) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return (out, Some(format!("{:?}: {e}", e.kind()))),
            }
        }
    }

    fn one_thread(blob: &[u8], limit: u64) -> (Vec<u8>, Option<String>) {
        match decompress(blob, limit) {
            Ok((_, reader)) => pumped(reader),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    }

    /// Both ways, with chunks of `chunk` bytes; the chunks the workers gave.
    fn same_both_ways(blob: &[u8], threads: usize, chunk: u64, limit: u64) -> u64 {
        let taken = Arc::new(AtomicU64::new(0));
        let source: Arc<dyn ReadAt> = Arc::new(blob.to_vec());
        let parallel = match ParallelGzip::with_chunks(source, threads, taken.clone(), chunk, None)
        {
            Ok(Some(reader)) => pumped(limited(reader, limit)),
            // Headers it leaves to flate2, and blobs too short for one.
            Ok(None) | Err(_) => return 0,
        };
        let expected = one_thread(blob, limit);
        assert_eq!(parallel.1, expected.1, "errors differ");
        assert!(
            parallel.0 == expected.0,
            "output differs: {} vs {} bytes",
            parallel.0.len(),
            expected.0.len()
        );
        taken.load(Ordering::Relaxed)
    }

    /// Several MiB of what layers hold: text, code-like bytes, zeros, noise.
    fn layer_like(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let words = [
            &b"stratum+tcp://"[..],
            b"ELF",
            b"/usr/lib/x86_64-linux-gnu/",
            b"def __init__(self):\n",
            b"\0\0\0\0\0\0\0\0",
            b"mov rax, rbx",
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match next() % 5 {
                0 => out.extend(std::iter::repeat_n(
                    (next() % 256) as u8,
                    (next() % 300) as usize,
                )),
                1 => out.extend((0..(next() % 2000)).map(|_| (next() % 256) as u8)),
                _ => out.extend_from_slice(words[(next() % words.len() as u64) as usize]),
            }
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// The system's `gzip` (a real encoder we did not write), if present.
    fn system_gzip(data: &[u8], level: &str) -> Option<Vec<u8>> {
        let mut child = std::process::Command::new("gzip")
            .args(["-c", level])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let output = child.wait_with_output().ok()?;
        writer.join().ok()?.ok()?;
        output.status.success().then_some(output.stdout)
    }

    #[test]
    fn workers_chunks_give_the_bytes_one_thread_gives() {
        let data = layer_like(6 << 20, 7);
        // zlib-rs's level 1 writes fixed-code blocks only: no start is
        // found in them, and one thread decodes all (the same bytes).
        same_both_ways(&gzip(&data, 1), 3, 64 << 10, u64::MAX);
        let mut blobs = vec![gzip(&data, 6), gzip(&data, 9)];
        blobs.extend(system_gzip(&data, "-6"));
        blobs.extend(system_gzip(&data, "-1"));
        for blob in &blobs {
            for (threads, chunk) in [(1, 64 << 10), (3, 64 << 10), (4, 256 << 10), (2, 1 << 20)] {
                let taken = same_both_ways(blob, threads, chunk, u64::MAX);
                let chunks = (blob.len() as u64).div_ceil(chunk);
                // A chunk is lost only to a false start or a block longer than it.
                assert!(
                    taken * 10 >= (chunks - 1) * 9,
                    "{threads} workers, chunks of {chunk}: {taken} of {chunks} taken"
                );
            }
        }
    }

    #[test]
    fn stored_and_fixed_blocks_and_tiny_streams() {
        // Noise is stored; short inputs use the fixed code.
        let noise = layer_like(3 << 20, 3)
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>();
        same_both_ways(&gzip(&noise, 6), 3, 32 << 10, u64::MAX);
        for data in [&b""[..], b"a", b"hello layer"] {
            same_both_ways(&gzip(data, 6), 2, 16, u64::MAX);
        }
    }

    #[test]
    fn members_after_the_first_and_garbage_go_as_with_flate2() {
        let a = gzip(&layer_like(1 << 20, 1), 6);
        let b = gzip(&layer_like(1 << 20, 2), 1);
        for tail in [b.clone(), b"garbage".to_vec(), vec![0; 20], Vec::new()] {
            let blob = [a.clone(), tail].concat();
            same_both_ways(&blob, 3, 64 << 10, u64::MAX);
        }
    }

    #[test]
    fn damage_truncation_and_limits_end_as_with_one_thread() {
        let data = layer_like(3 << 20, 11);
        let blob = gzip(&data, 6);
        // Cut anywhere: inside blocks, inside the trailer.
        for cut in [
            11,
            100,
            blob.len() / 3,
            blob.len() / 2 + 7,
            blob.len() - 9,
            blob.len() - 3,
            blob.len() - 1,
        ] {
            same_both_ways(&blob[..cut], 3, 64 << 10, u64::MAX);
        }
        // Bits flipped across the stream, trailer included.
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..60 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut damaged = blob.clone();
            let at = 10 + (state >> 33) as usize % (damaged.len() - 10);
            damaged[at] ^= 1 << ((state >> 20) % 8);
            same_both_ways(&damaged, 3, 64 << 10, u64::MAX);
        }
        // A bomb stops at the limit; an exact fit does not.
        let bomb = gzip(&vec![0u8; 40 << 20], 9);
        same_both_ways(&bomb, 3, 4 << 10, 1 << 20);
        same_both_ways(&blob, 3, 64 << 10, data.len() as u64);
        same_both_ways(&blob, 3, 64 << 10, data.len() as u64 - 1);
    }

    #[test]
    fn chunks_past_the_first_are_paid_from_the_budget_and_given_back() {
        let data = layer_like(6 << 20, 13);
        let blob = gzip(&data, 6);
        let expected = one_thread(&blob, u64::MAX);
        let cap = CHUNK_OUTPUT_CAP as u64;
        // Room for two chunks besides the bytes kept free.
        let budget = MemoryBudget::new(3 * cap);
        let taken = Arc::new(AtomicU64::new(0));
        let source: Arc<dyn ReadAt> = Arc::new(blob.clone());
        let reader = ParallelGzip::with_chunks(
            source,
            4,
            taken.clone(),
            64 << 10,
            Some((budget.clone(), cap)),
        )
        .unwrap()
        .unwrap();
        // Nothing read yet: the workers claim what they may and wait.
        let start = std::time::Instant::now();
        while budget.in_use() < 2 * cap && start.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            budget.in_use(),
            2 * cap,
            "two chunks paid, the third unbudgeted, the bytes kept free left alone"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(budget.in_use() <= 2 * cap, "never more");
        assert_eq!(pumped(reader), expected);
        assert_eq!(budget.in_use(), 0, "every chunk's room given back");
        assert!(taken.load(Ordering::Relaxed) > 0);

        // A spent budget: one worker decodes ahead, and the bytes are the same.
        let budget = MemoryBudget::new(1);
        let taken = Arc::new(AtomicU64::new(0));
        let source: Arc<dyn ReadAt> = Arc::new(blob);
        let reader =
            ParallelGzip::with_chunks(source, 4, taken.clone(), 64 << 10, Some((budget, 0)))
                .unwrap()
                .unwrap();
        assert_eq!(pumped(reader), expected);
        assert!(taken.load(Ordering::Relaxed) > 0);
    }

    /// Inputs the fuzzer found.
    #[test]
    fn found_by_fuzzing() {
        let cases: [&[u8]; 1] = [
            // A dynamic header whose code lengths run past the end.
            &[
                0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x55, 0x00, 0x00, 0xff, 0xed, 0xf4, 0x01, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x72, 0x75, 0x99, 0x7a, 0x19, 0x41,
            ],
        ];
        for case in cases {
            for chunk in [1, 4, 256] {
                same_both_ways(case, 3, chunk, u64::MAX);
            }
        }
    }

    #[test]
    fn header_fields_are_skipped_and_odd_headers_left_to_flate2() {
        let data = layer_like(2 << 20, 5);
        let mut encoder = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("a comment")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::default());
        encoder.write_all(&data).unwrap();
        let blob = encoder.finish().unwrap();
        assert!(same_both_ways(&blob, 2, 64 << 10, u64::MAX) > 0);
        assert_eq!(
            gzip_header_len(&blob[..10]),
            None,
            "a field past the bytes read"
        );
        let mut header_crc = blob.clone();
        header_crc[3] |= 2;
        assert_eq!(gzip_header_len(&header_crc), None);
    }
}
