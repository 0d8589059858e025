//! The core's one error type. The bindings map an invalid argument to Python's
//! `ValueError` and a buffer that cannot be allocated to `MemoryError`.

use std::fmt;

use crate::real::Real;

/// Why the core refused. The message names the argument, what it got and what
/// was expected, or the buffer that could not be allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// An argument the core cannot work with.
    Invalid(String),
    /// A buffer too large for this machine.
    Memory(String),
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    /// The message, whatever the kind.
    #[must_use]
    pub fn message(&self) -> &str {
        match self {
            Error::Invalid(m) | Error::Memory(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// A zero-filled buffer of `rows x cols` values, or an error naming `what`
/// when the size overflows or the memory cannot be had (instead of aborting).
///
/// # Errors
///
/// [`Error::Memory`] as above.
pub fn zeros<T: Real>(rows: usize, cols: usize, what: &str) -> Result<Vec<T>> {
    let too_big = || {
        Error::Memory(format!(
            "cannot allocate {what} of {rows} x {cols} {} values ({:.1} GiB)",
            T::DTYPE,
            rows as f64 * cols as f64 * std::mem::size_of::<T>() as f64 / f64::from(1u32 << 30)
        ))
    };
    let n = rows.checked_mul(cols).ok_or_else(too_big)?;
    n.checked_mul(std::mem::size_of::<T>())
        .filter(|&bytes| isize::try_from(bytes).is_ok())
        .ok_or_else(too_big)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| too_big())?;
    v.resize(n, T::zero());
    Ok(v)
}
