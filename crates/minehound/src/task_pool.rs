//! The scanner's own threads for blocking work started from async code
//! ([`Scanner::spawn_task`](crate::Scanner::spawn_task) and the calls built
//! on it): at most a fixed number run at once, the rest wait in a queue.
//! Threads start when work arrives and end after a while without any, so an
//! idle scanner holds none.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a thread waits for work before it ends.
const IDLE: Duration = Duration::from_secs(10);

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Starts a thread running the given loop.
type Starter = Box<dyn Fn(Job) -> std::io::Result<()> + Send + Sync>;

/// A bounded pool of threads running queued jobs in order.
pub(crate) struct TaskPool {
    limit: usize,
    state: Mutex<State>,
    work: Condvar,
    start: Starter,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Threads alive, or being started.
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
}

impl std::fmt::Debug for TaskPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskPool")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl TaskPool {
    /// A pool of at most `limit` threads (at least one).
    pub(crate) fn new(limit: usize) -> Arc<TaskPool> {
        Self::with_starter(
            limit,
            Box::new(|run| {
                std::thread::Builder::new()
                    .name("minehound-task".into())
                    .spawn(run)
                    .map(drop)
            }),
        )
    }

    fn with_starter(limit: usize, start: Starter) -> Arc<TaskPool> {
        Arc::new(TaskPool {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            start,
        })
    }

    /// The most threads that run at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Queues `job`. When no thread runs and none can be started, hands
    /// back every job still queued (this one and any another caller queued
    /// meanwhile, whose own start failed too), so the caller can run them
    /// some other way: no job is ever left queued with no thread to take
    /// it.
    pub(crate) fn spawn(self: &Arc<Self>, job: Job) -> Result<(), Vec<Job>> {
        let mut state = self.lock();
        state.queue.push_back(job);
        if state.idle > 0 {
            self.work.notify_one();
        }
        if state.idle >= state.queue.len() || state.threads >= self.limit {
            return Ok(());
        }
        state.threads += 1;
        drop(state);
        let pool = Arc::clone(self);
        if (self.start)(Box::new(move || pool.run())).is_ok() {
            return Ok(());
        }
        let mut state = self.lock();
        state.threads -= 1;
        if state.threads == 0 && !state.queue.is_empty() {
            // Nobody will take them: give them all back.
            return Err(state.queue.drain(..).collect());
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A thread's loop: jobs until the queue stays empty for [`IDLE`].
    fn run(&self) {
        loop {
            let mut state = self.lock();
            let job = loop {
                if let Some(job) = state.queue.pop_front() {
                    break job;
                }
                state.idle += 1;
                let (guard, waited) = self
                    .work
                    .wait_timeout(state, IDLE)
                    .unwrap_or_else(|p| p.into_inner());
                state = guard;
                state.idle -= 1;
                if waited.timed_out() && state.queue.is_empty() {
                    state.threads -= 1;
                    return;
                }
            };
            drop(state);
            // A job catches its own panics (see `spawn_task`); one that
            // does not must not take the thread's count with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// Waits until `most` reaches `n` or `limit` passes: a barrier that
    /// cannot hang a test whose pool runs fewer than `n` jobs at once.
    fn meet(most: &AtomicUsize, n: usize, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while most.load(Ordering::SeqCst) < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn never_runs_more_than_its_limit_at_once() {
        let pool = TaskPool::new(2);
        let (running, most, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        for _ in 0..8 {
            let (running, most, done) = (running.clone(), most.clone(), done.clone());
            let job: Job = Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // The first job waits for a second to run beside it, so the
                // pool is seen at its limit, not by the luck of timing.
                meet(&most, 2, Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            });
            assert!(pool.spawn(job).is_ok());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while done.load(Ordering::SeqCst) < 8 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(done.load(Ordering::SeqCst), 8);
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(pool.lock().threads <= 2);
    }

    #[test]
    fn when_no_thread_starts_every_queued_job_is_handed_back() {
        // Two spawns fail to start a thread at once: the first start is
        // held until the second spawn has queued its job and failed too.
        let (entered, first_entered) = mpsc::channel::<()>();
        let (release, first_released) = mpsc::channel::<()>();
        let first_released = Mutex::new(first_released);
        let starts = AtomicUsize::new(0);
        let pool = TaskPool::with_starter(
            2,
            Box::new(move |_run| {
                if starts.fetch_add(1, Ordering::SeqCst) == 0 {
                    entered.send(()).unwrap();
                    let _ = first_released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(10));
                }
                Err(std::io::Error::other("no threads today"))
            }),
        );
        let job = |ran: &Arc<AtomicUsize>| -> Job {
            let ran = Arc::clone(ran);
            Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        let ran = Arc::new(AtomicUsize::new(0));
        let first = {
            let (pool, job) = (Arc::clone(&pool), job(&ran));
            std::thread::spawn(move || pool.spawn(job))
        };
        first_entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the first spawn tries to start a thread");
        let second = pool.spawn(job(&ran));
        release.send(()).unwrap();
        let first = first.join().unwrap();
        let handed_back: Vec<Job> = [first, second]
            .into_iter()
            .filter_map(Result::err)
            .flatten()
            .collect();
        assert_eq!(handed_back.len(), 2, "a job was left queued with no thread");
        assert!(pool.lock().queue.is_empty());
        assert_eq!(pool.lock().threads, 0);
        for job in handed_back {
            job();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }
}
