//! The thread pool that runs the matrix products' panels.
//!
//! Its size comes from `BACKPROP_RS_NUM_THREADS`, read on first use, or else from
//! the number of cores, and can be changed with [`set_num_threads`]. Work is
//! split by shape alone, never by thread count, so results are bitwise the same
//! on any number of threads.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rayon::{ThreadPool, ThreadPoolBuilder, Yield};

use crate::error::{Error, Result};

/// The environment variable that sets the initial thread count.
pub const ENV_VAR: &str = "BACKPROP_RS_NUM_THREADS";

/// The largest thread count accepted: far above any core count this serves,
/// far below what would exhaust the system starting threads.
pub const MAX_THREADS: usize = 1024;

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

fn build(threads: usize) -> Result<Arc<ThreadPool>> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("backprop_rs-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::new(format!("cannot start {threads} threads: {e}")))
}

/// The thread count [`ENV_VAR`] asks for: `None` when it is unset, an error
/// naming its value when that is not an integer from 1 to [`MAX_THREADS`].
///
/// # Errors
///
/// The value as found, when it is set but is not such an integer.
pub fn requested_threads() -> std::result::Result<Option<usize>, String> {
    let Some(value) = std::env::var_os(ENV_VAR) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(Some(n)),
        _ => Err(text.into_owned()),
    }
}

/// The usable cores, asked of the system once: the question reads the
/// process's affinity and cgroup files, about 30 us each time.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The requested count, or else (also when the request is invalid) one thread
/// per usable core.
fn default_threads() -> usize {
    requested_threads().ok().flatten().unwrap_or_else(cores)
}

fn pool() -> Arc<ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
        return Arc::clone(p);
    }
    let mut slot = POOL.write().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        // If the requested count cannot be started, fall back to one thread.
        *slot = Some(
            build(default_threads())
                .or_else(|_| build(1))
                .expect("one thread"),
        );
    }
    Arc::clone(slot.as_ref().expect("set above"))
}

/// Sets the number of threads used from the next call on.
///
/// # Errors
///
/// If `threads` is zero or above [`MAX_THREADS`], or the threads cannot be
/// started.
pub fn set_num_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::new("threads must be at least 1; got 0"));
    }
    if threads > MAX_THREADS {
        return Err(Error::new(format!(
            "threads must be at most {MAX_THREADS}; got {threads}"
        )));
    }
    let new = build(threads)?;
    *POOL.write().unwrap_or_else(PoisonError::into_inner) = Some(new);
    Ok(())
}

/// The number of threads in use.
#[must_use]
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` on the pool, so that the parallel work inside it forks and joins
/// without waking the calling thread each time.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Runs `f` on the calling thread when `serial` (work with nothing to share
/// out, where waking a sleeping pool thread would cost more than it saves),
/// else on the pool with the other pool threads kept awake until it returns
/// (see [`awake`]).
pub fn run_unless<R: Send>(serial: bool, f: impl FnOnce() -> R + Send) -> R {
    if serial {
        f()
    } else {
        run(|| awake(f))
    }
}

/// How long [`awake`] waits for its pollers to start before it runs anyway.
const START_WAIT: Duration = Duration::from_micros(200);

/// Empty polls between two yields of a poller's core to the operating system:
/// a few microseconds of polling, and a system call that returns at once
/// when no other thread wants the core.
const IDLE_POLLS_PER_YIELD: u32 = 64;

thread_local! {
    /// Whether this pool thread is inside an [`awake`] call, perhaps below work
    /// it picked up while waiting.
    static AWAKE_OWNER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which must be on a pool thread, while every other pool thread
/// polls for its parallel work instead of going to sleep.
///
/// A rayon thread that finds no work sleeps after some microseconds, and
/// takes about 25 us to wake (measured here): an epoch's parallel products are
/// separated by serial stretches of about that length, so without this the
/// second core joined each product late. With it, a product split in two
/// halves finishes in the time of one half. The price is that the other
/// cores spin while `f` runs serial work, as BLAS libraries' threads do.
///
/// A thread that is itself inside an `awake` call does not poll for another
/// one, so two calls on two threads cannot wait on each other. At most one
/// thread per core polls, the caller's own included, and a poller that finds
/// nothing for a while yields its core to the operating system, so that a
/// pool larger than the machine, or a busy machine, is not starved by them.
fn awake<R>(f: impl FnOnce() -> R) -> R {
    let others = rayon::current_num_threads().min(cores()).saturating_sub(1);
    if others == 0 || AWAKE_OWNER.get() {
        return f();
    }
    let done = AtomicBool::new(false);
    let started = AtomicUsize::new(0);
    rayon::in_place_scope(|scope| {
        for _ in 0..others {
            scope.spawn(|_| {
                if AWAKE_OWNER.get() {
                    return;
                }
                started.fetch_add(1, Ordering::AcqRel);
                let mut idle = 0u32;
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() == Some(Yield::Idle) {
                        idle = idle.wrapping_add(1);
                        if idle % IDLE_POLLS_PER_YIELD == 0 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    } else {
                        idle = 0;
                    }
                }
            });
        }
        /// Ends the polling and clears the mark, also when `f` panics.
        struct Finish<'a>(&'a AtomicBool);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                AWAKE_OWNER.set(false);
                self.0.store(true, Ordering::Release);
            }
        }
        AWAKE_OWNER.set(true);
        let _finish = Finish(&done);
        // Give the pollers time to be picked up by the other threads (waking
        // one takes about 25 us), or this thread, waiting inside `f`, would
        // find them in its own queue and drop them. Threads busy elsewhere
        // are not waited for beyond that.
        let deadline = Instant::now() + START_WAIT;
        while started.load(Ordering::Acquire) < others && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forks() -> usize {
        (0..300)
            .map(|i| {
                let (a, b) = rayon::join(|| i * 2, || i + 1);
                a + b
            })
            .sum()
    }

    #[test]
    fn awake_calls_on_several_threads_at_once_all_finish() {
        // Four callers on a pool of three: each call's pollers may be picked up
        // by a thread that runs another call, which must not make them wait on
        // each other.
        set_num_threads(3).unwrap();
        let expected = forks();
        let callers: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..50).map(|_| run_unless(false, forks)).sum::<usize>())
            })
            .collect();
        for c in callers {
            assert_eq!(c.join().unwrap(), 50 * expected);
        }
    }
}
