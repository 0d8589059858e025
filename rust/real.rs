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

    /// The exponential, written with arithmetic and bit operations only, so that
    /// a loop of it vectorizes (a call to the C library's `exp` does not).
    ///
    /// `x = n ln 2 + r` with `n` the integer nearest `x / ln 2`, so `|r| <= ln 2 / 2`;
    /// `exp(r)` is its Taylor polynomial, of a degree whose remainder is below a
    /// tenth of a unit in the last place there; `2^n` is built from its bits, in
    /// two factors so that results in the subnormal range are rounded once.
    /// NaN stays NaN, and arguments past the range overflow to infinity or round
    /// to zero. Within 2 units in the last place of the correctly rounded value
    /// (tested against the C library's `exp`).
    fn exp_poly(self) -> Self;
}

/// `p * 2^n` for `n` in range of [`Real::exp_poly`]'s reduction, as two exact
/// scalings by powers of two that are each normal. Integer arithmetic wraps: a
/// NaN argument gives a meaningless `n` and a NaN `p`, hence NaN.
macro_rules! scale_by_power_of_two {
    ($p:expr, $n:expr, $float:ty, $bits:ty, $signed:ty, $mantissa:expr, $bias:expr) => {{
        let n: $bits = $n;
        // Halve with the sign: the two's-complement bits shifted arithmetically.
        #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
        let n1 = ((n as $signed) >> 1) as $bits;
        let n2 = n.wrapping_sub(n1);
        let pow = |k: $bits| <$float>::from_bits(k.wrapping_add($bias) << $mantissa);
        $p * pow(n1) * pow(n2)
    }};
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

    #[inline(always)]
    #[allow(clippy::cast_possible_truncation, clippy::excessive_precision)]
    fn exp_poly(self) -> Self {
        // ln 2 in two parts, the first with its last 9 bits zero, so that
        // n * LN2_HI is exact for every n the clamp allows.
        const LN2_HI: f32 = 0.693_145_751_953_125;
        const LN2_LO: f32 = 1.428_606_765_330_187_0e-6;
        // exp(-104) is below half the smallest subnormal, exp(89) above the largest
        // float; clamp keeps NaN.
        let x = self.clamp(-104.0, 89.0);
        // Adding 1.5 * 2^23 rounds to the nearest integer, which the low bits
        // then hold; a float-to-integer conversion would not vectorize.
        const SHIFTER: f32 = 12_582_912.0;
        let t = x * std::f32::consts::LOG2_E + SHIFTER;
        let n = t - SHIFTER;
        let r = (x - n * LN2_HI) - n * LN2_LO;
        // Horner on 1/k! for k = 7 down to 0; r^8/8! < 6e-9 for |r| <= ln 2 / 2.
        let mut p = 1.0 / 5040.0;
        for c in [
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            p = p * r + c;
        }
        scale_by_power_of_two!(
            p,
            t.to_bits().wrapping_sub(SHIFTER.to_bits()),
            f32,
            u32,
            i32,
            23,
            127
        )
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

    #[inline(always)]
    #[allow(clippy::cast_possible_truncation, clippy::excessive_precision)]
    fn exp_poly(self) -> Self {
        // ln 2 in two parts, the first with its last 21 bits zero, so that
        // n * LN2_HI is exact for every n the clamp allows.
        const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
        const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
        // As for f32: exp(-746) rounds to zero, exp(710) overflows.
        let x = self.clamp(-746.0, 710.0);
        const SHIFTER: f64 = 6_755_399_441_055_744.0;
        let t = x * std::f64::consts::LOG2_E + SHIFTER;
        let n = t - SHIFTER;
        let r = (x - n * LN2_HI) - n * LN2_LO;
        // Horner on 1/k! for k = 13 down to 0; r^14/14! < 5e-18 for |r| <= ln 2 / 2.
        let mut p = INV_FACTORIALS[13];
        for &c in INV_FACTORIALS[..13].iter().rev() {
            p = p * r + c;
        }
        scale_by_power_of_two!(
            p,
            t.to_bits().wrapping_sub(SHIFTER.to_bits()),
            f64,
            u64,
            i64,
            52,
            1023
        )
    }
}

/// `1 / k!` for `k = 0..=13`, each rounded once: `k!` is exact in `f64`.
const INV_FACTORIALS: [f64; 14] = {
    let (mut inv, mut factorial, mut k) = ([1.0; 14], 1.0, 1);
    while k < 14 {
        factorial *= k as f64;
        inv[k] = 1.0 / factorial;
        k += 1;
    }
    inv
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two non-negative floats
    /// (the bit patterns of non-negative floats are ordered as their values).
    fn ulps32(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    fn ulps64(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_poly_f32_is_within_two_ulps_over_the_whole_range() {
        // From below the smallest subnormal result to past overflow; the reference
        // is the float64 exponential rounded once to float32.
        let mut worst = 0;
        for i in 0..4_000_000u32 {
            #[allow(clippy::cast_possible_truncation)]
            let x = (-110.0 + 205.0 * f64::from(i) / 4_000_000.0) as f32;
            #[allow(clippy::cast_possible_truncation)]
            let want = f64::from(x).exp() as f32;
            let got = x.exp_poly();
            let d = ulps32(got, want);
            assert!(
                d <= 2,
                "exp_poly({x:e}) = {got:e}, expected {want:e} ({d} ulps)"
            );
            worst = worst.max(d);
        }
        eprintln!("exp_poly f32: worst {worst} ulps");
    }

    #[test]
    fn exp_poly_f64_is_within_two_ulps_of_the_library_exp() {
        let mut worst = 0;
        for i in 0..2_000_000u32 {
            let x = -750.0 + 1465.0 * f64::from(i) / 2_000_000.0 + 1e-7 * f64::from(i % 7);
            let (got, want) = (x.exp_poly(), x.exp());
            let d = ulps64(got, want);
            assert!(
                d <= 2,
                "exp_poly({x:e}) = {got:e}, expected {want:e} ({d} ulps)"
            );
            worst = worst.max(d);
        }
        eprintln!("exp_poly f64: worst {worst} ulps");
    }

    #[test]
    fn exp_poly_special_values() {
        assert!(f32::NAN.exp_poly().is_nan() && f64::NAN.exp_poly().is_nan());
        assert_eq!(f32::INFINITY.exp_poly(), f32::INFINITY);
        assert_eq!(f64::INFINITY.exp_poly(), f64::INFINITY);
        assert_eq!(f32::NEG_INFINITY.exp_poly().to_bits(), 0);
        assert_eq!(f64::NEG_INFINITY.exp_poly().to_bits(), 0);
        assert_eq!(0.0f32.exp_poly(), 1.0);
        assert_eq!((-0.0f64).exp_poly(), 1.0);
        assert_eq!(88.8f32.exp_poly(), f32::INFINITY);
        assert_eq!(709.8f64.exp_poly(), f64::INFINITY);
        assert_eq!(f32::MAX.exp_poly(), f32::INFINITY);
        assert_eq!(f64::MIN.exp_poly(), 0.0);
        // Subnormal results.
        #[allow(clippy::cast_possible_truncation)]
        let want = f64::from(-103.0f32).exp() as f32;
        assert_eq!((-103.0f32).exp_poly(), want);
        assert_eq!((-740.0f64).exp_poly(), (-740.0f64).exp());
        assert!((-87.5f32).exp_poly().is_subnormal());
        assert!((-720.0f64).exp_poly().is_subnormal());
    }
}
