//! The thread pool that runs the matrix products' panels.
//!
//! Its size comes from `BACKPROP_RS_NUM_THREADS`, read on first use, or else from
//! the number of cores, and can be changed with [`set_num_threads`]. Work is
//! split by shape alone, never by thread count, so results are bitwise the same
//! on any number of threads.

use std::sync::{Arc, PoisonError, RwLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// The environment variable that sets the initial thread count.
pub const ENV_VAR: &str = "BACKPROP_RS_NUM_THREADS";

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
/// naming its value when that is not a positive integer.
///
/// # Errors
///
/// The value as found, when it is set but is not a positive integer.
pub fn requested_threads() -> std::result::Result<Option<usize>, String> {
    let Some(value) = std::env::var_os(ENV_VAR) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(text.into_owned()),
    }
}

/// The requested count, or else (also when the request is invalid) one thread
/// per usable core.
fn default_threads() -> usize {
    requested_threads()
        .ok()
        .flatten()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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
/// If `threads` is zero or the threads cannot be started.
pub fn set_num_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::new("threads must be at least 1; got 0"));
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
/// else on the pool as [`run`] does.
pub fn run_unless<R: Send>(serial: bool, f: impl FnOnce() -> R + Send) -> R {
    if serial {
        f()
    } else {
        run(f)
    }
}
