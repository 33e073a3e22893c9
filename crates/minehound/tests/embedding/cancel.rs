//! Cancelling a layer scan, dropping its task, and the bounded task pool.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use minehound::{CancelToken, Error, ErrorKind, LayerRequest, ScannerBuilder};

use crate::{runtime, scanner, serial};

/// What a [`BigLayer`] tells the test about its reader.
#[derive(Default)]
struct Seen {
    /// Bytes handed to the scan.
    read: AtomicU64,
    /// The scan dropped the reader.
    dropped: AtomicBool,
}

/// A plain tar of `files` text files of 1 MiB each, generated as it is read
/// (8 GiB needs no memory): a layer far too large to scan in a second.
struct BigLayer {
    files: u64,
    file: u64,
    /// Position in the current record (header, then data).
    at: usize,
    header: [u8; 512],
    data: Arc<Vec<u8>>,
    trailer_left: usize,
    seen: Arc<Seen>,
}

const FILE_SIZE: usize = 1 << 20;

impl BigLayer {
    fn new(files: u64) -> (BigLayer, Arc<Seen>) {
        let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n";
        let data: Vec<u8> = line.iter().copied().cycle().take(FILE_SIZE).collect();
        let seen = Arc::new(Seen::default());
        let mut layer = BigLayer {
            files,
            file: 0,
            at: 0,
            header: [0; 512],
            data: Arc::new(data),
            trailer_left: 1024,
            seen: Arc::clone(&seen),
        };
        layer.make_header();
        (layer, seen)
    }

    fn make_header(&mut self) {
        let mut header = tar::Header::new_gnu();
        header
            .set_path(format!("srv/data/file-{}.txt", self.file))
            .unwrap();
        header.set_size(FILE_SIZE as u64);
        header.set_mode(0o644);
        header.set_cksum();
        self.header.copy_from_slice(header.as_bytes());
    }
}

impl Read for BigLayer {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = if self.file < self.files {
            let n = if self.at < 512 {
                let n = out.len().min(512 - self.at);
                out[..n].copy_from_slice(&self.header[self.at..self.at + n]);
                n
            } else {
                let from = self.at - 512;
                let n = out.len().min(FILE_SIZE - from);
                out[..n].copy_from_slice(&self.data[from..from + n]);
                n
            };
            self.at += n;
            if self.at == 512 + FILE_SIZE {
                self.file += 1;
                self.at = 0;
                self.make_header();
            }
            n
        } else {
            let n = out.len().min(self.trailer_left);
            out[..n].fill(0);
            self.trailer_left -= n;
            n
        };
        self.seen.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Drop for BigLayer {
    fn drop(&mut self) {
        self.seen.dropped.store(true, Ordering::SeqCst);
    }
}

/// Waits up to `limit` for `done`; returns how long it took.
fn wait_for(limit: Duration, done: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_cancelled_layer_scan_stops_within_a_second() {
    let _serial = serial();
    let (layer, seen) = BigLayer::new(8 * 1024); // 8 GiB
    let cancel = CancelToken::new();
    let request = LayerRequest::new("application/octet-stream").cancel(cancel.clone());
    let task = scanner().scan_layer_async(layer, request);
    let runtime = runtime();
    let started = wait_for(Duration::from_secs(30), || {
        seen.read.load(Ordering::Relaxed) > 64 << 20
    });
    assert!(started.is_some(), "the scan never got going");
    cancel.cancel();
    let cancelled_at = Instant::now();
    let read_at_cancel = seen.read.load(Ordering::Relaxed);
    let result = runtime.block_on(task);
    let stopped = cancelled_at.elapsed();
    let read = seen.read.load(Ordering::Relaxed);
    let after = read - read_at_cancel;
    eprintln!(
        "cancelled after {} MiB of 8 GiB; stopped {:?} and {} KiB after the cancel",
        read_at_cancel >> 20,
        stopped,
        after >> 10
    );
    assert!(
        stopped < Duration::from_secs(1),
        "stopped after {stopped:?}"
    );
    // It stopped at its next block, not after reading on for a while.
    assert!(
        after <= 4 << 20,
        "{} KiB read after the cancel",
        after >> 10
    );
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{}", err.chain());
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(seen.dropped.load(Ordering::SeqCst));
    assert!(read < 8 << 30);
}

#[test]
fn dropping_an_unfinished_layer_task_stops_it_and_frees_its_task_thread() {
    let _serial = serial();
    // One task thread: the second scan waits for the first.
    let scanner = ScannerBuilder::new().jobs(1).tasks(1).build().unwrap();
    let (first, first_seen) = BigLayer::new(8 * 1024);
    let (second, second_seen) = BigLayer::new(8 * 1024);
    let first_task = scanner.scan_layer_async(first, LayerRequest::new(""));
    let second_task = scanner.scan_layer_async(second, LayerRequest::new(""));
    assert!(
        wait_for(Duration::from_secs(30), || first_seen
            .read
            .load(Ordering::Relaxed)
            > 0)
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        second_seen.read.load(Ordering::Relaxed),
        0,
        "a second task ran beside the first on a pool of one"
    );

    drop(first_task);
    let stopped = wait_for(Duration::from_secs(1), || {
        first_seen.dropped.load(Ordering::SeqCst)
    });
    eprintln!("dropped task's reader released after {stopped:?}");
    assert!(stopped.is_some(), "the dropped task still reads");
    let read_then = first_seen.read.load(Ordering::Relaxed);
    // Its thread goes to the next task in the queue.
    assert!(
        wait_for(Duration::from_secs(5), || second_seen
            .read
            .load(Ordering::Relaxed)
            > 0)
        .is_some()
    );
    assert_eq!(first_seen.read.load(Ordering::Relaxed), read_then);

    // A task dropped while queued never starts.
    let (queued, queued_seen) = BigLayer::new(1);
    let queued_task = scanner.scan_layer_async(queued, LayerRequest::new(""));
    drop(queued_task);
    drop(second_task);
    assert!(
        wait_for(Duration::from_secs(5), || queued_seen
            .dropped
            .load(Ordering::SeqCst))
        .is_some()
    );
    assert_eq!(queued_seen.read.load(Ordering::Relaxed), 0);
}

/// Where the readers of [`Gated`] layers wait, counting how many read at
/// once.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Readers that have started and not finished.
    reading: usize,
    /// The most that ever read at once.
    most: usize,
    open: bool,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) {
        self.lock().open = true;
        self.changed.notify_all();
    }
}

/// A small layer whose first read waits at the gate: a task reading it
/// holds its task thread until the gate opens.
struct Gated {
    layer: std::io::Cursor<Vec<u8>>,
    gate: Arc<Gate>,
    started: bool,
}

impl Read for Gated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if !self.started {
            self.started = true;
            let mut state = self.gate.lock();
            state.reading += 1;
            state.most = state.most.max(state.reading);
            // Bounded, so a test that fails does not hang.
            let (state, _) = self
                .gate
                .changed
                .wait_timeout_while(state, Duration::from_secs(30), |s| !s.open)
                .unwrap_or_else(|p| p.into_inner());
            drop(state);
        }
        self.layer.read(out)
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        if self.started {
            self.gate.lock().reading -= 1;
        }
    }
}

#[test]
fn many_tasks_share_the_scanners_task_threads() {
    let _serial = serial();
    let scanner = ScannerBuilder::new().jobs(1).tasks(2).build().unwrap();
    let layer = minehound_testdata::gzip(&minehound_testdata::tar_bytes(&[
        minehound_testdata::Entry::file("/etc/motd", "welcome\n"),
    ]));
    let gate = Arc::new(Gate::default());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let reader = Gated {
                layer: std::io::Cursor::new(layer.clone()),
                gate: Arc::clone(&gate),
                started: false,
            };
            scanner.scan_layer_async(reader, LayerRequest::new(""))
        })
        .collect();
    // The pool fills up ...
    let full = wait_for(Duration::from_secs(30), || gate.lock().reading >= 2);
    assert!(
        full.is_some(),
        "two tasks never read at once on a pool of 2"
    );
    // ... and nothing more starts, however long the first ones take.
    std::thread::sleep(Duration::from_millis(300));
    let most = gate.lock().most;
    gate.open();
    let runtime = runtime();
    for task in tasks {
        assert_eq!(runtime.block_on(task).unwrap().files, 1);
    }
    eprintln!("16 tasks on a pool of 2: at most {most} read at once");
    assert_eq!(most, 2, "{most} tasks read at once on a pool of 2");
    assert_eq!(gate.lock().most, 2);
    assert_eq!(gate.lock().reading, 0);
}
