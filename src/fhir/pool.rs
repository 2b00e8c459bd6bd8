//! The parser threads: where fhirbolt runs, off the event loop.
//!
//! fhirbolt recurses once per nesting level with large frames, and version 0.4 panics on some
//! malformed input. An actix worker has a 2 MiB stack and must never block; so every fhirbolt
//! call runs as a job on one of a few long-lived threads with a generous stack
//! ([`STACK_SIZE`]), its panics caught, while the request awaits the answer. The queue is
//! bounded: when [`QUEUE`] jobs are waiting, a new one is refused at once (the request is answered
//! 503 `transient`), so a flood of bodies cannot pile up memory or latency.
//!
//! One pool serves the process (created on first use, as many threads as cores, at least 2).
//! The threads take turns waiting on one tokio channel (`blocking_recv`), so an idle thread parks
//! at once instead of yielding the CPU a few times first as crossbeam's and std's channels do.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::mpsc::Sender;

use crate::fhir::outcome::{Issue, IssueCode};

/// Stack of each parser thread. A stack overflow aborts the whole process and cannot be caught,
/// and fhirbolt's frames are large: in a debug build 63 nested extensions (XML depth 64) need
/// about 3 MiB. 16 MiB is address space, not memory: pages are only committed as the parser
/// touches them.
pub const STACK_SIZE: usize = 16 * 1024 * 1024;

/// Jobs that may wait for a thread before new ones are refused.
pub const QUEUE: usize = 256;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Sender<Job>,
}

fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 16);
        let (jobs, queue) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let started = std::thread::Builder::new()
                .name(format!("fhir-parse-{n}"))
                .stack_size(STACK_SIZE)
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting, never while parsing.
                        let next = queue
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .blocking_recv();
                        let Some(job) = next else { break };
                        job();
                    }
                });
            if started.is_err() {
                return None;
            }
        }
        Some(Pool { jobs })
    })
    .as_ref()
}

/// Runs `parse` on a parser thread and waits for it without blocking the caller's thread (an
/// actix worker awaits it).
///
/// # Errors
/// The job's own issue; `structure` when it panicked (the payload, which may quote the body, is
/// dropped unread); `transient` (the request is answered 503) when the queue is full or no parser
/// thread could be started.
pub async fn run<T: Send + 'static>(
    parse: impl FnOnce() -> Result<T, Issue> + Send + 'static,
) -> Result<T, Issue> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    submit(parse, move |result| {
        let _ = answer.send(result);
    })?;
    answered.await.map_err(|_| could_not_be_parsed())?
}

/// [`run`] for callers outside an async runtime (the command line, benchmarks, tests): blocks the
/// calling thread until the job is done.
///
/// # Errors
/// As [`run`].
pub fn run_blocking<T: Send + 'static>(
    parse: impl FnOnce() -> Result<T, Issue> + Send + 'static,
) -> Result<T, Issue> {
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    submit(parse, move |result| {
        let _ = answer.send(result);
    })?;
    answered.recv().map_err(|_| could_not_be_parsed())?
}

fn submit<T: Send + 'static>(
    parse: impl FnOnce() -> Result<T, Issue> + Send + 'static,
    deliver: impl FnOnce(Result<T, Issue>) + Send + 'static,
) -> Result<(), Issue> {
    let pool = pool().ok_or_else(busy)?;
    let job: Job = Box::new(move || {
        let result =
            catch_unwind(AssertUnwindSafe(parse)).unwrap_or_else(|_| Err(could_not_be_parsed()));
        deliver(result);
    });
    // Full or closed: either way this request cannot be parsed now.
    pool.jobs.try_send(job).map_err(|_| busy())
}

fn busy() -> Issue {
    Issue::general(
        IssueCode::Transient,
        "the server is busy parsing other requests and could not start on this one; retry \
         shortly",
    )
}

fn could_not_be_parsed() -> Issue {
    Issue::general(IssueCode::Structure, "the resource could not be parsed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_big_stacks_and_panics_become_issues() {
        let depth = run(|| {
            // Uses far more stack than an actix worker has.
            fn deep(n: usize) -> usize {
                // A kilobyte the optimiser must keep on the stack at every level.
                let frame = std::hint::black_box([0u8; 1024]);
                if n == 0 {
                    usize::from(frame[0])
                } else {
                    1 + deep(n - 1) + usize::from(std::hint::black_box(frame)[1])
                }
            }
            Ok(deep(3 * 1024))
        })
        .await
        .unwrap();
        assert_eq!(depth, 3 * 1024);
        let panicked = run::<()>(|| panic!("quotes the body: PHIMARK"))
            .await
            .unwrap_err();
        assert_eq!(panicked.code, IssueCode::Structure);
        assert!(!panicked.diagnostics.contains("PHIMARK"));
        assert_eq!(run_blocking(|| Ok(7)).unwrap(), 7);
    }
}
