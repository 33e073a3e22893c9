//! One memory budget for the file buffers of a whole process: every file
//! read into memory to be checked (a layer's files, members of archives
//! inside them) draws on it, across all the scans and jobs that share a
//! scanner, and a reader waits for room instead of growing past it.
//!
//! Only a thread that holds nothing waits: a reader already holding a
//! file's buffer (an archive whose members it is now reading) takes what it
//! needs at once, so no two readers ever wait for each other. That overdraft
//! is bounded by the archive depth limit. One exception: a layer's reader
//! may wait while chunks read ahead for it hold budget bytes; those are only
//! taken with [`MemoryBudget::try_reserve_leaving`], which leaves at least
//! the largest file's room free, so the reader's wait always ends.

use std::cell::Cell;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex};

/// Buffers up to this size are kept between files by a reader; larger ones
/// are given back with their reservation.
const KEPT_BUFFER: usize = 256 * 1024;

thread_local! {
    /// Bytes this thread holds in reservations.
    static HELD: Cell<u64> = const { Cell::new(0) };
}

/// A byte budget shared by clones. Compared by size.
#[derive(Clone)]
pub struct MemoryBudget {
    state: Arc<State>,
}

struct State {
    total: u64,
    /// May go below zero by the overdraft of nested readers.
    free: Mutex<i128>,
    freed: Condvar,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one byte).
    pub fn new(bytes: u64) -> Self {
        let total = bytes.max(1);
        MemoryBudget {
            state: Arc::new(State {
                total,
                free: Mutex::new(i128::from(total)),
                freed: Condvar::new(),
            }),
        }
    }

    /// Its size in bytes.
    pub fn total(&self) -> u64 {
        self.state.total
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        let free = *self.state.free.lock().unwrap_or_else(|e| e.into_inner());
        u64::try_from(i128::from(self.state.total) - free).unwrap_or(0)
    }

    /// Reserves `bytes` (at most the whole budget), waiting until they are
    /// free unless this thread already holds a reservation.
    pub fn reserve(&self, bytes: u64) -> Reservation {
        let bytes = bytes.min(self.state.total);
        let may_wait = HELD.get() == 0;
        let mut free = self.state.free.lock().unwrap_or_else(|e| e.into_inner());
        while may_wait && *free < i128::from(bytes) {
            free = self
                .state
                .freed
                .wait(free)
                .unwrap_or_else(|e| e.into_inner());
        }
        *free -= i128::from(bytes);
        drop(free);
        HELD.set(HELD.get() + bytes);
        Reservation {
            state: Arc::clone(&self.state),
            bytes,
        }
    }
}

impl MemoryBudget {
    /// Reserves `bytes` if they are free now, never waiting: for work that
    /// can be done another way when there is no room (a file checked where it
    /// was read rather than handed to another worker).
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        self.try_reserve_leaving(bytes, 0)
    }

    /// [`try_reserve`](Self::try_reserve), only if `keep_free` bytes stay
    /// free after it: for memory that is given back only when a reader that
    /// may be waiting for the budget moves on (a layer read ahead of its
    /// checks), so that reader always finds room for one file.
    pub fn try_reserve_leaving(&self, bytes: u64, keep_free: u64) -> Option<Reservation> {
        let mut free = self.state.free.lock().unwrap_or_else(|e| e.into_inner());
        if *free < i128::from(bytes) + i128::from(keep_free.min(self.state.total)) {
            return None;
        }
        *free -= i128::from(bytes);
        drop(free);
        HELD.set(HELD.get() + bytes);
        Some(Reservation {
            state: Arc::clone(&self.state),
            bytes,
        })
    }
}

impl Default for MemoryBudget {
    /// [`MemoryBudget::DEFAULT`].
    fn default() -> Self {
        MemoryBudget::new(Self::DEFAULT)
    }
}

impl MemoryBudget {
    /// 512 MiB: room for a few files at the default 64 MiB file size limit
    /// in a small pod.
    pub const DEFAULT: u64 = 512 * 1024 * 1024;
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("total", &self.state.total)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl PartialEq for MemoryBudget {
    fn eq(&self, other: &Self) -> bool {
        self.total() == other.total()
    }
}

impl Eq for MemoryBudget {}

/// Bytes taken from a [`MemoryBudget`], given back when dropped.
#[must_use = "the bytes go back when the reservation is dropped"]
pub struct Reservation {
    state: Arc<State>,
    bytes: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Reservation {
    /// Takes more, without waiting: the bytes were read already.
    fn grow_to(&mut self, bytes: u64) {
        if bytes <= self.bytes {
            return;
        }
        let more = bytes - self.bytes;
        *self.state.free.lock().unwrap_or_else(|e| e.into_inner()) -= i128::from(more);
        HELD.set(HELD.get() + more);
        self.bytes = bytes;
    }
}

impl Reservation {
    /// Hands the reserved bytes to another thread (a file checked by another
    /// worker): this thread no longer counts them as held, so it may wait
    /// for room again. The receiver calls [`HandedOver::take_up`].
    pub fn hand_over(self) -> HandedOver {
        HELD.set(HELD.get().saturating_sub(self.bytes));
        HandedOver(Some(self))
    }
}

/// A [`Reservation`] on its way to another thread. Dropped without
/// [`take_up`](Self::take_up), its bytes go back to the budget all the same.
#[must_use = "the bytes go back when the reservation is dropped"]
#[derive(Debug)]
pub struct HandedOver(Option<Reservation>);

impl HandedOver {
    /// The reservation, now held by this thread.
    pub fn take_up(mut self) -> Reservation {
        let reservation = self.0.take().expect("taken up once");
        HELD.set(HELD.get() + reservation.bytes);
        reservation
    }
}

impl Drop for HandedOver {
    fn drop(&mut self) {
        // Held by no thread: the reservation's drop must not take its bytes
        // off this thread's count.
        if let Some(reservation) = &self.0 {
            HELD.set(HELD.get() + reservation.bytes);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.state.free.lock().unwrap_or_else(|e| e.into_inner()) += i128::from(self.bytes);
        HELD.set(HELD.get().saturating_sub(self.bytes));
        self.state.freed.notify_all();
    }
}

/// Reads at most `max` bytes of `reader` into `buf` (cleared first) under a
/// reservation of `expected` bytes (the declared size, when there is one),
/// grown to what was read. Give `buf` to [`release_buffer`] with the
/// reservation once the file is checked.
pub(crate) fn read_reserved(
    reader: impl Read,
    max: u64,
    expected: u64,
    buf: &mut Vec<u8>,
    budget: &MemoryBudget,
) -> io::Result<Reservation> {
    let expected = expected.min(max);
    let mut reservation = budget.reserve(expected);
    buf.clear();
    // Exactly: a buffer grown by doubling could hold twice what was reserved.
    buf.reserve_exact(usize::try_from(expected).unwrap_or(usize::MAX));
    reader.take(max).read_to_end(buf)?;
    reservation.grow_to(buf.capacity() as u64);
    Ok(reservation)
}

/// Gives a large buffer's memory back, so the reservation's bytes really
/// are free once it is dropped; small ones are kept for the next file.
pub(crate) fn release_buffer(buf: &mut Vec<u8>) {
    if buf.capacity() > KEPT_BUFFER {
        *buf = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_waits_for_room_and_a_nested_reader_does_not() {
        let budget = MemoryBudget::new(100);
        let first = budget.reserve(80);
        // This thread holds 80: a nested read takes its 50 at once.
        let nested = budget.reserve(50);
        assert_eq!(budget.in_use(), 130);
        drop(nested);
        let other = budget.clone();
        let waiter = std::thread::spawn(move || {
            let _taken = other.reserve(60);
            other.in_use()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "60 more do not fit while 80 are held"
        );
        drop(first);
        assert_eq!(waiter.join().unwrap(), 60);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_reservation_handed_to_another_thread_is_held_there() {
        let budget = MemoryBudget::new(100);
        let handed = budget.reserve(80).hand_over();
        // This thread holds nothing now: a new reservation would wait.
        assert_eq!(HELD.get(), 0);
        let other = budget.clone();
        let receiver = std::thread::spawn(move || {
            let held = handed.take_up();
            assert_eq!(HELD.get(), 80);
            // Held here: a nested reservation does not wait.
            let nested = other.reserve(50);
            drop((nested, held));
            HELD.get()
        });
        assert_eq!(receiver.join().unwrap(), 0);
        assert_eq!(budget.in_use(), 0);

        // One dropped on its way leaves this thread's count as it was.
        let mine = budget.reserve(10);
        drop(budget.reserve(30).hand_over());
        assert_eq!((HELD.get(), budget.in_use()), (10, 10));
        drop(mine);

        let most = budget.try_reserve(90).expect("room for 90");
        assert!(
            budget.try_reserve(20).is_none(),
            "never waits, never overdraws"
        );
        drop(most);
        assert!(budget.try_reserve(20).is_some());
    }

    #[test]
    fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = MemoryBudget::new(10);
        let all = budget.reserve(1 << 40);
        assert_eq!(budget.in_use(), 10);
        drop(all);
        let mut buf = Vec::new();
        let reservation = read_reserved(&[7u8; 30][..], 20, 5, &mut buf, &budget).unwrap();
        assert_eq!(buf.len(), 20);
        assert!(budget.in_use() >= 20, "grown to what was read");
        drop(reservation);
        assert_eq!(budget.in_use(), 0);
    }
}
