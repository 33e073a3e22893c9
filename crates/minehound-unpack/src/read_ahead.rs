//! A bounded hand-over of a stream between two threads, so that one thread can
//! inflate a layer while another walks and checks what was inflated before.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};

use crate::budget::{HandedOver, MemoryBudget};
use crate::compression::read_full;

/// Bytes per chunk handed over.
const CHUNK: usize = 1 << 20;
/// Chunks always allowed in flight, outside any budget: a few MiB.
const DEPTH: usize = 4;
/// Chunks allowed in flight when a [`MemoryBudget`] has room for the ones
/// past [`DEPTH`]. A large file's check (a 60 MiB binary) takes longer than
/// inflating it; with only a few MiB of room the inflater would wait for it,
/// and a layer of large files would be inflated and checked in turns instead
/// of side by side. 32 MiB took one 1.5 GiB layer of binaries from 6.8 s to
/// 5.7 s on two cores; deeper gained nothing more.
const DEEP: usize = 32;

/// A chunk, and the budget's bytes it holds when it is one of the deep ones.
type Chunk = (Vec<u8>, Option<HandedOver>);

/// The sending half: [`ReadAhead::pump`] fills it from a reader.
#[derive(Debug)]
pub struct ReadAhead {
    chunks: SyncSender<io::Result<Chunk>>,
    /// One token per unbudgeted chunk in flight: a full channel means
    /// [`DEPTH`] of them are, and the next needs the budget or a wait.
    tokens: SyncSender<()>,
    /// Where the deep chunks come from, and how much of it they leave free.
    budget: Option<(MemoryBudget, u64)>,
    /// Chunks the reader is done with, to fill again: no allocation, no
    /// page faults per chunk.
    spare: Receiver<Vec<u8>>,
}

/// The receiving half: reads what the other thread pumped, in order; an error
/// of the pumped reader comes out where it happened, and the end of the stream
/// where the pump stopped.
#[derive(Debug)]
pub struct AheadReader {
    chunks: Receiver<io::Result<Chunk>>,
    tokens: Receiver<()>,
    spare: Sender<Vec<u8>>,
    current: Vec<u8>,
    /// The budget's bytes `current` holds, given back when it is read.
    reserved: Option<HandedOver>,
    pos: usize,
}

/// A connected pair holding at most a few MiB between the threads.
pub fn read_ahead() -> (ReadAhead, AheadReader) {
    connect(None)
}

/// A connected pair that may hold up to 32 MiB between the threads, taking
/// what is past the first few MiB from `budget` while that leaves
/// `keep_free` bytes free (never waiting for it): the reader may wait for
/// the budget for its next file, and only its reading gives these back, so
/// `keep_free` is the largest file it reserves.
pub fn read_ahead_within(budget: &MemoryBudget, keep_free: u64) -> (ReadAhead, AheadReader) {
    connect(Some((budget.clone(), keep_free)))
}

fn connect(budget: Option<(MemoryBudget, u64)>) -> (ReadAhead, AheadReader) {
    let (chunks, received) = sync_channel(DEEP);
    let (tokens, taken) = sync_channel(DEPTH);
    let (spare, spares) = channel();
    (
        ReadAhead {
            chunks,
            tokens,
            budget,
            spare: spares,
        },
        AheadReader {
            chunks: received,
            tokens: taken,
            spare,
            current: Vec::new(),
            reserved: None,
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
            let filled = match read_full(reader, &mut chunk) {
                Ok(filled) => filled,
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            };
            if filled == 0 {
                return true;
            }
            chunk.truncate(filled);
            let Some(reserved) = self.room() else {
                return false;
            };
            if self.chunks.send(Ok((chunk, reserved))).is_err() {
                return false;
            }
        }
    }

    /// Waits for room for one more chunk: one of the few unbudgeted ones,
    /// else one paid from the budget, else (no budget room) the next
    /// unbudgeted one the reader frees. `None` when the reader hung up.
    fn room(&self) -> Option<Option<HandedOver>> {
        match self.tokens.try_send(()) {
            Ok(()) => return Some(None),
            Err(TrySendError::Disconnected(())) => return None,
            Err(TrySendError::Full(())) => {}
        }
        let paid = self
            .budget
            .as_ref()
            .and_then(|(budget, keep_free)| budget.try_reserve_leaving(CHUNK as u64, *keep_free));
        match paid {
            Some(reservation) => Some(Some(reservation.hand_over())),
            None => self.tokens.send(()).ok().map(|()| None),
        }
    }

    /// Hands one chunk of at most 1 MiB to the other side, as [`Self::pump`]
    /// does; `false` when the other side hung up.
    pub(crate) fn push(&self, chunk: Vec<u8>) -> bool {
        debug_assert!(chunk.len() <= CHUNK);
        let Some(reserved) = self.room() else {
            return false;
        };
        self.chunks.send(Ok((chunk, reserved))).is_ok()
    }

    /// The budget deep chunks are paid from, and the bytes left free in it:
    /// a stage inflating ahead of this one pays from it the same way.
    pub(crate) fn budget(&self) -> Option<(MemoryBudget, u64)> {
        self.budget.clone()
    }

    /// A chunk the other side is done with, to fill again.
    pub(crate) fn spare(&self) -> Option<Vec<u8>> {
        self.spare.try_recv().ok()
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
                    let (chunk, reserved) = chunk?;
                    let used = std::mem::replace(&mut self.current, chunk);
                    // A budgeted chunk's memory goes back with its bytes;
                    // only the unbudgeted few are filled again.
                    match std::mem::replace(&mut self.reserved, reserved) {
                        Some(paid) => drop((used, paid)),
                        None => {
                            if !used.is_empty() {
                                let _ = self.tokens.try_recv();
                            }
                            let _ = self.spare.send(used);
                        }
                    }
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
    fn a_budget_lets_the_pump_run_further_ahead_and_gets_its_bytes_back() {
        let budget = MemoryBudget::new(64 * CHUNK as u64);
        let data: Vec<u8> = (0..40 * CHUNK + 5).map(|i| (i % 253) as u8).collect();
        let (pump, mut reader) = read_ahead_within(&budget, 0);
        std::thread::scope(|scope| {
            let data = &data;
            scope.spawn(move || assert!(pump.pump(&mut &data[..])));
            // Nothing is read yet: the pump fills the few free chunks, then
            // the deep ones from the budget (one more waits to be sent).
            let deep = ((DEEP - DEPTH) * CHUNK) as u64;
            let start = std::time::Instant::now();
            while budget.in_use() < deep && start.elapsed().as_secs() < 30 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let ahead = budget.in_use();
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            assert!(got == *data, "every byte, in order");
            assert!(
                (deep..=deep + CHUNK as u64).contains(&ahead),
                "the pump ran {ahead} budgeted bytes ahead"
            );
        });
        drop(reader);
        assert_eq!(
            budget.in_use(),
            0,
            "every budgeted chunk gave its bytes back"
        );
    }

    #[test]
    fn the_reader_always_finds_room_for_its_next_file() {
        // The reader waits for the budget before it reads a file, and only
        // its reading frees what the pump took: the pump leaves room.
        let file = 16 * CHUNK as u64;
        let budget = MemoryBudget::new(40 * CHUNK as u64);
        let data = vec![7u8; 60 * CHUNK];
        let (pump, mut reader) = read_ahead_within(&budget, file);
        std::thread::scope(|scope| {
            let data = &data;
            scope.spawn(move || assert!(pump.pump(&mut &data[..])));
            let start = std::time::Instant::now();
            while budget.in_use() < 24 * CHUNK as u64 && start.elapsed().as_secs() < 30 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let room = budget.try_reserve(file);
            let in_use = budget.in_use();
            drop(room);
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            assert_eq!(got.len(), data.len());
            assert_eq!(
                in_use,
                40 * CHUNK as u64,
                "the pump took all but one file's room"
            );
        });
    }

    #[test]
    fn without_room_in_the_budget_the_pump_keeps_to_the_few_chunks() {
        let budget = MemoryBudget::new(CHUNK as u64 - 1);
        let data: Vec<u8> = (0..12 * CHUNK).map(|i| (i % 241) as u8).collect();
        let (pump, mut reader) = read_ahead_within(&budget, 0);
        std::thread::scope(|scope| {
            let data = &data;
            scope.spawn(move || assert!(pump.pump(&mut &data[..])));
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert_eq!(budget.in_use(), 0);
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            assert_eq!(got, *data);
        });
    }

    #[test]
    fn a_reader_that_hangs_up_stops_the_pump() {
        let (pump, reader) = read_ahead();
        drop(reader);
        assert!(!pump.pump(&mut io::repeat(1)), "an endless source ends");
        // Also once the pump waits for room in the middle of the stream.
        let budget = MemoryBudget::new(8 * CHUNK as u64);
        let (pump, mut reader) = read_ahead_within(&budget, 0);
        std::thread::scope(|scope| {
            let pumping = scope.spawn(move || pump.pump(&mut io::repeat(1)));
            let mut first = vec![0; 3 * CHUNK];
            reader.read_exact(&mut first).unwrap();
            drop(reader);
            assert!(!pumping.join().unwrap());
        });
        assert_eq!(budget.in_use(), 0);
    }
}
