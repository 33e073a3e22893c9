//! One layer's files checked by every idle worker, not only by the one that
//! reads the layer: machine-learning images carry their weight in one or two
//! large layers, and a layer read by one thread kept the other cores idle.
//!
//! The reader moves each file's buffer (with its share of the memory budget)
//! to the helpers' queue; the queue is bounded in files and bytes. Archives
//! and packed binaries are always opened by the reader (what their contents
//! expand to draws on one budget in layer order). Every result carries its
//! file's place in the layer and the layer's results are merged in that
//! order: the report is the one a single thread would write.
//!
//! Two ways to share, by what else the reader does:
//! - [`Sharing::WhenIdle`]: the reader inflates the layer itself; it hands a
//!   file over only when a helper has started and the queue has room, else
//!   checks it. A busy machine works exactly as before.
//! - [`Sharing::WalkOnly`]: another thread inflates ahead of the reader
//!   (one large layer). The reader only walks: its own place goes to a
//!   helper, and it waits for room in the queue rather than check a file
//!   while the helpers run dry. A large file may wait alone in an empty
//!   queue, and the bytes waiting or in helpers' hands stay within half of
//!   `--max-file-size` times workers (or one file), so with the file being
//!   read they stay within `--max-file-size` times workers.
//!
//! Helpers are threads of their own, started only while the scanner has an
//! idle worker (they take its place in the count of busy workers, so
//! `--jobs` still bounds the threads at work). Not tasks of the worker pool:
//! a reader waiting there for its helpers could be handed another scan's
//! layer, one that waits for a layer this very reader holds.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use minehound_detect::Detector;
use minehound_unpack::{FileEntry, HandedOver, Limits, OwnedFile};

use crate::file_check::{FileChecker, Ordered, ShareFiles};
use crate::layer::LayerScan;

/// What a scanner lends a layer's reader: its count of workers, busy ones
/// among them.
pub(crate) struct Helpers<'p, 's> {
    pub(crate) jobs: usize,
    /// Workers at work on layers or their files.
    pub(crate) busy: &'p AtomicUsize,
    /// Files handed to a helper, counted for [`Scanner::files_shared`](crate::Scanner::files_shared).
    pub(crate) shared: &'p AtomicU64,
    /// A detector for a helping worker.
    pub(crate) detector: &'p (dyn Fn() -> Detector<'s> + Sync),
    /// Whether layers of this scan still wait for a worker: then an idle
    /// worker should take one of them rather than help with files.
    pub(crate) layers_waiting: &'p (dyn Fn() -> bool + Sync),
}

/// How a layer's reader shares its files (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// The reader inflates and checks; idle workers take what they can.
    WhenIdle,
    /// Another thread inflates; the reader only walks and hands over.
    WalkOnly,
}

impl<'s> Helpers<'_, 's> {
    /// Runs `walk` (the reader's walk of one layer) while idle workers check
    /// the files it hands off; returns what `walk` returned and the helpers'
    /// results, once every helper is done.
    pub(crate) fn share_layer<R>(
        &self,
        limits: &Limits,
        how: Sharing,
        walk: impl FnOnce(&mut dyn ShareFiles) -> R,
    ) -> (R, Ordered) {
        let jobs = self.jobs;
        // A few files per helper, and at most half the file size limit's
        // bytes: larger files are checked where they were read, or, when
        // the reader only walks, wait alone. Helpers hold at most half of
        // the file size limit times workers (more kept two cores no busier,
        // and the peak RSS of one large layer went from 222 to 270 MiB).
        let queue = Queue::new(
            2 * jobs,
            (limits.max_file_size / 2).max(1 << 20),
            limits.max_file_size.saturating_mul(jobs as u64) / 2,
        );
        let results = Mutex::new(Vec::new());
        let walked = std::thread::scope(|scope| {
            // Closed however the walk ends (an error, a panic): helpers wait
            // for files until it is, and the scope waits for the helpers.
            let _closed = CloseOnDrop(&queue);
            let mut reader = Reader {
                scope,
                helpers: self,
                queue: &queue,
                results: &results,
                limits,
                how,
                spawned: 0,
                // The reader's own place goes to a helper when it only walks.
                max_helpers: match how {
                    Sharing::WhenIdle => jobs.saturating_sub(1),
                    Sharing::WalkOnly => jobs,
                },
            };
            if how == Sharing::WalkOnly {
                reader.spawn_helper(None);
            }
            walk(&mut reader)
        });
        let mut ordered = results.into_inner().unwrap_or_else(|p| p.into_inner());
        // Files no helper took (one failed after they were queued) are
        // checked here: none goes unchecked.
        if let Some(job) = queue.try_pop() {
            let mut detector = (self.detector)();
            for job in std::iter::once(job).chain(std::iter::from_fn(|| queue.try_pop())) {
                ordered.push(check_job(&mut detector, limits, job));
            }
        }
        (walked, ordered)
    }
}

/// The reader's side of one shared layer.
struct Reader<'scope, 'env, 's> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    helpers: &'env Helpers<'env, 's>,
    queue: &'env Queue,
    results: &'env Mutex<Ordered>,
    limits: &'env Limits,
    how: Sharing,
    spawned: usize,
    max_helpers: usize,
}

impl<'scope, 'env: 'scope, 's: 'env> Reader<'scope, 'env, 's> {
    /// Starts one more helper if a worker is idle and no layer waits for it.
    fn spawn_if_idle(&mut self) {
        if self.spawned >= self.max_helpers || (self.helpers.layers_waiting)() {
            return;
        }
        let jobs = self.helpers.jobs;
        let claimed = self
            .helpers
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |busy| {
                (busy < jobs).then_some(busy + 1)
            });
        if claimed.is_ok() {
            self.spawn_helper(Some(Release(self.helpers.busy)));
        }
    }

    /// Starts a helper in a claimed worker's place (`busy`), or in the
    /// reader's own (`None`).
    fn spawn_helper(&mut self, busy: Option<Release<'env>>) {
        let (helpers, queue, results, limits) =
            (self.helpers, self.queue, self.results, self.limits);
        queue.lock().starting += 1;
        let spawned = std::thread::Builder::new()
            .name("minehound-helper".into())
            .spawn_scoped(self.scope, move || {
                let _busy = busy;
                // A detector that cannot be made (its memory refused, say)
                // means no helper, not a failed layer: the reader checks
                // the files itself.
                let detector = catch_unwind(AssertUnwindSafe(helpers.detector));
                let _live = queue.started(detector.is_ok());
                let Ok(mut detector) = detector else {
                    return;
                };
                while let Some(job) = queue.pop() {
                    // Out of the bytes in flight however the check ends: a
                    // helper gone with its bytes counted would hold the
                    // reader back for good.
                    let _in_flight = InFlight(queue, job.data.len() as u64);
                    let result = check_job(&mut detector, limits, job);
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(result);
                }
            });
        match spawned {
            Ok(_) => self.spawned += 1,
            // No thread, no helper: the claimed worker went back with `busy`.
            Err(_) => drop(queue.started(false)),
        }
    }
}

impl<'scope, 'env: 'scope, 's: 'env> ShareFiles for Reader<'scope, 'env, 's> {
    fn hand_off<'f>(&mut self, place: u64, file: OwnedFile<'f>) -> Result<(), OwnedFile<'f>> {
        self.spawn_if_idle();
        let bytes = file.buffer.data.len() as u64;
        let queue = self.queue;
        let mut state = queue.lock();
        loop {
            // No helper (none could start): the reader checks it.
            if state.live == 0 && state.starting == 0 {
                return Err(file);
            }
            if state.live > 0 && queue.has_room(&state, bytes, self.how) {
                break;
            }
            if self.how == Sharing::WhenIdle {
                return Err(file);
            }
            // Only walking: wait for room, or for a helper to start, taking
            // on any worker that has gone idle meanwhile.
            drop(queue.wait(state));
            self.spawn_if_idle();
            state = queue.lock();
        }
        state.queued_bytes += bytes;
        state.in_flight += bytes;
        state.files.push_back(FileJob {
            place,
            path: file.path.to_string(),
            mode: file.mode,
            size: file.size,
            data: file.buffer.data,
            truncated: file.truncated,
            reservation: file.buffer.reservation.hand_over(),
        });
        drop(state);
        self.queue.changed.notify_all();
        self.helpers.shared.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Checks a handed-off file; its check's own panics are contained (see
/// [`FileChecker::check_contained`]).
fn check_job(detector: &mut Detector<'_>, limits: &Limits, job: FileJob) -> (u64, LayerScan) {
    let held = job.reservation.take_up();
    let mut part = LayerScan::default();
    FileChecker::new(detector, limits, &mut part).check_contained(&FileEntry {
        path: &job.path,
        mode: job.mode,
        size: job.size,
        data: &job.data,
        truncated: job.truncated,
        depth: 0,
    });
    // The buffer goes before its share of the budget: whoever waits for
    // those bytes finds them free.
    drop(job.data);
    drop(held);
    (job.place, part)
}

/// A file on its way to a helper, with its share of the memory budget.
struct FileJob {
    place: u64,
    path: String,
    mode: u32,
    size: u64,
    data: Vec<u8>,
    truncated: bool,
    reservation: HandedOver,
}

/// Files waiting for a helper, first in first out, closed by the reader
/// when its walk ends; and the helpers' count.
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
    max_files: usize,
    /// Bytes that may wait, past a first file.
    max_queued: u64,
    /// Bytes that may be waiting or in a helper's hands, past a first file.
    max_in_flight: u64,
}

struct QueueState {
    files: VecDeque<FileJob>,
    queued_bytes: u64,
    in_flight: u64,
    closed: bool,
    /// Helpers that take files now, and helpers starting up.
    live: usize,
    starting: usize,
}

impl QueueState {
    /// The first file waiting, out of the queued bytes.
    fn take_front(&mut self) -> Option<FileJob> {
        let file = self.files.pop_front()?;
        self.queued_bytes -= file.data.len() as u64;
        Some(file)
    }
}

impl Queue {
    fn new(max_files: usize, max_queued: u64, max_in_flight: u64) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                files: VecDeque::new(),
                queued_bytes: 0,
                in_flight: 0,
                closed: false,
                live: 0,
                starting: 0,
            }),
            changed: Condvar::new(),
            max_files: max_files.max(1),
            max_queued,
            max_in_flight,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'g>(&self, state: MutexGuard<'g, QueueState>) -> MutexGuard<'g, QueueState> {
        // Woken by every change; the timeout only guards against a wake-up
        // lost to a helper's thread ending abnormally.
        self.changed
            .wait_timeout(state, Duration::from_millis(100))
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// Whether a file of `bytes` may wait now. Only a reader that does
    /// nothing else lets a large file wait alone, and bounds the bytes in
    /// helpers' hands (a reader that checks files holds them back itself).
    fn has_room(&self, state: &QueueState, bytes: u64, how: Sharing) -> bool {
        let queued = state.queued_bytes + bytes <= self.max_queued;
        if state.files.len() >= self.max_files {
            return false;
        }
        match how {
            Sharing::WhenIdle => queued,
            Sharing::WalkOnly => {
                (queued || state.files.is_empty())
                    && (state.in_flight + bytes <= self.max_in_flight || state.in_flight == 0)
            }
        }
    }

    /// A helper has started (`live`) or failed to; the returned guard counts
    /// it out when it ends.
    fn started(&self, live: bool) -> Live<'_> {
        let mut state = self.lock();
        state.starting = state.starting.saturating_sub(1);
        state.live += usize::from(live);
        drop(state);
        self.changed.notify_all();
        Live(live.then_some(self))
    }

    /// The next file, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<FileJob> {
        let mut state = self.lock();
        loop {
            if let Some(file) = state.take_front() {
                drop(state);
                self.changed.notify_all();
                return Some(file);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A helper is done with a file of `bytes`.
    fn checked(&self, bytes: u64) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(bytes);
        drop(state);
        self.changed.notify_all();
    }

    /// The next file if there is one, without waiting.
    fn try_pop(&self) -> Option<FileJob> {
        self.lock().take_front()
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// A file's bytes in a helper's hands, counted out when dropped.
struct InFlight<'q>(&'q Queue, u64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.checked(self.1);
    }
}

/// A live helper, counted out when dropped however its thread ends.
struct Live<'q>(Option<&'q Queue>);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if let Some(queue) = self.0 {
            queue.lock().live -= 1;
            queue.changed.notify_all();
        }
    }
}

struct CloseOnDrop<'q>(&'q Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Takes one off a count when dropped: a claimed worker given back when
/// its helper or layer ends, however it ends.
pub(crate) struct Release<'b>(pub(crate) &'b AtomicUsize);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
