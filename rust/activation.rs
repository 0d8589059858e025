//! Activation functions, their derivatives, and the fused bias-add pass.
//!
//! Shapes: `z` and `a` are `rows x width`, row-major, one sample per row.
//! The derivative is taken from what the forward pass kept: the output `a` for
//! every activation whose derivative can be written in `a` alone, the
//! pre-activation `z` for GELU, which cannot.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::real::Real;
use crate::threads;

/// The slope of `leaky_relu` for negative inputs (PyTorch's and Keras' default).
pub const LEAKY_SLOPE: f64 = 0.01;

/// An element-wise activation, or the row-wise softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu,
    Elu,
    Gelu,
    Softplus,
    Softmax,
}

impl Activation {
    /// Every activation, in the order the documentation lists them.
    pub const ALL: [Activation; 9] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Gelu,
        Activation::Softplus,
        Activation::Softmax,
    ];

    /// The activation called `name` in the Python API.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name used in the Python API and in saved files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Elu => "elu",
            Activation::Gelu => "gelu",
            Activation::Softplus => "softplus",
            Activation::Softmax => "softmax",
        }
    }

    /// Whether the backward pass needs the pre-activation `z` and not only `a`.
    #[must_use]
    pub fn needs_z(self) -> bool {
        self == Activation::Gelu
    }

    /// In place over `za` (holding `X W`, `rows x width`): add the bias, keep a
    /// copy of `z` in `z_keep` when given, and apply the activation. A large
    /// batch is done in row chunks in parallel (row by row, so the result is
    /// the same on any number of threads).
    ///
    /// # Panics
    ///
    /// If `bias.len() != width` or `za.len()` is not a multiple of `width`.
    pub fn forward<T: Real>(self, za: &mut [T], bias: &[T], z_keep: Option<&mut [T]>) {
        let width = bias.len();
        assert!(width > 0 && za.len() % width == 0);
        if za.len() < PARALLEL_MIN {
            return forward_rows(self, za, bias, z_keep);
        }
        let (chunk, n) = (chunk_len(width), za.len());
        threads::run(|| match z_keep {
            Some(keep) => za
                .par_chunks_mut(chunk)
                .zip(keep[..n].par_chunks_mut(chunk))
                .for_each(|(c, k)| forward_rows(self, c, bias, Some(k))),
            None => za
                .par_chunks_mut(chunk)
                .for_each(|c| forward_rows(self, c, bias, None)),
        });
    }

    /// Whether the activation acts on each value alone (all but softmax), so
    /// that it can be applied to any block of a layer's output.
    #[must_use]
    pub fn is_element_wise(self) -> bool {
        self != Activation::Softmax
    }

    /// [`Activation::forward`] without a `z` copy on one thread, for a block
    /// of rows or part-rows: `za` holds whole multiples of `bias.len()` values.
    pub(crate) fn forward_serial<T: Real>(self, za: &mut [T], bias: &[T]) {
        forward_rows(self, za, bias, None);
    }

    /// [`Activation::backward`] of an element-wise activation on one thread,
    /// over any run of values: `a` (and `z` when it is kept) are the matching
    /// runs of the forward pass.
    pub(crate) fn backward_serial<T: Real>(self, delta: &mut [T], a: &[T], z: &[T]) {
        debug_assert!(self.is_element_wise());
        backward_rows(self, delta, a, z, 1);
    }

    /// In place over `delta` (holding dL/dA, `rows x width`): multiply by the
    /// activation's derivative, giving dL/dZ.
    ///
    /// `a` is the activation output; `z` is the kept pre-activation and is read
    /// only when [`Activation::needs_z`] holds (pass an empty slice otherwise).
    /// For softmax this is the Jacobian-vector product
    /// `dz_i = a_i (g_i - sum_j g_j a_j)` row by row.
    ///
    /// # Panics
    ///
    /// If the slices' lengths disagree.
    pub fn backward<T: Real>(self, delta: &mut [T], a: &[T], z: &[T], width: usize) {
        assert!(a.len() >= delta.len() && width > 0 && delta.len() % width == 0);
        let n = delta.len();
        if n < PARALLEL_MIN || self == Activation::Identity {
            return backward_rows(self, delta, a, z, width);
        }
        let chunk = chunk_len(width);
        threads::run(|| {
            if z.is_empty() {
                delta
                    .par_chunks_mut(chunk)
                    .zip(a[..n].par_chunks(chunk))
                    .for_each(|(d, a)| backward_rows(self, d, a, &[], width));
            } else {
                delta
                    .par_chunks_mut(chunk)
                    .zip(a[..n].par_chunks(chunk))
                    .zip(z[..n].par_chunks(chunk))
                    .for_each(|((d, a), z)| backward_rows(self, d, a, z, width));
            }
        });
    }
}

/// Bias, `z` copy and activation over whole rows of `za`, on one thread.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn forward_rows<T: Real>(act: Activation, za: &mut [T], bias: &[T], z_keep: Option<&mut [T]>) {
    let (zero, one) = (T::zero(), T::one());
    match act {
        Activation::Identity => bias_then(za, bias, z_keep, |z| z),
        Activation::Sigmoid => bias_then(za, bias, z_keep, sigmoid),
        Activation::Tanh => bias_then(za, bias, z_keep, T::tanh),
        // A comparison rather than `max`: one instruction, and NaN gives 0 either way.
        Activation::Relu => bias_then(za, bias, z_keep, |z| if z > zero { z } else { zero }),
        Activation::LeakyRelu => {
            let slope = T::c(LEAKY_SLOPE);
            bias_then(za, bias, z_keep, |z| if z < zero { z * slope } else { z });
        }
        Activation::Elu => bias_then(za, bias, z_keep, |z| if z <= zero { z.exp_m1() } else { z }),
        Activation::Gelu => {
            let half = T::c(0.5);
            let inv_sqrt2 = T::c(std::f64::consts::FRAC_1_SQRT_2);
            bias_then(za, bias, z_keep, |z| {
                half * z * (one + (z * inv_sqrt2).erf())
            });
        }
        Activation::Softplus => bias_then(za, bias, z_keep, softplus),
        Activation::Softmax => {
            bias_then(za, bias, z_keep, |z| z);
            softmax_rows(za, bias.len());
        }
    }
}

/// `a = f(z + bias)` element by element over whole rows, in one pass, keeping
/// `z + bias` in `z_keep` when given.
#[inline(always)]
fn bias_then<T: Real>(za: &mut [T], bias: &[T], z_keep: Option<&mut [T]>, f: impl Fn(T) -> T) {
    let width = bias.len();
    match z_keep {
        Some(keep) => {
            for (row, keep) in za.chunks_exact_mut(width).zip(keep.chunks_exact_mut(width)) {
                for ((v, k), &b) in row.iter_mut().zip(keep).zip(bias) {
                    let z = *v + b;
                    *k = z;
                    *v = f(z);
                }
            }
        }
        None => {
            for row in za.chunks_exact_mut(width) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v = f(*v + b);
                }
            }
        }
    }
}

/// The derivative pass of [`Activation::backward`] over whole rows, on one thread.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn backward_rows<T: Real>(act: Activation, delta: &mut [T], a: &[T], z: &[T], width: usize) {
    assert!(a.len() >= delta.len());
    let one = T::one();
    let zero = T::zero();
    match act {
        Activation::Identity => {}
        Activation::Sigmoid => {
            for (d, &a) in delta.iter_mut().zip(a) {
                *d *= a * (one - a);
            }
        }
        Activation::Tanh => {
            for (d, &a) in delta.iter_mut().zip(a) {
                *d *= one - a * a;
            }
        }
        // relu(z) > 0 exactly when z > 0, so `a` decides; the derivative at 0 is 0.
        Activation::Relu => {
            for (d, &a) in delta.iter_mut().zip(a) {
                if a <= zero {
                    *d = zero;
                }
            }
        }
        Activation::LeakyRelu => {
            let slope = T::c(LEAKY_SLOPE);
            for (d, &a) in delta.iter_mut().zip(a) {
                if a <= zero {
                    *d *= slope;
                }
            }
        }
        // For z <= 0, elu(z) = exp(z) - 1, so its derivative exp(z) is a + 1.
        Activation::Elu => {
            for (d, &a) in delta.iter_mut().zip(a) {
                if a <= zero {
                    *d *= a + one;
                }
            }
        }
        Activation::Gelu => {
            assert!(z.len() >= delta.len());
            let half = T::c(0.5);
            let inv_sqrt2 = T::c(std::f64::consts::FRAC_1_SQRT_2);
            let inv_sqrt_2pi = T::c(0.398_942_280_401_432_7);
            for (d, &z) in delta.iter_mut().zip(z) {
                let cdf = half * (one + (z * inv_sqrt2).erf());
                let pdf = inv_sqrt_2pi * (-half * z * z).exp();
                *d *= cdf + z * pdf;
            }
        }
        // softplus'(z) = sigmoid(z) = 1 - exp(-softplus(z)).
        Activation::Softplus => {
            for (d, &a) in delta.iter_mut().zip(a) {
                *d *= -(-a).exp_m1();
            }
        }
        Activation::Softmax => {
            for (drow, arow) in delta.chunks_exact_mut(width).zip(a.chunks_exact(width)) {
                let dot = drow.iter().zip(arow).fold(zero, |s, (&g, &a)| s + g * a);
                for (d, &a) in drow.iter_mut().zip(arow) {
                    *d = a * (*d - dot);
                }
            }
        }
    }
}

/// Batches of fewer values than this are done on one thread.
const PARALLEL_MIN: usize = 1 << 15;

/// Values per parallel chunk: whole rows, about 8k values.
fn chunk_len(width: usize) -> usize {
    ((1 << 13) / width).max(1) * width
}

/// The logistic function, evaluated without overflow for either sign.
#[inline]
pub fn sigmoid<T: Real>(z: T) -> T {
    let one = T::one();
    if z >= T::zero() {
        one / (one + (-z).exp())
    } else {
        let e = z.exp();
        e / (one + e)
    }
}

/// `log(1 + exp(z))`, as `max(z, 0) + log1p(exp(-|z|))` so that it never overflows.
#[inline]
pub fn softplus<T: Real>(z: T) -> T {
    z.max(T::zero()) + (-z.abs()).exp().ln_1p()
}

/// The log-sum-exp of a row, shifted by its maximum so that no `exp` overflows.
#[inline]
pub fn log_sum_exp<T: Real>(row: &[T]) -> T {
    let m = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    let s = row.iter().fold(T::zero(), |s, &v| s + (v - m).exp());
    m + s.ln()
}

/// Softmax of each `width`-wide row of `za` in place, shifted by the row
/// maximum.
///
/// The exponentials are taken over the whole block in one loop, which
/// vectorizes however narrow the rows are; the row maxima and sums are short
/// scalar chains of independent rows. (Reductions in vector lanes were slower
/// at ten classes: a row's partial vector goes through memory.)
#[inline(always)]
fn softmax_rows<T: Real>(za: &mut [T], width: usize) {
    for row in za.chunks_exact_mut(width) {
        // A comparison, not `max`, is one instruction; a NaN is skipped either
        // way and then turns its whole row to NaN below.
        let m = row
            .iter()
            .fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
        row.iter_mut().for_each(|v| *v -= m);
    }
    za.iter_mut().for_each(|v| *v = v.exp_poly());
    for row in za.chunks_exact_mut(width) {
        let inv = T::one() / row.iter().fold(T::zero(), |s, &v| s + v);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward_one(act: Activation, z: f64) -> f64 {
        let mut v = [z];
        act.forward(&mut v, &[0.0], None);
        v[0]
    }

    #[test]
    fn names_round_trip() {
        for act in Activation::ALL {
            assert_eq!(Activation::from_name(act.name()), Some(act));
        }
        assert_eq!(Activation::from_name("swish"), None);
    }

    #[test]
    fn element_wise_derivatives_match_central_differences() {
        let h = 1e-6;
        for act in Activation::ALL
            .into_iter()
            .filter(|&a| a != Activation::Softmax)
        {
            for &z in &[-3.0, -0.7, -1e-3, 0.4, 2.5] {
                let fd = (forward_one(act, z + h) - forward_one(act, z - h)) / (2.0 * h);
                let a = forward_one(act, z);
                let mut d = [1.0];
                act.backward(&mut d, &[a], &[z], 1);
                assert!(
                    (d[0] - fd).abs() < 1e-8,
                    "{}: z={z} analytic {} fd {fd}",
                    act.name(),
                    d[0]
                );
            }
        }
    }

    #[test]
    fn relu_family_derivative_at_zero_follows_the_convention() {
        // DESIGN: ReLU'(0) = 0; leaky ReLU takes the negative slope at 0, as PyTorch does.
        let mut d = [1.0];
        Activation::Relu.backward(&mut d, &[0.0], &[], 1);
        assert_eq!(d[0], 0.0);
        let mut d = [1.0];
        Activation::LeakyRelu.backward(&mut d, &[0.0], &[], 1);
        assert_eq!(d[0], LEAKY_SLOPE);
    }

    #[test]
    fn softmax_jacobian_vector_product_matches_central_differences() {
        let z = [0.3, -1.2, 2.0];
        let g = [0.5, -0.25, 1.5];
        let loss = |z: &[f64]| {
            let mut a = z.to_vec();
            softmax_rows(&mut a, 3);
            a.iter().zip(&g).map(|(a, g)| a * g).sum::<f64>()
        };
        let mut a = z.to_vec();
        softmax_rows(&mut a, 3);
        let mut d = g;
        Activation::Softmax.backward(&mut d, &a, &[], 3);
        for i in 0..3 {
            let (mut zp, mut zm) = (z, z);
            zp[i] += 1e-6;
            zm[i] -= 1e-6;
            let fd = (loss(&zp) - loss(&zm)) / 2e-6;
            assert!((d[i] - fd).abs() < 1e-9);
        }
    }

    #[test]
    fn stable_forms_do_not_overflow() {
        assert_eq!(sigmoid(-1000.0_f64), 0.0);
        assert_eq!(sigmoid(1000.0_f64), 1.0);
        assert_eq!(softplus(1000.0_f64), 1000.0);
        assert!((log_sum_exp(&[1000.0_f64, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        let mut row = [1000.0_f32, 0.0, -1000.0];
        softmax_rows(&mut row, 3);
        assert_eq!(row, [1.0, 0.0, 0.0]);
    }

    #[test]
    fn softmax_block_matches_each_row_with_the_library_exp() {
        // Rows of 10 (not a multiple of any vector width), with a bias, extreme
        // logits, a row of one -inf, and a row with a NaN.
        let width = 10;
        let bias: Vec<f32> = (0..width).map(|j| 0.1 * j as f32 - 0.4).collect();
        let mut z: Vec<f32> = (0..23 * width)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.7)
            .collect();
        z[3 * width + 4] = 1e4;
        z[5 * width + 1] = -1e4;
        z[7 * width + 2] = f32::NEG_INFINITY;
        z[9 * width + 6] = f32::NAN;
        let mut a = z.clone();
        let mut keep = vec![0.0; z.len()];
        Activation::Softmax.forward(&mut a, &bias, Some(&mut keep));
        for (r, zrow) in z.chunks_exact(width).enumerate() {
            let zb: Vec<f32> = zrow.iter().zip(&bias).map(|(&z, &b)| z + b).collect();
            let kept = &keep[r * width..(r + 1) * width];
            assert!(kept
                .iter()
                .zip(&zb)
                .all(|(k, z)| k.to_bits() == z.to_bits()));
            // The shift is a float32 subtraction in both; the rest is in float64.
            let m = zb.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = zb.iter().map(|&v| f64::from(v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            for (j, &got) in a[r * width..(r + 1) * width].iter().enumerate() {
                let want = e[j] / s;
                if r == 9 {
                    assert!(got.is_nan(), "row {r} with a NaN gives {got}");
                } else {
                    let tol = 4.0 * f64::from(f32::EPSILON) * want + 1e-45;
                    assert!(
                        (f64::from(got) - want).abs() <= tol,
                        "row {r} col {j}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn forward_adds_bias_and_keeps_z() {
        // z = [[1, -2], [0.5, 3]] + b = [1, 1]  ->  [[2, -1], [1.5, 4]]; relu -> [[2, 0], [1.5, 4]].
        let mut za = [1.0, -2.0, 0.5, 3.0];
        let mut keep = [0.0; 4];
        Activation::Relu.forward(&mut za, &[1.0, 1.0], Some(&mut keep));
        assert_eq!(keep, [2.0, -1.0, 1.5, 4.0]);
        assert_eq!(za, [2.0, 0.0, 1.5, 4.0]);
    }

    #[test]
    fn chunked_parallel_passes_equal_the_row_by_row_pass() {
        // 300 x 200 = 60000 values: above the parallel threshold.
        let (rows, width) = (300, 200);
        let z: Vec<f32> = (0..rows * width)
            .map(|i| ((i * 7919) % 2001) as f32 / 500.0 - 2.0)
            .collect();
        let bias: Vec<f32> = (0..width).map(|j| j as f32 / 1000.0).collect();
        let g: Vec<f32> = (0..rows * width)
            .map(|i| ((i * 31) % 17) as f32 - 8.0)
            .collect();
        for act in Activation::ALL {
            let (mut par, mut ser) = (z.clone(), z.clone());
            let (mut kp, mut ks) = (vec![0.0; z.len()], vec![0.0; z.len()]);
            act.forward(&mut par, &bias, Some(&mut kp));
            forward_rows(act, &mut ser, &bias, Some(&mut ks));
            assert_eq!((&par, &kp), (&ser, &ks), "{}", act.name());
            let (mut dp, mut ds) = (g.clone(), g.clone());
            act.backward(&mut dp, &par, &kp, width);
            backward_rows(act, &mut ds, &ser, &ks, width);
            assert_eq!(dp, ds, "{}", act.name());
        }
    }
}
