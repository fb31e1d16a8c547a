//! The thread pool that runs the parallel loops of JIT-compiled kernels (`docs/abi.md`,
//! "Threads").
//!
//! Code generation outlines the body of a parallel loop into a task `int32 task(closure, lo,
//! hi)` that runs iterations `lo..hi`, and calls [`parallel_for`]`(task, closure, n, grain)`
//! to run iterations `0..n`. The range is cut into chunks of at least `grain` iterations, at
//! most four per thread (so a thread slowed by other load on the machine leaves its share to
//! the others); the calling thread and up to `threads - 1` pool workers claim chunks with an
//! atomic counter until none is left, and the call returns when every chunk has run. The
//! iterations of a parallel loop write disjoint elements and no summed index is ever split, so
//! the results do not depend on how the range is cut: they are bit-identical for any thread
//! count.
//!
//! **Thread count.** [`num_threads`]: the value [`with_num_threads`] set for the calling
//! thread (what `Program`/`Kernel` thread settings do around a call), else the
//! `EINC_NUM_THREADS` environment variable (read once), else the cores the process may run on
//! (its CPU affinity, [`std::thread::available_parallelism`]). The pool starts its workers on
//! the first call that wants them and adds workers when a later call wants more; they live as
//! long as the process.
//!
//! **Waking.** A worker that finds no job spins for up to [`SPIN`] before it sleeps on a
//! condition variable, so that the next parallel loop (of the same kernel call, or of the next
//! call) finds it awake instead of paying a wake-up of tens of microseconds: a kernel runs its
//! parallel loops one after another with short serial stretches between them.
//!
//! **Concurrent callers** each post their own job; workers help whichever job they find, and a
//! caller runs its own chunks too, so it never waits for a worker that is busy elsewhere (a
//! call completes even when every worker is taken). **After `fork()`** the child has no
//! workers: a call made in a process other than the one that started the pool runs every
//! chunk on the calling thread, without touching the pool's locks.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A task: runs iterations `lo..hi` of a parallel loop with the loop's closure; returns 0, or
/// a non-zero status that [`parallel_for`] passes on.
pub type TaskFn = unsafe extern "C" fn(closure: *const u8, lo: i64, hi: i64) -> i32;

/// The signature of [`parallel_for`], as generated code calls it.
pub type ParallelForFn =
    unsafe extern "C" fn(task: TaskFn, closure: *const u8, n: i64, grain: i64) -> i32;

/// The most threads a call may ask for (a bound on the pool's size).
pub const MAX_THREADS: usize = 256;

/// Chunks per thread: more than one, so that a thread slowed by other load leaves the rest of
/// its share to the others.
const CHUNKS_PER_THREAD: i64 = 4;

/// How long a worker without a job spins, watching for the next one, before it sleeps.
pub const SPIN: Duration = Duration::from_micros(500);

/// Stack size of a pool worker: a task's scoped buffers take at most 1 MiB (`docs/ir.md`).
const WORKER_STACK: usize = 4 << 20;

thread_local! {
    /// The thread count set for calls made on this thread ([`with_num_threads`]).
    static THREADS: Cell<Option<usize>> = const { Cell::new(None) };
    /// [`pooled_calls`].
    static POOLED_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// The thread count when nothing is set for the calling thread: `EINC_NUM_THREADS` if it holds
/// a positive integer, else the CPU affinity count.
pub fn default_num_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("EINC_NUM_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(MAX_THREADS)
    })
}

/// How many threads (the caller included) a parallel loop started on this thread uses.
pub fn num_threads() -> usize {
    THREADS.with(Cell::get).unwrap_or_else(default_num_threads)
}

/// Runs `f` with the thread count of calls made on this thread set to `threads` (`None`: the
/// default), restoring the previous setting afterwards, also when `f` panics.
pub fn with_num_threads<R>(threads: Option<usize>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREADS.with(|t| t.set(self.0));
        }
    }
    let clamped = threads.map(|n| n.clamp(1, MAX_THREADS));
    let _restore = Restore(THREADS.with(|t| t.replace(clamped)));
    f()
}

/// How many parallel loops started on the calling thread have run on more than one thread
/// (a diagnostic: tests check with it that a loop was run by the pool).
pub fn pooled_calls() -> u64 {
    POOLED_CALLS.with(Cell::get)
}

/// One call of [`parallel_for`]: the chunks still to claim and to finish.
struct Job {
    task: TaskFn,
    closure: *const u8,
    n: i64,
    chunk: i64,
    chunks: i64,
    /// The next chunk to claim.
    next: AtomicI64,
    /// Chunks not finished yet.
    remaining: AtomicI64,
    /// The first non-zero status a task returned (0 while none has).
    status: AtomicI32,
    /// Signalled when `remaining` reaches 0.
    done: Mutex<bool>,
    finished: Condvar,
}

// SAFETY: `closure` is only read, by tasks, while the call that posted the job waits for them
// (the generated code keeps it read-only while tasks run); the task function is thread-safe
// by construction (its iterations write disjoint elements).
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

impl Job {
    /// Claims and runs chunks until none is left.
    fn run_chunks(&self) {
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunks {
                return;
            }
            let lo = c * self.chunk;
            let hi = (lo + self.chunk).min(self.n);
            // SAFETY: the task runs disjoint iterations `lo..hi` of its loop, with the closure
            // its kernel built for it, which lives until every chunk has finished.
            let status = unsafe { (self.task)(self.closure, lo, hi) };
            if status != 0 {
                let _ =
                    self.status
                        .compare_exchange(0, status, Ordering::AcqRel, Ordering::Acquire);
            }
            if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
                *done = true;
                self.finished.notify_all();
            }
        }
    }

    /// Waits until every chunk has finished.
    fn wait(&self) {
        // Most chunks finish soon after the caller's own: spin before sleeping.
        if spin_until(|| self.remaining.load(Ordering::Acquire) == 0) {
            return;
        }
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = self.finished.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The workers and the jobs they may help with.
struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    /// The length of `state.jobs` (written under the lock), which spinning workers watch.
    queued: AtomicUsize,
    /// The process that started the pool (see the module doc on `fork()`).
    pid: u32,
}

struct PoolState {
    /// Jobs with chunks that workers may claim, each posted once per helper it wants.
    jobs: VecDeque<Arc<Job>>,
    workers: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            jobs: VecDeque::new(),
            workers: 0,
        }),
        work: Condvar::new(),
        queued: AtomicUsize::new(0),
        pid: std::process::id(),
    })
}

impl Pool {
    /// Posts `job` for `helpers` workers, starting workers until there are that many.
    fn post(&'static self, job: &Arc<Job>, helpers: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.workers < helpers {
            let spawned = std::thread::Builder::new()
                .name("einc-worker".into())
                .stack_size(WORKER_STACK)
                .spawn(move || self.work_loop());
            if spawned.is_err() {
                // No more threads: the caller and the workers there are run the chunks.
                break;
            }
            state.workers += 1;
        }
        for _ in 0..helpers.min(state.workers) {
            state.jobs.push_back(Arc::clone(job));
        }
        self.queued.store(state.jobs.len(), Ordering::Release);
        drop(state);
        self.work.notify_all();
    }

    fn work_loop(&self) {
        loop {
            spin_until(|| self.queued.load(Ordering::Acquire) != 0);
            let job = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(job) = state.jobs.pop_front() {
                        self.queued.store(state.jobs.len(), Ordering::Release);
                        break job;
                    }
                    state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            };
            job.run_chunks();
        }
    }
}

/// Spins until `ready()` holds (returns true) or [`SPIN`] has passed (returns false).
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return false;
        }
    }
}

/// Runs iterations `0..n` of a parallel loop: `task(closure, lo, hi)` for disjoint ranges
/// covering `0..n`, each at least `grain` iterations long (but the last), on up to
/// [`num_threads`] threads, the caller's included. Returns 0, or the first non-zero status a
/// task returned.
///
/// # Safety
/// `task` must be safe to call on any thread for disjoint ranges of `0..n` at once, with
/// `closure`, which must stay valid (and unchanged) until this returns.
pub unsafe extern "C" fn parallel_for(task: TaskFn, closure: *const u8, n: i64, grain: i64) -> i32 {
    if n <= 0 {
        return 0;
    }
    let threads = num_threads() as i64;
    let grain = grain.max(1);
    let per_chunk = |count: i64| (n - 1) / count + 1;
    let chunk = grain.max(per_chunk(threads.saturating_mul(CHUNKS_PER_THREAD)));
    let chunks = per_chunk(chunk);
    let helpers = (threads - 1).min(chunks - 1);
    if helpers <= 0 || pool().pid != std::process::id() {
        // SAFETY: forwarded from the caller; the whole range on this thread.
        return unsafe { task(closure, 0, n) };
    }
    let job = Arc::new(Job {
        task,
        closure,
        n,
        chunk,
        chunks,
        next: AtomicI64::new(0),
        remaining: AtomicI64::new(chunks),
        status: AtomicI32::new(0),
        done: Mutex::new(false),
        finished: Condvar::new(),
    });
    POOLED_CALLS.with(|c| c.set(c.get() + 1));
    pool().post(&job, helpers as usize);
    job.run_chunks();
    job.wait();
    job.status.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// The closure of the test task: one counter per iteration.
    struct Counts {
        hits: Vec<AtomicU64>,
        threads: Mutex<std::collections::HashSet<std::thread::ThreadId>>,
        fail_at: i64,
        pause: std::time::Duration,
    }

    unsafe extern "C" fn count(closure: *const u8, lo: i64, hi: i64) -> i32 {
        // SAFETY: the tests pass a `Counts`.
        let c = unsafe { &*closure.cast::<Counts>() };
        for i in lo..hi {
            c.hits[i as usize].fetch_add(1, Ordering::Relaxed);
        }
        c.threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
        std::thread::sleep(c.pause);
        i32::from(lo <= c.fail_at && c.fail_at < hi) * 42
    }

    fn run(n: i64, grain: i64, threads: usize, fail_at: i64, pause_us: u64) -> (Counts, i32) {
        let c = Counts {
            hits: (0..n).map(|_| AtomicU64::new(0)).collect(),
            threads: Mutex::new(Default::default()),
            fail_at,
            pause: std::time::Duration::from_micros(pause_us),
        };
        let status = with_num_threads(Some(threads), || unsafe {
            parallel_for(count, (&c as *const Counts).cast(), n, grain)
        });
        (c, status)
    }

    #[test]
    fn every_iteration_runs_once_for_any_thread_count() {
        for threads in [1, 2, 3, 5] {
            for (n, grain) in [(0, 1), (1, 1), (7, 1), (100, 3), (64, 64), (65, 64)] {
                let (c, status) = run(n, grain, threads, -1, 100);
                assert_eq!(status, 0);
                assert!(
                    c.hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "n {n} grain {grain} threads {threads}"
                );
                let used = c.threads.lock().unwrap().len();
                // At most `threads` threads, and one alone when a grain covers everything.
                assert!(used <= threads.max(1), "{used} threads for {threads}");
                if n <= grain {
                    assert!(used <= 1);
                }
            }
        }
    }

    #[test]
    fn a_task_status_is_returned() {
        let (c, status) = run(40, 1, 3, 17, 100);
        assert_eq!(status, 42);
        assert!(c.hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn several_threads_help_a_long_loop() {
        // Eight chunks of 20 ms: a worker wakes long before the caller could run them all.
        let before = pooled_calls();
        let (c, _) = run(64, 1, 2, -1, 20_000);
        assert_eq!(pooled_calls(), before + 1);
        assert_eq!(c.threads.lock().unwrap().len(), 2);
    }

    #[test]
    fn concurrent_callers_complete() {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5 {
                        let (c, status) = run(50, 2, 3, -1, 10);
                        assert_eq!(status, 0);
                        assert!(c.hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    #[test]
    fn the_setting_is_scoped_to_the_call() {
        with_num_threads(Some(3), || {
            assert_eq!(num_threads(), 3);
            with_num_threads(None, || assert_eq!(num_threads(), default_num_threads()));
            assert_eq!(num_threads(), 3);
        });
        assert_eq!(num_threads(), default_num_threads());
        with_num_threads(Some(0), || assert_eq!(num_threads(), 1));
    }
}
