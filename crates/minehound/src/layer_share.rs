//! One layer's files checked by every idle worker, not only by the one that
//! reads the layer: machine-learning images carry their weight in one or two
//! large layers, and a layer read by one thread kept the other cores idle.
//!
//! The reader hands a file to the others only when one of them has started,
//! the queue has room and the memory budget has room for a copy of the file
//! right now; otherwise it checks the file itself. So memory stays within the
//! budget, and a busy machine works exactly as before. Archives are always
//! opened by the reader (their members draw on one budget in layer order).
//! Every result carries its file's place in the layer and the layer's
//! results are merged in that order: the report is the one a single thread
//! would write.
//!
//! Helpers are threads of their own, started only while the scanner has an
//! idle worker (they take its place in the count of busy workers, so
//! `--jobs` still bounds the threads at work). Not tasks of the worker pool:
//! a reader waiting there for its helpers could be handed another scan's
//! layer, one that waits for a layer this very reader holds.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use minehound_detect::Detector;
use minehound_unpack::{FileEntry, HandedOver, Limits};

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

impl<'s> Helpers<'_, 's> {
    /// Runs `walk` (the reader's walk of one layer) while idle workers check
    /// the files it hands off; returns what `walk` returned and the helpers'
    /// results, once every helper is done.
    pub(crate) fn share_layer<R>(
        &self,
        limits: &Limits,
        walk: impl FnOnce(&mut dyn ShareFiles) -> R,
    ) -> (R, Ordered) {
        let jobs = self.jobs;
        // A few files per helper, and at most half the file size limit's
        // bytes: large files are checked where they were read, so memory
        // grows by no more than that and one file per helper.
        let queue = Queue::new(2 * jobs, (limits.max_file_size / 2).max(1 << 20));
        let results = Mutex::new(Vec::new());
        // Helpers able to take files now.
        let live = AtomicUsize::new(0);
        let walked = std::thread::scope(|scope| {
            let mut sharing = Sharing {
                scope,
                helpers: self,
                queue: &queue,
                results: &results,
                live: &live,
                limits,
                spawned: 0,
                max_helpers: jobs.saturating_sub(1),
                jobs,
            };
            // Closed however the walk ends (an error, a panic): helpers wait
            // for files until it is, and the scope waits for the helpers.
            let _closed = CloseOnDrop(&queue);
            walk(&mut sharing)
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
struct Sharing<'scope, 'env, 's> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    helpers: &'env Helpers<'env, 's>,
    queue: &'env Queue,
    results: &'env Mutex<Ordered>,
    live: &'env AtomicUsize,
    limits: &'env Limits,
    spawned: usize,
    max_helpers: usize,
    jobs: usize,
}

impl<'scope, 'env: 'scope, 's: 'env> Sharing<'scope, 'env, 's> {
    /// Starts one more helper if a worker is idle and no layer waits for it.
    fn spawn_if_idle(&mut self) {
        if self.spawned >= self.max_helpers || (self.helpers.layers_waiting)() {
            return;
        }
        let jobs = self.jobs;
        let claimed = self
            .helpers
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |busy| {
                (busy < jobs).then_some(busy + 1)
            });
        if claimed.is_err() {
            return;
        }
        let (helpers, queue, results, live, limits) = (
            self.helpers,
            self.queue,
            self.results,
            self.live,
            self.limits,
        );
        let busy = Release(helpers.busy);
        let spawned = std::thread::Builder::new()
            .name("minehound-helper".into())
            .spawn_scoped(self.scope, move || {
                let _busy = busy;
                // A detector that cannot be made (its memory refused, say)
                // means no helper, not a failed layer: the reader checks
                // the files itself.
                let Ok(mut detector) = catch_unwind(AssertUnwindSafe(helpers.detector)) else {
                    return;
                };
                live.fetch_add(1, Ordering::SeqCst);
                let _live = Release(live);
                while let Some(job) = queue.pop() {
                    let result = check_job(&mut detector, limits, job);
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(result);
                }
            });
        // No thread, no helper: the claimed worker went back with `busy`.
        if spawned.is_ok() {
            self.spawned += 1;
        }
    }
}

impl<'scope, 'env: 'scope, 's: 'env> ShareFiles for Sharing<'scope, 'env, 's> {
    fn hand_off(&mut self, place: u64, file: &FileEntry<'_>) -> bool {
        self.spawn_if_idle();
        let bytes = file.data.len() as u64;
        if self.live.load(Ordering::SeqCst) == 0 || !self.queue.has_room(bytes) {
            return false;
        }
        let Some(reservation) = self.limits.memory_budget.try_reserve(bytes) else {
            return false;
        };
        self.queue.push(FileJob {
            place,
            path: file.path.to_string(),
            mode: file.mode,
            size: file.size,
            data: file.data.to_vec(),
            truncated: file.truncated,
            reservation: reservation.hand_over(),
        });
        self.helpers.shared.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Checks a handed-off file; its check's own panics are contained (see
/// [`FileChecker::check_contained`]).
fn check_job(detector: &mut Detector<'_>, limits: &Limits, job: FileJob) -> (u64, LayerScan) {
    let _held = job.reservation.take_up();
    let mut part = LayerScan::default();
    FileChecker::new(detector, limits, &mut part).check_contained(&FileEntry {
        path: &job.path,
        mode: job.mode,
        size: job.size,
        data: &job.data,
        truncated: job.truncated,
        depth: 0,
    });
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

/// Files waiting for a helper: bounded in count and bytes, first in first
/// out, closed by the reader when its walk ends.
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
    max_files: usize,
    max_bytes: u64,
}

struct QueueState {
    files: VecDeque<FileJob>,
    bytes: u64,
    closed: bool,
}

impl Queue {
    fn new(max_files: usize, max_bytes: u64) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                files: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            max_files: max_files.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a file of `bytes` may wait now.
    fn has_room(&self, bytes: u64) -> bool {
        let state = self.lock();
        state.files.len() < self.max_files && state.bytes + bytes <= self.max_bytes
    }

    fn push(&self, file: FileJob) {
        let mut state = self.lock();
        state.bytes += file.data.len() as u64;
        state.files.push_back(file);
        drop(state);
        self.changed.notify_one();
    }

    /// The next file, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<FileJob> {
        let mut state = self.lock();
        loop {
            if let Some(file) = state.files.pop_front() {
                state.bytes -= file.data.len() as u64;
                return Some(file);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The next file if there is one, without waiting.
    fn try_pop(&self) -> Option<FileJob> {
        let mut state = self.lock();
        let file = state.files.pop_front()?;
        state.bytes -= file.data.len() as u64;
        Some(file)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
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
