use std::io::{self, BufReader, Read};

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
        } else if head.starts_with(&ZSTD_MAGIC) {
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
    // A network stream may hand over its first bytes one at a time: read
    // the whole magic before judging, then put it back in front.
    let mut reader = reader;
    let mut head = [0u8; ZSTD_MAGIC.len()];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::sniff(&head[..got]);
    let reader = BufReader::with_capacity(
        256 * 1024,
        io::Cursor::new(head).take(got as u64).chain(reader),
    );
    let inner: Box<dyn Read + 'a> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::None => Box::new(reader),
    };
    Ok((
        compression,
        Box::new(LimitedReader {
            inner,
            remaining: limit,
            limit,
        }),
    ))
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

struct LimitedReader<R> {
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
