//! The floating-point element type: one generic implementation serves `f32` and `f64`.

use std::fmt::Debug;
use std::ops::{AddAssign, MulAssign, SubAssign};

use num_traits::Float;

use crate::gemm::Kernel;

/// A floating-point type the network can compute in.
///
/// Everything the core needs beyond [`num_traits::Float`]: the error function for the
/// exact GELU and conversion of constants.
pub trait Real:
    Float + Kernel + AddAssign + SubAssign + MulAssign + Default + Debug + Send + Sync + 'static
{
    /// `"float32"` or `"float64"`, as numpy spells it.
    const DTYPE: &'static str;

    /// Converts an `f64` constant (rounding to nearest for `f32`).
    fn c(x: f64) -> Self;

    /// Widens to `f64`, for accumulating reported losses.
    fn to_f64(self) -> f64;

    /// The error function.
    fn erf(self) -> Self;
}

impl Real for f32 {
    const DTYPE: &'static str = "float32";

    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn c(x: f64) -> Self {
        x as f32
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    #[inline(always)]
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Real for f64 {
    const DTYPE: &'static str = "float64";

    #[inline(always)]
    fn c(x: f64) -> Self {
        x
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }

    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
