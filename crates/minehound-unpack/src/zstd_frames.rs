//! A zstd stream decoded frame by frame on several threads, in order.
//!
//! Each zstd frame stands alone: no frame refers to another's bytes. Layers
//! written as many frames (`zstd:chunked` from podman, buildah and skopeo,
//! `pzstd`) can so be decoded side by side, where one gzip stream cannot.
//! The frames are found without decoding anything: a frame header says how
//! long it is, and each block header how long the block is.
//!
//! Three kinds of threads: one splitter reads the blob in order (the caller's
//! reader, so the blob digest is still taken over every byte) and cuts it
//! into jobs of whole frames (small frames together, so that a frame costs
//! what it costs on one thread); decoders take the jobs in order and run
//! libzstd on each; the calling thread hands their output on in order.
//!
//! Memory: every channel is bounded, so a few MiB wait per job in flight
//! whatever the frames' sizes (a frame larger than that streams through its
//! decoder while it is read). libzstd's own window buffer is what a frame
//! asks for, up to 8 MiB for the frames of every usual compression level;
//! frames asking more (up to libzstd's limit of 128 MiB, as on one thread)
//! are decoded one at a time.
//!
//! The frame structure is only used to cut: libzstd still checks every byte,
//! and a frame that libzstd ends elsewhere than the cut is an error, as is a
//! stream that ends inside a frame or holds anything but frames.

use std::io::{self, BufRead, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::compression::{Compression, LimitExceeded, Pumped, decoder, read_full};
use crate::read_ahead::ReadAhead;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames: `0x184D2A50` to `0x184D2A5F`, then a 4-byte length.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Compressed bytes a job gathers before it ends at a frame's end.
const JOB_BYTES: usize = 256 << 10;
/// Compressed bytes handed to a decoder at a time.
const INPUT_CHUNK: usize = 256 << 10;
/// Compressed chunks waiting for one job's decoder.
const INPUT_DEPTH: usize = 4;
/// Decompressed bytes per chunk: the read-ahead's own chunk size.
const OUTPUT_CHUNK: usize = 1 << 20;
/// Decompressed chunks one job's decoder may have ready.
const OUTPUT_DEPTH: usize = 2;
/// The largest window decoded beside others: what zstd's levels 1 to 19
/// and the usual Go encoders use on large inputs.
const SHARED_WINDOW: u64 = 8 << 20;

/// What a decoder tells about its job, in order.
enum Decoded {
    Bytes(Vec<u8>),
    Failed(io::Error),
    /// The job's frames are whole: without it a decoder that stopped
    /// would look like a job's end and its bytes would be lost unsaid.
    End,
}

/// What the splitter tells the caller's thread, in stream order.
enum Piece {
    /// The next job's output, as its decoder produces it.
    Job(Receiver<Decoded>),
    Failed(io::Error),
    /// The stream ended between two frames.
    End,
}

/// Whole frames on their way to a decoder: their bytes as the splitter
/// reads them (an error of the blob's reader ends them), and where their
/// output goes.
struct Job {
    input: Receiver<io::Result<Vec<u8>>>,
    output: SyncSender<Decoded>,
    /// A frame asks for a window over [`SHARED_WINDOW`]: the job waits
    /// for its turn.
    large_window: bool,
}

/// Decodes the zstd stream `blob` (its magic not yet read) on `decoders`
/// threads into `out`, failing past `limit` decompressed bytes with
/// [`LimitExceeded`] as [`crate::decompress`] does. See [`Pumped`].
pub(crate) fn pump_frames<R: Read + Send>(
    blob: R,
    limit: u64,
    decoders: usize,
    out: &ReadAhead,
) -> Pumped {
    // Jobs in flight: one per decoder, and one being cut.
    let (pieces, order) = sync_channel::<Piece>(decoders + 1);
    let (jobs, waiting) = sync_channel::<Job>(decoders);
    let waiting = Arc::new(Mutex::new(waiting));
    let large_windows = Mutex::new(());
    // Decoded chunks the read-ahead's reader is done with, filled again.
    let (recycle, spares) = sync_channel::<Vec<u8>>(2 * OUTPUT_DEPTH);
    let spares = Mutex::new(spares);
    std::thread::scope(|scope| {
        let decoding: Vec<_> = (0..decoders.max(1))
            .filter_map(|_| {
                let waiting = Arc::clone(&waiting);
                let (spares, large_windows) = (&spares, &large_windows);
                std::thread::Builder::new()
                    .name("minehound-zstd".into())
                    .spawn_scoped(scope, move || decode(&waiting, spares, large_windows))
                    .ok()
            })
            .collect();
        // Only the decoders hold the queue now: should the last one end,
        // the jobs still queued go with it and nobody waits for them.
        drop(waiting);
        if decoding.is_empty() {
            // No thread to be had: on this thread, as without decoders.
            let mut stream = decoder(Compression::Zstd, blob, limit);
            return Pumped {
                complete: out.pump(&mut stream),
                ..Pumped::default()
            };
        }
        let splitter = std::thread::Builder::new()
            .name("minehound-zstd".into())
            .spawn_scoped(scope, move || split(blob, &pieces, &jobs));
        let (complete, frames) = match splitter {
            Ok(splitter) => {
                // Its end drops the order: the splitter and the decoders
                // see the hang-up and stop.
                let complete = forward(order, limit, out, &recycle);
                (complete, splitter.join().unwrap_or(0))
            }
            // The job queue went with the closure: the decoders end.
            Err(e) => {
                out.fail(e);
                (false, 0)
            }
        };
        drop(recycle);
        // Joined, not only waited for: each thread is gone, its
        // thread-locals too, when the layer's scan goes on.
        for decoder in decoding {
            let _ = decoder.join();
        }
        Pumped {
            complete,
            frames,
            ..Pumped::default()
        }
    })
}

/// Hands the jobs' output on in order; see [`pump_frames`].
fn forward(
    order: Receiver<Piece>,
    limit: u64,
    out: &ReadAhead,
    recycle: &SyncSender<Vec<u8>>,
) -> bool {
    let mut produced = 0u64;
    loop {
        let job = match order.recv() {
            Ok(Piece::Job(job)) => job,
            Ok(Piece::End) => return true,
            Ok(Piece::Failed(e)) => {
                out.fail(e);
                return false;
            }
            Err(_) => {
                out.fail(io::Error::other(
                    "the zstd frame splitter stopped before the stream's end",
                ));
                return false;
            }
        };
        loop {
            match job.recv() {
                Ok(Decoded::Bytes(mut chunk)) => {
                    let room = limit - produced;
                    if chunk.len() as u64 > room {
                        chunk.truncate(room as usize);
                        if !chunk.is_empty() && !out.push(chunk) {
                            return false;
                        }
                        out.fail(io::Error::other(LimitExceeded(limit)));
                        return false;
                    }
                    produced += chunk.len() as u64;
                    if !out.push(chunk) {
                        return false;
                    }
                    while let Some(spare) = out.spare() {
                        let _ = recycle.try_send(spare);
                    }
                }
                Ok(Decoded::End) => break,
                Ok(Decoded::Failed(e)) => {
                    out.fail(e);
                    return false;
                }
                Err(_) => {
                    out.fail(io::Error::other(
                        "a zstd frame decoder stopped before its frames' end",
                    ));
                    return false;
                }
            }
        }
    }
}

/// The job the splitter is filling.
struct OpenJob {
    input: SyncSender<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    /// Compressed bytes in the job so far.
    bytes: usize,
    large_window: bool,
}

impl OpenJob {
    /// Adds the frame's next bytes; `false` when its decoder hung up.
    fn extend(&mut self, bytes: &[u8]) -> bool {
        self.chunk.extend_from_slice(bytes);
        self.bytes += bytes.len();
        self.chunk.len() < INPUT_CHUNK || self.flush()
    }

    /// Sends what waits; `false` when the decoder hung up.
    fn flush(&mut self) -> bool {
        self.chunk.is_empty() || self.input.send(Ok(std::mem::take(&mut self.chunk))).is_ok()
    }
}

/// The splitter: cuts `blob` into jobs of whole frames, each sent to the
/// decoders (its output's place to the caller first), until the stream
/// ends. Returns the frames cut.
fn split(mut blob: impl Read, pieces: &SyncSender<Piece>, jobs: &SyncSender<Job>) -> u64 {
    let mut frames = 0;
    let mut open: Option<OpenJob> = None;
    // Ends the open job, then says `piece`.
    let close_then = |open: &mut Option<OpenJob>, piece: Piece| {
        close(open);
        let _ = pieces.send(piece);
    };
    let mut offset = 0u64;
    loop {
        let mut magic = [0u8; 4];
        let got = match read_full(&mut blob, &mut magic) {
            Ok(got) => got,
            Err(e) => {
                close_then(&mut open, Piece::Failed(e));
                return frames;
            }
        };
        if got == 0 {
            close_then(&mut open, Piece::End);
            return frames;
        }
        let at = offset;
        offset += got as u64;
        let magic_value = u32::from_le_bytes(magic);
        if got < magic.len()
            || (magic_value != ZSTD_MAGIC && magic_value & SKIPPABLE_MASK != SKIPPABLE_MAGIC)
        {
            let e = invalid(format!("not a zstd frame at byte {at} of the layer blob"));
            close_then(&mut open, Piece::Failed(e));
            return frames;
        }
        if magic_value != ZSTD_MAGIC {
            match skip_frame(&mut blob) {
                Ok(skipped) => offset += skipped,
                Err(e) => {
                    close_then(&mut open, Piece::Failed(e));
                    return frames;
                }
            }
            continue;
        }
        let header = match frame_header(&mut blob, magic) {
            Ok(header) => header,
            Err(e) => {
                close_then(&mut open, Piece::Failed(e));
                return frames;
            }
        };
        let large_window = header.window > SHARED_WINDOW;
        // A job ends at a frame's end once it is large enough; a frame
        // with a large window has a job of its own.
        if open
            .as_ref()
            .is_some_and(|job| job.bytes >= JOB_BYTES || job.large_window || large_window)
        {
            close(&mut open);
        }
        let job = match open.as_mut() {
            Some(job) => job,
            None => {
                let (input, waiting) = sync_channel(INPUT_DEPTH);
                let (output, decoded) = sync_channel(OUTPUT_DEPTH);
                if pieces.send(Piece::Job(decoded)).is_err()
                    || jobs
                        .send(Job {
                            input: waiting,
                            output,
                            large_window,
                        })
                        .is_err()
                {
                    return frames;
                }
                open.insert(OpenJob {
                    input,
                    chunk: Vec::new(),
                    bytes: 0,
                    large_window,
                })
            }
        };
        offset += header.bytes.len() as u64 - magic.len() as u64;
        if !job.extend(&header.bytes) {
            return frames;
        }
        match cut_blocks(&mut blob, job, header.checksum) {
            Ok(Some(read)) => {
                offset += read;
                frames += 1;
            }
            // The job's decoder, or everyone, stopped listening.
            Ok(None) => return frames,
            Err(e) => {
                // Its decoder ends the job with this error, in order.
                job.flush();
                let _ = job.input.send(Err(e));
                return frames;
            }
        }
    }
}

/// Ends the open job: its decoder gets its last bytes, then the end.
fn close(open: &mut Option<OpenJob>) {
    if let Some(mut job) = open.take() {
        job.flush();
    }
}

/// A frame's header, magic included, and what the cutting needs of it.
struct FrameHeader {
    bytes: Vec<u8>,
    /// The window the frame asks for (RFC 8878, 3.1.1.1.2).
    window: u64,
    /// A 4-byte checksum follows the last block.
    checksum: bool,
}

fn frame_header(blob: &mut impl Read, magic: [u8; 4]) -> io::Result<FrameHeader> {
    let mut bytes = magic.to_vec();
    let mut descriptor = [0u8; 1];
    read_exact_in_frame(blob, &mut descriptor)?;
    let descriptor = descriptor[0];
    bytes.push(descriptor);
    let single_segment = descriptor & 0x20 != 0;
    let window_descriptor = usize::from(!single_segment);
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let start = bytes.len();
    bytes.resize(start + window_descriptor + dictionary + content_size, 0);
    read_exact_in_frame(blob, &mut bytes[start..])?;
    let window = if single_segment {
        // The window is the content: its size, little-endian, 2-byte
        // sizes counted from 256.
        let field = &bytes[start + dictionary..];
        let size = field.iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b));
        size + if content_size == 2 { 256 } else { 0 }
    } else {
        let window = bytes[start];
        let base = 1u64 << (10 + u32::from(window >> 3));
        base + base / 8 * u64::from(window & 7)
    };
    Ok(FrameHeader {
        bytes,
        window,
        checksum: descriptor & 0x04 != 0,
    })
}

/// Copies a frame's blocks (and its checksum) into `job`: the bytes read,
/// or `None` when the job's decoder hung up.
fn cut_blocks(blob: &mut impl Read, job: &mut OpenJob, checksum: bool) -> io::Result<Option<u64>> {
    let mut read = 0u64;
    loop {
        let mut header = [0u8; 3];
        read_exact_in_frame(blob, &mut header)?;
        if !job.extend(&header) {
            return Ok(None);
        }
        let header = u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
        let size = (header >> 3) as usize;
        let payload = match (header >> 1) & 3 {
            // Raw and compressed blocks carry `size` bytes; RLE one.
            0 | 2 => size,
            1 => 1,
            // Reserved: no decoder takes it, and its length means nothing.
            _ => return Err(invalid("a zstd block of the reserved type".into())),
        };
        if !copy_into(blob, job, payload)? {
            return Ok(None);
        }
        read += 3 + payload as u64;
        if header & 1 != 0 {
            break;
        }
    }
    if checksum {
        if !copy_into(blob, job, 4)? {
            return Ok(None);
        }
        read += 4;
    }
    Ok(Some(read))
}

/// Copies the next `n` bytes of `blob` into `job`; `false` when its
/// decoder hung up. On an error, what was read before it stays in the job,
/// so the decoder stops where one decoder would.
fn copy_into(blob: &mut impl Read, job: &mut OpenJob, mut n: usize) -> io::Result<bool> {
    while n > 0 {
        let start = job.chunk.len();
        let want = n.min(INPUT_CHUNK.saturating_sub(start).max(1));
        job.chunk.resize(start + want, 0);
        let got = read_full(blob, &mut job.chunk[start..]).inspect_err(|_| {
            job.chunk.truncate(start);
        })?;
        job.bytes += got;
        if got < want {
            job.chunk.truncate(start + got);
            return Err(truncated());
        }
        n -= want;
        if job.chunk.len() >= INPUT_CHUNK && !job.flush() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Skips a skippable frame past its magic; returns the bytes read.
fn skip_frame(blob: &mut impl Read) -> io::Result<u64> {
    let mut size = [0u8; 4];
    read_exact_in_frame(blob, &mut size)?;
    let size = u64::from(u32::from_le_bytes(size));
    let skipped = io::copy(&mut blob.take(size), &mut io::sink())?;
    if skipped < size {
        return Err(truncated());
    }
    Ok(4 + size)
}

/// A decoder: takes jobs in order until there are no more. A panic in
/// libzstd or here fails the job, not the thread.
fn decode(
    waiting: &Mutex<Receiver<Job>>,
    spares: &Mutex<Receiver<Vec<u8>>>,
    large_windows: &Mutex<()>,
) {
    // Decoded bytes, filled again without being cleared.
    let mut scratch = Vec::new();
    loop {
        // A large window's turn is taken in job order, with the job: the
        // decoder holding it never waits for one that waits for it.
        let (job, _turn) = {
            let queue = waiting.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(job) = queue.recv() else {
                return;
            };
            let turn = job
                .large_window
                .then(|| large_windows.lock().unwrap_or_else(|p| p.into_inner()));
            (job, turn)
        };
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            decode_job(job.input, &job.output, spares, &mut scratch)
        }));
        // Unread output means nobody listens any more: the next job tells
        // the same, and the splitter stops sending them.
        let _ = match decoded {
            Ok(Ok(true)) => job.output.send(Decoded::End),
            Ok(Ok(false)) => Ok(()),
            Ok(Err(e)) => job.output.send(Decoded::Failed(e)),
            Err(_) => {
                scratch = Vec::new();
                job.output.send(Decoded::Failed(io::Error::other(
                    "internal error in the zstd decoder",
                )))
            }
        };
    }
}

/// Decodes one job's frames; `Ok(false)` when its output is no longer read.
fn decode_job(
    input: Receiver<io::Result<Vec<u8>>>,
    output: &SyncSender<Decoded>,
    spares: &Mutex<Receiver<Vec<u8>>>,
    scratch: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(FrameInput {
        chunks: input,
        current: Vec::new(),
        pos: 0,
    })?;
    if scratch.len() != OUTPUT_CHUNK {
        scratch.resize(OUTPUT_CHUNK, 0);
    }
    loop {
        let (filled, failed) = fill(&mut decoder, scratch);
        let full = filled == OUTPUT_CHUNK;
        // What came before an error goes first, as on one thread.
        let chunk = if full {
            // A full chunk goes as it is; a spare takes its place.
            let mut next = spares
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_recv()
                .unwrap_or_default();
            next.resize(OUTPUT_CHUNK, 0);
            std::mem::replace(scratch, next)
        } else {
            scratch[..filled].to_vec()
        };
        if !chunk.is_empty() && output.send(Decoded::Bytes(chunk)).is_err() {
            return Ok(false);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !full {
            break;
        }
    }
    // libzstd ended the last frame: the splitter must have cut it there too.
    let mut rest = decoder.finish();
    if !rest.fill_buf()?.is_empty() {
        return Err(invalid("a zstd frame ends before its blocks do".into()));
    }
    Ok(true)
}

/// Fills `buf` from `decoder` a block's worth at a time, so that an error
/// loses no more of what was decoded before it than one decoder does: the
/// bytes filled, and the error that stopped it early.
fn fill(decoder: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    /// zstd's largest block.
    const BLOCK: usize = 128 << 10;
    let mut filled = 0;
    while filled < buf.len() {
        let end = buf.len().min(filled + BLOCK);
        match decoder.read(&mut buf[filled..end]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// One job's bytes, as the splitter sends them.
struct FrameInput {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for FrameInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for FrameInput {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.pos = 0;
                }
                // The splitter sent the whole job.
                Err(_) => break,
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.current.len());
    }
}

fn read_exact_in_frame(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    if read_full(reader, buf)? < buf.len() {
        return Err(truncated());
    }
    Ok(())
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the zstd stream ends inside a frame",
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::compression::{decompress, limit_exceeded, pump_decompressed};
    use crate::read_ahead::read_ahead;

    /// Decodes `blob` through the read-ahead as a layer scan does.
    fn pumped(blob: &[u8], limit: u64, decoders: usize) -> io::Result<Vec<u8>> {
        let (pump, mut reader) = read_ahead();
        std::thread::scope(|scope| {
            scope.spawn(move || pump_decompressed(blob, limit, decoders, &pump).complete);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        })
    }

    fn sequential(blob: &[u8], limit: u64) -> io::Result<Vec<u8>> {
        let (_, mut reader) = decompress(blob, limit)?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    }

    /// Bytes that compress poorly, so blocks come out raw, compressed and RLE.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 4096 < 1024 {
                    0
                } else {
                    (state >> 56) as u8 & if i % 3 == 0 { 0xff } else { 0x0f }
                }
            })
            .collect()
    }

    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x5a, 0x2a, 0x4d, 0x18];
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// A stream as zstd:chunked writes them: many frames of every kind,
    /// skippable frames between them, one frame larger than a decoder's
    /// buffers.
    fn chunked() -> (Vec<u8>, Vec<u8>) {
        let mut blob = skippable(b"a table of contents");
        let mut plain = Vec::new();
        for (i, len) in [0usize, 1, 100, 70_000, 300_000, 5 << 20, 2_000, 131_072]
            .into_iter()
            .enumerate()
        {
            let data = noise(len, i as u64 + 7);
            let frame = if i % 2 == 0 {
                zstd::encode_all(&data[..], 3).unwrap()
            } else {
                // Streamed: no content size, a checksum, one segment or not.
                let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
                encoder.include_checksum(true).unwrap();
                encoder.include_contentsize(false).unwrap();
                encoder.write_all(&data).unwrap();
                encoder.finish().unwrap()
            };
            blob.extend_from_slice(&frame);
            if i == 3 {
                blob.extend_from_slice(&skippable(&[]));
            }
            plain.extend_from_slice(&data);
        }
        blob.extend_from_slice(&skippable(&[9; 300]));
        (blob, plain)
    }

    #[test]
    fn frames_decoded_side_by_side_give_the_stream_in_order() {
        let (blob, plain) = chunked();
        assert_eq!(sequential(&blob, u64::MAX).unwrap(), plain);
        for decoders in [1, 2, 4, 9] {
            assert_eq!(
                pumped(&blob, u64::MAX, decoders).unwrap(),
                plain,
                "{decoders}"
            );
        }
        // One frame alone, and no frame at all but skippable ones.
        let one = zstd::encode_all(&plain[..1 << 20], 1).unwrap();
        assert_eq!(pumped(&one, u64::MAX, 3).unwrap(), &plain[..1 << 20]);
        assert_eq!(pumped(&skippable(b"x"), u64::MAX, 3).unwrap(), b"");
    }

    #[test]
    fn tiny_frames_are_decoded_together() {
        // An empty frame: 9 bytes, no output. A hostile layer holds
        // millions; each must cost no more than on one thread.
        let empty = zstd::encode_all(&b""[..], 1).unwrap();
        let mut blob = empty.repeat(200_000);
        blob.extend(zstd::encode_all(&b"the end"[..], 1).unwrap());
        let (pump, mut reader) = read_ahead();
        let (pumped, out) = std::thread::scope(|scope| {
            let blob = &blob;
            let pumping = scope.spawn(move || pump_decompressed(&blob[..], u64::MAX, 3, &pump));
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            (pumping.join().unwrap(), out)
        });
        assert!(pumped.complete);
        assert_eq!(pumped.frames, 200_001);
        assert_eq!(out, b"the end");
    }

    #[test]
    fn frames_with_large_windows_take_turns_and_decode_in_order() {
        let mut blob = Vec::new();
        let mut plain = Vec::new();
        for i in 0..12u64 {
            let data = noise(300_000 + i as usize * 1000, i);
            let frame = if i % 3 == 0 {
                // A window of 128 MiB, as `zstd --long=27` writes.
                let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
                encoder.window_log(27).unwrap();
                encoder.include_contentsize(false).unwrap();
                encoder.write_all(&data).unwrap();
                encoder.finish().unwrap()
            } else {
                zstd::encode_all(&data[..], 1).unwrap()
            };
            blob.extend(frame);
            plain.extend(data);
        }
        assert!(blob[5] >> 3 == 17, "the first frame asks for 2^27 bytes");
        for decoders in [2, 4] {
            assert!(pumped(&blob, u64::MAX, decoders).unwrap() == plain);
        }
    }

    #[test]
    fn a_stream_cut_anywhere_fails_as_it_does_on_one_thread() {
        let mut blob = skippable(b"toc");
        blob.extend(zstd::encode_all(&noise(5_000, 1)[..], 1).unwrap());
        blob.extend(zstd::encode_all(&noise(3_000, 2)[..], 1).unwrap());
        for cut in 1..blob.len() {
            let alone = sequential(&blob[..cut], u64::MAX);
            let side_by_side = pumped(&blob[..cut], u64::MAX, 3);
            match (&alone, &side_by_side) {
                (Ok(a), Ok(b)) => assert!(a == b, "cut at {cut}"),
                (Err(_), Err(_)) => {}
                _ => panic!("cut at {cut}: one thread {alone:?}, frames {side_by_side:?}"),
            }
        }
    }

    #[test]
    fn damaged_streams_fail_or_decode_exactly_as_on_one_thread() {
        let (blob, _) = chunked();
        let blob = &blob[..blob.len().min(400_000)];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let mut damaged = blob.to_vec();
            for _ in 0..1 + round % 3 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Mostly in the headers, where the cutting happens.
                let at = if round % 2 == 0 {
                    (state >> 33) as usize % 200
                } else {
                    (state >> 33) as usize % damaged.len()
                };
                damaged[at] ^= 1 << ((state >> 20) % 8);
            }
            let alone = sequential(&damaged, u64::MAX);
            let side_by_side = pumped(&damaged, u64::MAX, 3);
            match (&alone, &side_by_side) {
                (Ok(a), Ok(b)) => assert!(a == b, "round {round}"),
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "round {round}: one thread {:?}, frames {:?}",
                    alone.map(|v| v.len()),
                    side_by_side.map(|v| v.len())
                ),
            }
        }
    }

    #[test]
    fn anything_after_the_frames_but_frames_is_an_error() {
        let mut blob = zstd::encode_all(&b"layer"[..], 1).unwrap();
        blob.extend_from_slice(b"garbage after the frame");
        let err = pumped(&blob, u64::MAX, 2).unwrap_err();
        assert!(
            err.to_string().contains("not a zstd frame at byte"),
            "{err}"
        );
        assert!(sequential(&blob, u64::MAX).is_err());
    }

    #[test]
    fn the_limit_stops_a_bomb_but_not_an_exact_fit() {
        let data = vec![0u8; 3 << 20];
        let mut blob = Vec::new();
        for _ in 0..4 {
            blob.extend(zstd::encode_all(&data[..], 1).unwrap());
        }
        assert_eq!(pumped(&blob, 12 << 20, 2).unwrap().len(), 12 << 20);
        let err = pumped(&blob, (5 << 20) + 3, 2).unwrap_err();
        assert_eq!(limit_exceeded(&err), Some((5 << 20) + 3));
    }

    /// Hands over its bytes, then fails as a dropped connection does.
    struct BrokenAfter<'a>(&'a [u8]);

    impl Read for BrokenAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("connection reset by the registry"));
            }
            self.0.read(buf)
        }
    }

    #[test]
    fn the_blobs_own_error_comes_out_where_it_happened() {
        let (blob, plain) = chunked();
        for cut in [3, 20, 90_000, blob.len() - 1] {
            let (pump, mut reader) = read_ahead();
            let (got, err) = std::thread::scope(|scope| {
                let blob = &blob;
                scope.spawn(move || {
                    pump_decompressed(BrokenAfter(&blob[..cut]), u64::MAX, 3, &pump)
                });
                let mut got = Vec::new();
                let mut buf = vec![0; 1 << 16];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => panic!("cut at {cut}: the stream ended without its error"),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => break (got, e),
                    }
                }
            });
            assert_eq!(
                err.to_string(),
                "connection reset by the registry",
                "cut at {cut}"
            );
            assert!(plain.starts_with(&got));
        }
    }

    #[test]
    fn a_reader_that_stops_early_stops_every_thread() {
        let (blob, _) = chunked();
        let (pump, mut reader) = read_ahead();
        std::thread::scope(|scope| {
            let blob = &blob;
            let pumping =
                scope.spawn(move || pump_decompressed(&blob[..], u64::MAX, 4, &pump).complete);
            let mut first = vec![0; 100_000];
            reader.read_exact(&mut first).unwrap();
            drop(reader);
            assert!(!pumping.join().unwrap(), "the pump saw the hang-up");
        });
    }
}
