//! A bounded hand-over of a stream between two threads, so that one thread can
//! inflate a layer while another walks and checks what was inflated before.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

/// Bytes per chunk handed over.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: bounds the memory between the threads to a few MiB.
const DEPTH: usize = 4;

/// The sending half: [`ReadAhead::pump`] fills it from a reader.
#[derive(Debug)]
pub struct ReadAhead {
    chunks: SyncSender<io::Result<Vec<u8>>>,
    /// Chunks the reader is done with, to fill again: no allocation, no
    /// page faults per chunk.
    spare: Receiver<Vec<u8>>,
}

/// The receiving half: reads what the other thread pumped, in order; an error
/// of the pumped reader comes out where it happened, and the end of the stream
/// where the pump stopped.
#[derive(Debug)]
pub struct AheadReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    spare: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

/// A connected pair.
pub fn read_ahead() -> (ReadAhead, AheadReader) {
    let (chunks, received) = sync_channel(DEPTH);
    let (spare, spares) = channel();
    (
        ReadAhead {
            chunks,
            spare: spares,
        },
        AheadReader {
            chunks: received,
            spare,
            current: Vec::new(),
            pos: 0,
        },
    )
}

impl ReadAhead {
    /// Copies `reader` to the other side until its end. Returns `false` when
    /// the other side hung up (it stopped reading) or the reader failed; the
    /// failure itself goes to the other side.
    pub fn pump(&self, reader: &mut impl Read) -> bool {
        loop {
            let mut chunk = self.spare.try_recv().unwrap_or_default();
            chunk.resize(CHUNK, 0);
            let mut filled = 0;
            while filled < CHUNK {
                match reader.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.fail(e);
                        return false;
                    }
                }
            }
            if filled == 0 {
                return true;
            }
            chunk.truncate(filled);
            if self.chunks.send(Ok(chunk)).is_err() {
                return false;
            }
        }
    }

    /// Passes `error` to the other side (if it still reads).
    pub fn fail(&self, error: io::Error) {
        let _ = self.chunks.send(Err(error));
    }
}

impl Read for AheadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.current, chunk?);
                    let _ = self.spare.send(used);
                    self.pos = 0;
                }
                // The pump is done and dropped its half: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_errors_arrive_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let (pump, mut reader) = read_ahead();
        let failing = std::thread::scope(|scope| {
            scope.spawn(|| {
                assert!(pump.pump(&mut &data[..]));
                pump.fail(io::Error::other("broken blob"));
                drop(pump);
            });
            let mut got = Vec::new();
            let err = reader.read_to_end(&mut got).unwrap_err();
            assert_eq!(got, data);
            err
        });
        assert_eq!(failing.to_string(), "broken blob");
        assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0, "then the end");
    }

    #[test]
    fn a_reader_that_hangs_up_stops_the_pump() {
        let (pump, reader) = read_ahead();
        drop(reader);
        assert!(!pump.pump(&mut io::repeat(1)), "an endless source ends");
    }
}
