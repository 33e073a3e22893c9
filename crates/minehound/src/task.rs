//! Scans from async code: the blocking work runs on the scanner's own task
//! threads (a bounded pool, see [`ScannerBuilder::tasks`]) and the caller
//! awaits a future, so no async runtime's threads are blocked. The future
//! needs no particular runtime.
//!
//! [`ScannerBuilder::tasks`]: crate::ScannerBuilder::tasks

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::{CancelToken, Error, Report, ScanRequest, Scanner};

/// A scan running on the scanner's task threads; await it for the result.
/// Dropping it before it completes cancels the scan: one still queued never
/// starts, one running stops at its next block.
#[must_use = "a task is cancelled when dropped"]
pub struct ScanTask<T> {
    slot: Arc<Mutex<Slot<T>>>,
    cancel: CancelToken,
}

struct Slot<T> {
    result: Option<std::thread::Result<T>>,
    /// Whether the work has ended (its result may be taken already).
    ended: bool,
    /// Whether the task was dropped before its work ended.
    abandoned: bool,
    waker: Option<Waker>,
}

impl<T> std::fmt::Debug for ScanTask<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanTask")
            .field("cancel", &self.cancel)
            .finish_non_exhaustive()
    }
}

impl<T> ScanTask<T> {
    /// The token that cancels this task's scan.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }
}

impl<T> Future for ScanTask<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            // A panic on the scan's thread is the awaiting task's panic.
            Some(Err(panic)) => resume_unwind(panic),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for ScanTask<T> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.ended {
            slot.abandoned = true;
            self.cancel.cancel();
        }
    }
}

impl Scanner {
    /// Scans `request` on the scanner's task threads and returns a future of the
    /// report, for async code. The request's [`CancelToken`] (one is made
    /// if it has none) stops the scan, and so does dropping the future.
    ///
    /// ```
    /// # use minehound::{ScanRequest, ScannerBuilder};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // Any executor will do; this one only parks until woken.
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark {
    /// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
    /// #     }
    /// #     let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let scanner = ScannerBuilder::new().jobs(1).build()?;
    /// let request = ScanRequest::new("dir:/nonexistent".parse()?, "dir:/nonexistent");
    /// let result = block_on(async { scanner.scan_async(request).await });
    /// assert!(result.is_err(), "no such directory");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_async(&self, request: ScanRequest) -> ScanTask<Result<Report, Error>> {
        let cancel = request.cancel.clone().unwrap_or_default();
        let request = request.cancel(cancel.clone());
        self.spawn_task(cancel, move |scanner| scanner.scan(&request))
    }

    /// Runs any blocking call on this scanner (a [`scan_source`],
    /// [`scan_storage`], [`scan_layer`]) on the scanner's task threads and
    /// returns a future of its result. `cancel` is cancelled when the future
    /// is dropped before it completes; hand the same token to the call.
    ///
    /// At most [`ScannerBuilder::tasks`] calls run at once; the others wait
    /// in a queue, and one whose future is dropped while it waits never
    /// runs.
    ///
    /// [`ScannerBuilder::tasks`]: crate::ScannerBuilder::tasks
    /// [`scan_source`]: Scanner::scan_source
    /// [`scan_storage`]: Scanner::scan_storage
    /// [`scan_layer`]: Scanner::scan_layer
    pub fn spawn_task<T: Send + 'static>(
        &self,
        cancel: CancelToken,
        work: impl FnOnce(&Scanner) -> T + Send + 'static,
    ) -> ScanTask<T> {
        let slot = Arc::new(Mutex::new(Slot {
            result: None,
            ended: false,
            abandoned: false,
            waker: None,
        }));
        let scanner = self.clone();
        let done = Arc::clone(&slot);
        let job = move || {
            let abandoned = done.lock().unwrap_or_else(|e| e.into_inner()).abandoned;
            // Nobody awaits the result of a task dropped while queued.
            let result = if abandoned {
                None
            } else {
                Some(catch_unwind(AssertUnwindSafe(|| work(&scanner))))
            };
            let mut slot = done.lock().unwrap_or_else(|e| e.into_inner());
            slot.result = result;
            slot.ended = true;
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
        };
        // If no task thread can be had at all, the worker pool runs what
        // waits (this job and any other left queued).
        if let Err(jobs) = self.tasks.spawn(Box::new(job)) {
            for job in jobs {
                self.pool.spawn(job);
            }
        }
        ScanTask { slot, cancel }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceRequest;

    fn shareable<T: Send + Sync>() {}

    #[test]
    fn scanners_requests_and_tasks_cross_threads() {
        shareable::<Scanner>();
        shareable::<ScanRequest>();
        shareable::<SourceRequest>();
        shareable::<CancelToken>();
        shareable::<ScanTask<Result<Report, Error>>>();
    }
}
