use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::gzip_parallel::{ParallelGzip, ReadAt};

use crate::read_ahead::ReadAhead;

/// How a layer blob is compressed. Told by magic bytes, not by media type: media
/// types lie, magic bytes decide how the bytes can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// RFC 1952 gzip, possibly several members.
    Gzip,
    /// Zstandard frames.
    Zstd,
    /// Stored as is.
    None,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The compression of a stream that starts with `head`.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC)
            // A skippable frame (zstd:chunked's metadata, say) may come first.
            || (head.len() == 4 && head[0] & 0xf0 == 0x50 && head[1..] == [0x2a, 0x4d, 0x18])
        {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps `reader` in the decompressor its first bytes call for, and caps the output
/// at `limit` bytes: past it, reads fail with [`LimitExceeded`] inside an
/// `io::Error`, which walkers turn into [`crate::Error::LayerTooLarge`].
pub fn decompress<'a, R: Read + 'a>(
    reader: R,
    limit: u64,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let (compression, reader) = sniff(reader)?;
    Ok((compression, decoder(compression, reader, limit)))
}

/// [`decompress`] into `out`, the other side of a [`read_ahead`](crate::read_ahead)
/// (see [`ReadAhead::pump`]): a zstd stream is decoded frame by frame on
/// `decoders` threads, each frame beside the others, in order; with no
/// decoders, on this thread.
pub fn pump_decompressed<R: Read + Send>(
    blob: R,
    limit: u64,
    decoders: usize,
    out: &ReadAhead,
) -> Pumped {
    match sniff(blob) {
        Err(e) => {
            out.fail(e);
            Pumped::default()
        }
        Ok((compression, stream)) => pump_sniffed(compression, stream, limit, decoders, out),
    }
}

/// [`pump_decompressed`] of a blob that can also be read at any offset
/// (`at`, the same bytes as `blob`): a gzip stream is inflated by
/// `inflaters` threads besides this one, in order: each
/// thread takes a stretch of the compressed bytes, and this one joins
/// them where they meet, decoding on its own wherever they do not. `blob` is
/// still read to its end, on a thread of its own, so that its digest covers
/// every byte. The workers' chunks are paid from `out`'s budget as its deep
/// chunks are.
pub fn pump_decompressed_at<R: Read + Send>(
    blob: R,
    at: Arc<dyn ReadAt>,
    inflaters: usize,
    limit: u64,
    decoders: usize,
    out: &ReadAhead,
) -> Pumped {
    let (compression, mut stream) = match sniff(blob) {
        Err(e) => {
            out.fail(e);
            return Pumped::default();
        }
        Ok(sniffed) => sniffed,
    };
    if compression != Compression::Gzip || inflaters == 0 {
        return pump_sniffed(compression, stream, limit, decoders, out);
    }
    let taken = Arc::new(AtomicU64::new(0));
    let inflated = match ParallelGzip::new(at, inflaters, taken.clone(), out.budget()) {
        Err(e) => {
            out.fail(e);
            return Pumped::default();
        }
        // A header flate2 alone reads.
        Ok(None) => return pump_sniffed(compression, stream, limit, decoders, out),
        Ok(Some(inflated)) => inflated,
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stop = &stop;
        let drain = scope.spawn(move || drain(&mut stream, stop));
        let mut complete = out.pump(&mut limited(inflated, limit));
        stop.store(!complete, Ordering::Relaxed);
        let drained = drain.join();
        if complete {
            let failed = match drained {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(io::Error::other("reading the layer blob panicked")),
            };
            if let Some(e) = failed {
                out.fail(e);
                complete = false;
            }
        }
        Pumped {
            complete,
            frames: 0,
            gzip_chunks: taken.load(Ordering::Relaxed),
        }
    })
}

/// Reads `stream` to its end (or until `stop`), for what it hashes on the way.
fn drain(stream: &mut impl Read, stop: &AtomicBool) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn pump_sniffed(
    compression: Compression,
    stream: impl Read + Send,
    limit: u64,
    decoders: usize,
    out: &ReadAhead,
) -> Pumped {
    match compression {
        Compression::Zstd if decoders > 0 => {
            crate::zstd_frames::pump_frames(stream, limit, decoders, out)
        }
        _ => Pumped {
            complete: out.pump(&mut decoder(compression, stream, limit)),
            ..Pumped::default()
        },
    }
}

/// What [`pump_decompressed`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pumped {
    /// The whole stream went to the other side. `false` when the other
    /// side hung up or the stream failed (the error went to the other side).
    pub complete: bool,
    /// zstd frames decoded by the frame decoders.
    pub frames: u64,
    /// Chunks of a gzip stream inflated by the workers of
    /// [`pump_decompressed_at`] and taken in order.
    pub gzip_chunks: u64,
}

/// Reads the magic of `reader` and puts it back in front.
fn sniff<R: Read>(mut reader: R) -> io::Result<(Compression, impl Read)> {
    // A network stream may hand over its first bytes one at a time: read
    // the whole magic before judging, then put it back in front.
    let mut head = [0u8; ZSTD_MAGIC.len()];
    let got = read_full(&mut reader, &mut head)?;
    let compression = Compression::sniff(&head[..got]);
    Ok((
        compression,
        io::Cursor::new(head).take(got as u64).chain(reader),
    ))
}

/// The decompressor of `compression` over `reader`, its output capped at `limit`.
pub(crate) fn decoder<'a>(
    compression: Compression,
    reader: impl Read + 'a,
    limit: u64,
) -> Box<dyn Read + 'a> {
    let reader = BufReader::with_capacity(256 * 1024, reader);
    let inner: Box<dyn Read + 'a> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(reader) {
            Ok(decoder) => Box::new(decoder),
            Err(e) => Box::new(Failed(Some(e))),
        },
        Compression::None => Box::new(reader),
    };
    Box::new(limited(inner, limit))
}

pub(crate) fn limited<R: Read>(inner: R, limit: u64) -> LimitedReader<R> {
    LimitedReader {
        inner,
        remaining: limit,
        limit,
    }
}

/// Reads until `buf` is full or the stream ends; the bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A stream whose decoder could not be made: its first read says why.
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("no decoder")))
    }
}

/// Marker error: a decompressed stream grew past its limit.
#[derive(Debug)]
pub struct LimitExceeded(pub u64);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed size exceeds {} bytes", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// Returns the limit if `err` is (or wraps) a [`LimitExceeded`].
pub(crate) fn limit_exceeded(err: &io::Error) -> Option<u64> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(e) = source {
        if let Some(limit) = e.downcast_ref::<LimitExceeded>() {
            return Some(limit.0);
        }
        source = e.source();
    }
    None
}

pub(crate) struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Only an error if the stream really has more to give.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(LimitExceeded(self.limit))),
            };
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Hands over one byte per read, as a trickling registry does.
    struct OneByteAtATime<R>(R);

    impl<R: Read> Read for OneByteAtATime<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn magic_split_across_reads_is_still_recognised() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, b"layer bytes").unwrap();
        let gz = gz.finish().unwrap();
        let (compression, mut out) = decompress(OneByteAtATime(&gz[..]), 1 << 20).unwrap();
        assert_eq!(compression, Compression::Gzip);
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        assert_eq!(text, "layer bytes");
        // Shorter than any magic: plain, and every byte still there.
        let (compression, mut out) = decompress(OneByteAtATime(&b"ab"[..]), 10).unwrap();
        assert_eq!(compression, Compression::None);
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        assert_eq!(text, "ab");
    }

    #[test]
    fn detects_by_magic_and_round_trips() {
        let data = b"hello layer".repeat(100);
        for (blob, want) in [
            (gzip(&data), Compression::Gzip),
            (zstd::encode_all(&data[..], 1).unwrap(), Compression::Zstd),
            (data.clone(), Compression::None),
        ] {
            let (found, mut reader) = decompress(&blob[..], u64::MAX).unwrap();
            assert_eq!(found, want);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn limit_stops_a_bomb_but_not_an_exact_fit() {
        let data = vec![0u8; 1 << 20];
        let blob = gzip(&data);
        let (_, mut reader) = decompress(&blob[..], 1 << 20).unwrap();
        assert_eq!(io::copy(&mut reader, &mut io::sink()).unwrap(), 1 << 20);
        let (_, mut reader) = decompress(&blob[..], 1000).unwrap();
        let err = io::copy(&mut reader, &mut io::sink()).unwrap_err();
        assert_eq!(limit_exceeded(&err), Some(1000));
    }
}
