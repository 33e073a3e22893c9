//! A zstd stream decoded frame by frame on several threads, in order.
//!
//! Each zstd frame stands alone: no frame refers to another's bytes. Layers
//! written as many frames (`zstd:chunked` from podman, buildah and skopeo,
//! `pzstd`) can so be decoded side by side, where one gzip stream cannot.
//! The frames are found without decoding anything: a frame header says how
//! long it is, and each block header how long the block is.
//!
//! Three kinds of threads: one splitter reads the blob in order (the caller's
//! reader, so the blob digest is still taken over every byte) and cuts it into
//! frames; decoders take the frames in order and run libzstd on each; the
//! calling thread hands their output on in frame order. Every channel is
//! bounded, so memory stays at a few chunks per frame in flight (about
//! 3 MiB per decoder) whatever the frames' sizes: a frame larger than that
//! is streamed through its decoder while it is read. The frame structure is only used to cut: libzstd still
//! checks every byte, and a frame that libzstd ends elsewhere than the cut is
//! an error, as is a stream that ends inside a frame or holds anything but
//! frames.

use std::io::{self, BufRead, Read};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::compression::{LimitExceeded, Pumped, read_full};
use crate::read_ahead::ReadAhead;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames: `0x184D2A50` to `0x184D2A5F`, then a 4-byte length.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Compressed bytes handed to a decoder at a time.
const INPUT_CHUNK: usize = 256 << 10;
/// Compressed chunks waiting for one frame's decoder.
const INPUT_DEPTH: usize = 4;
/// Decompressed bytes per chunk: the read-ahead's own chunk size.
const OUTPUT_CHUNK: usize = 1 << 20;
/// Decompressed chunks one frame's decoder may have ready: with the frames
/// waiting for their turn, a few MiB per decoder in all.
const OUTPUT_DEPTH: usize = 2;

/// What a decoder tells about its frame, in order.
enum Decoded {
    Bytes(Vec<u8>),
    Failed(io::Error),
    /// The frame is whole: without it a decoder that stopped (a panic)
    /// would look like a frame's end and its bytes would be lost unsaid.
    End,
}

/// What the splitter tells the caller's thread, in stream order.
enum Piece {
    /// The next frame's output, as its decoder produces it.
    Frame(Receiver<Decoded>),
    Failed(io::Error),
    /// The stream ended between two frames.
    End,
}

/// A frame on its way to a decoder: its bytes as the splitter reads them
/// (an error of the blob's reader ends them), and where its output goes.
struct Job {
    input: Receiver<io::Result<Vec<u8>>>,
    output: SyncSender<Decoded>,
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
    let decoders = decoders.max(1);
    // Frames in flight: one per decoder, and one being cut.
    let (pieces, order) = sync_channel::<Piece>(decoders + 1);
    let (jobs, waiting) = sync_channel::<Job>(decoders);
    let waiting = Mutex::new(waiting);
    // Decoded chunks the read-ahead's reader is done with, filled again.
    let (recycle, spares) = sync_channel::<Vec<u8>>(2 * OUTPUT_DEPTH);
    let spares = Mutex::new(spares);
    std::thread::scope(|scope| {
        let splitter = match std::thread::Builder::new()
            .name("minehound-zstd".into())
            .spawn_scoped(scope, move || split(blob, &pieces, &jobs))
        {
            Ok(splitter) => splitter,
            Err(e) => {
                out.fail(e);
                return Pumped::default();
            }
        };
        // One decoder is enough to go on; a refused thread is not fatal.
        let decoding: Vec<_> = (0..decoders)
            .filter_map(|_| {
                let (waiting, spares) = (&waiting, &spares);
                std::thread::Builder::new()
                    .name("minehound-zstd".into())
                    .spawn_scoped(scope, move || decode(waiting, spares))
                    .ok()
            })
            .collect();
        // Dropped before the threads are joined: the splitter and the
        // decoders see the hang-up and stop.
        let complete = forward(order, limit, out, &recycle);
        drop(recycle);
        let frames = splitter.join().unwrap_or(0);
        // Joined, not only waited for: each thread is gone, its
        // thread-locals too, when the layer's scan goes on.
        for decoder in decoding {
            let _ = decoder.join();
        }
        Pumped { complete, frames }
    })
}

/// Hands the frames' output on in order; see [`pump_frames`].
fn forward(
    order: Receiver<Piece>,
    limit: u64,
    out: &ReadAhead,
    recycle: &SyncSender<Vec<u8>>,
) -> bool {
    let mut produced = 0u64;
    loop {
        let frame = match order.recv() {
            Ok(Piece::Frame(frame)) => frame,
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
            match frame.recv() {
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
                        "a zstd frame's decoder stopped before the frame's end",
                    ));
                    return false;
                }
            }
        }
    }
}

/// The splitter: cuts `blob` into frames, each sent to the decoders (its
/// output's place to the caller first), until the stream ends.
fn split(mut blob: impl Read, pieces: &SyncSender<Piece>, jobs: &SyncSender<Job>) -> u64 {
    let mut offset = 0u64;
    let mut frames = 0;
    loop {
        let mut magic = [0u8; 4];
        let got = match read_full(&mut blob, &mut magic) {
            Ok(got) => got,
            Err(e) => {
                let _ = pieces.send(Piece::Failed(e));
                return frames;
            }
        };
        if got == 0 {
            let _ = pieces.send(Piece::End);
            return frames;
        }
        let at = offset;
        offset += got as u64;
        let magic_value = u32::from_le_bytes(magic);
        if got < magic.len()
            || (magic_value != ZSTD_MAGIC && magic_value & SKIPPABLE_MASK != SKIPPABLE_MAGIC)
        {
            let _ = pieces.send(Piece::Failed(invalid(format!(
                "not a zstd frame at byte {at} of the layer blob"
            ))));
            return frames;
        }
        if magic_value != ZSTD_MAGIC {
            match skip_frame(&mut blob) {
                Ok(skipped) => offset += skipped,
                Err(e) => {
                    let _ = pieces.send(Piece::Failed(e));
                    return frames;
                }
            }
            continue;
        }
        let (input, waiting) = sync_channel(INPUT_DEPTH);
        let (output, frame) = sync_channel(OUTPUT_DEPTH);
        if pieces.send(Piece::Frame(frame)).is_err()
            || jobs
                .send(Job {
                    input: waiting,
                    output,
                })
                .is_err()
        {
            return frames;
        }
        let mut cutter = FrameCutter {
            blob: &mut blob,
            input: &input,
            chunk: Vec::with_capacity(INPUT_CHUNK),
            read: 0,
        };
        cutter.chunk.extend_from_slice(&magic);
        match cutter.cut() {
            Ok(true) => {
                offset += cutter.read;
                frames += 1;
            }
            // The frame's decoder, or everyone, stopped listening.
            Ok(false) => return frames,
            Err(e) => {
                // Its decoder ends the frame with this error, in order.
                let _ = input.send(Err(e));
                return frames;
            }
        }
    }
}

/// Copies one frame (its magic already in `chunk`) to its decoder.
struct FrameCutter<'a, R> {
    blob: &'a mut R,
    input: &'a SyncSender<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    /// Bytes read past the magic.
    read: u64,
}

impl<R: Read> FrameCutter<'_, R> {
    /// `Ok(false)` when the decoder hung up.
    fn cut(&mut self) -> io::Result<bool> {
        let descriptor = self.take_array::<1>()?[0];
        let single_segment = descriptor & 0x20 != 0;
        let has_checksum = descriptor & 0x04 != 0;
        let window = usize::from(!single_segment);
        let dictionary = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
        let content_size = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        self.take(window + dictionary + content_size)?;
        loop {
            let header = self.take_array::<3>()?;
            let header =
                u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
            let last = header & 1 != 0;
            let size = (header >> 3) as usize;
            let payload = match (header >> 1) & 3 {
                // Raw and compressed blocks carry `size` bytes; RLE one.
                0 | 2 => size,
                1 => 1,
                // Reserved: no decoder takes it, and its length means nothing.
                _ => return Err(invalid("a zstd block of the reserved type".into())),
            };
            self.take(payload)?;
            if last {
                break;
            }
        }
        if has_checksum {
            self.take(4)?;
        }
        self.flush()
    }

    fn take_array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut bytes = [0u8; N];
        read_exact_in_frame(self.blob, &mut bytes)?;
        self.keep(&bytes)?;
        Ok(bytes)
    }

    /// Copies the frame's next `n` bytes on.
    fn take(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let start = self.chunk.len();
            let want = n.min(INPUT_CHUNK.saturating_sub(start).max(1));
            self.chunk.resize(start + want, 0);
            read_exact_in_frame(self.blob, &mut self.chunk[start..])?;
            self.read += want as u64;
            n -= want;
            if self.chunk.len() >= INPUT_CHUNK && !self.flush()? {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "decoder hung up"));
            }
        }
        Ok(())
    }

    fn keep(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.chunk.extend_from_slice(bytes);
        self.read += bytes.len() as u64;
        if self.chunk.len() >= INPUT_CHUNK && !self.flush()? {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "decoder hung up"));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<bool> {
        if self.chunk.is_empty() {
            return Ok(true);
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(INPUT_CHUNK));
        Ok(self.input.send(Ok(chunk)).is_ok())
    }
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

/// A decoder: takes frames in order until there are no more.
fn decode(waiting: &Mutex<Receiver<Job>>, spares: &Mutex<Receiver<Vec<u8>>>) {
    loop {
        let job = match waiting.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // Unread output means nobody listens any more: the next job tells
        // the same, and the splitter stops sending them.
        let _ = match decode_frame(job.input, &job.output, spares) {
            Ok(true) => job.output.send(Decoded::End),
            Ok(false) => Ok(()),
            Err(e) => job.output.send(Decoded::Failed(e)),
        };
    }
}

/// Decodes one frame; `Ok(false)` when its output is no longer read.
fn decode_frame(
    input: Receiver<io::Result<Vec<u8>>>,
    output: &SyncSender<Decoded>,
    spares: &Mutex<Receiver<Vec<u8>>>,
) -> io::Result<bool> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(FrameInput {
        chunks: input,
        current: Vec::new(),
        pos: 0,
    })?
    .single_frame();
    loop {
        let spare = spares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_recv()
            .ok();
        let mut chunk = spare.unwrap_or_default();
        chunk.resize(OUTPUT_CHUNK, 0);
        let filled = read_full(&mut decoder, &mut chunk)?;
        chunk.truncate(filled);
        if filled > 0 && output.send(Decoded::Bytes(chunk)).is_err() {
            return Ok(false);
        }
        if filled < OUTPUT_CHUNK {
            break;
        }
    }
    // libzstd ended the frame: the splitter must have cut it there too.
    let mut rest = decoder.finish();
    if !rest.fill_buf()?.is_empty() {
        return Err(invalid("a zstd frame ends before its blocks do".into()));
    }
    Ok(true)
}

/// One frame's bytes, as the splitter sends them.
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
                // The splitter sent the whole frame.
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
