//! Losses: their values and their derivatives with respect to the network output.
//!
//! Shapes: a batch has `rows` samples and the output layer `width` units. `z` is
//! the output pre-activation and `a` the output activation, both `rows x width`.
//! Targets are class labels (`rows`) or dense targets (`rows x width`).
//!
//! Every loss is the mean over the batch, and the element-wise ones over outputs
//! too, as PyTorch computes with `reduction="mean"`. The value is returned as a
//! sum over samples so that an epoch's losses can be weighted by batch size.

use crate::activation::{log_sum_exp, Activation};
use crate::real::Real;

/// A training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error; its derivative at 0 is taken as 0, as in PyTorch.
    Mae,
    /// Huber loss with delta 1 (PyTorch's `HuberLoss`, Keras' `Huber`).
    Huber,
    /// Binary cross-entropy on a sigmoid output, computed from the logits.
    BinaryCrossEntropy,
    /// Softmax cross-entropy, computed from the logits by log-sum-exp.
    CrossEntropy,
}

impl Loss {
    /// Every loss.
    pub const ALL: [Loss; 5] = [
        Loss::Mse,
        Loss::Mae,
        Loss::Huber,
        Loss::BinaryCrossEntropy,
        Loss::CrossEntropy,
    ];

    /// The loss called `name` in the Python API.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The name used in the Python API and in saved files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Mae => "mae",
            Loss::Huber => "huber",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
            Loss::CrossEntropy => "cross_entropy",
        }
    }

    /// The output activation this loss is fused with, if it requires one.
    #[must_use]
    pub fn required_output(self) -> Option<Activation> {
        match self {
            Loss::BinaryCrossEntropy => Some(Activation::Sigmoid),
            Loss::CrossEntropy => Some(Activation::Softmax),
            _ => None,
        }
    }
}

/// The targets of a batch, or of a whole data set indexed by row.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, T> {
    /// One class index per row (cross-entropy only).
    Labels(&'a [u32]),
    /// One target per output unit, `rows x width`.
    Dense(&'a [T]),
}

/// What a batch's loss pass measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    /// The sum over samples of each sample's loss (the batch mean times `rows`).
    pub loss_sum: f64,
    /// Correct predictions: samples for cross-entropy, elements for binary
    /// cross-entropy, zero for regression losses.
    pub correct: usize,
}

/// Measures the loss of a batch and, when `delta` is given, writes dL/dZ of the
/// output layer into it.
///
/// For cross-entropy and binary cross-entropy the derivative is fused with the
/// output activation (`a * sum(y) - y` and `a - y`, scaled), which is exact and
/// cannot overflow. For the other losses `delta` receives dL/dA times the
/// output activation's derivative.
///
/// # Panics
///
/// If the slices do not have the shapes given by `rows` and `width`.
#[allow(clippy::too_many_arguments)]
pub fn batch_loss<T: Real>(
    loss: Loss,
    output: Activation,
    z: &[T],
    a: &[T],
    targets: Targets<'_, T>,
    rows: usize,
    width: usize,
    delta: Option<&mut [T]>,
) -> BatchStats {
    let n = rows * width;
    assert!(z.len() >= n && a.len() >= n);
    let (z, a) = (&z[..n], &a[..n]);
    let mut stats = BatchStats::default();
    match (loss, targets) {
        (Loss::CrossEntropy, Targets::Labels(labels)) => {
            assert!(labels.len() >= rows);
            let tiny = T::c(1e-30);
            for (r, (zrow, arow)) in z.chunks_exact(width).zip(a.chunks_exact(width)).enumerate() {
                let y = labels[r] as usize;
                // -log(softmax_y) is lse - z_y; the softmax is already there, and
                // only a probability too small to keep its precision needs the
                // log-sum-exp of the logits.
                let l = if arow[y] >= tiny {
                    -arow[y].ln()
                } else {
                    log_sum_exp(zrow) - zrow[y]
                };
                stats.loss_sum += l.to_f64();
                stats.correct += usize::from(argmax(arow) == y);
            }
            if let Some(delta) = delta {
                let scale = T::one() / T::c(rows as f64);
                for (r, (drow, arow)) in delta[..n]
                    .chunks_exact_mut(width)
                    .zip(a.chunks_exact(width))
                    .enumerate()
                {
                    for (d, &a) in drow.iter_mut().zip(arow) {
                        *d = a * scale;
                    }
                    drow[labels[r] as usize] -= scale;
                }
            }
        }
        (Loss::CrossEntropy, Targets::Dense(y)) => {
            assert!(y.len() >= n);
            for (r, (zrow, yrow)) in z.chunks_exact(width).zip(y.chunks_exact(width)).enumerate() {
                let lse = log_sum_exp(zrow);
                let l = zrow
                    .iter()
                    .zip(yrow)
                    .fold(T::zero(), |s, (&z, &y)| s + y * (lse - z));
                stats.loss_sum += l.to_f64();
                let arow = &a[r * width..(r + 1) * width];
                stats.correct += usize::from(argmax(arow) == argmax(yrow));
            }
            if let Some(delta) = delta {
                // d/dz of sum_j y_j (lse - z_j) is a * sum(y) - y, for any targets.
                let scale = T::one() / T::c(rows as f64);
                for ((drow, arow), yrow) in delta[..n]
                    .chunks_exact_mut(width)
                    .zip(a.chunks_exact(width))
                    .zip(y.chunks_exact(width))
                {
                    let total = yrow.iter().fold(T::zero(), |s, &y| s + y);
                    for ((d, &a), &y) in drow.iter_mut().zip(arow).zip(yrow) {
                        *d = (a * total - y) * scale;
                    }
                }
            }
        }
        (Loss::BinaryCrossEntropy, Targets::Dense(y)) => {
            assert!(y.len() >= n);
            let half = T::c(0.5);
            let per_sample = T::one() / T::c(width as f64);
            for (zrow, yrow) in z.chunks_exact(width).zip(y.chunks_exact(width)) {
                // log-sigmoid form: max(z, 0) - z y + log1p(exp(-|z|)).
                let l = zrow.iter().zip(yrow).fold(T::zero(), |s, (&z, &y)| {
                    s + z.max(T::zero()) - z * y + (-z.abs()).exp().ln_1p()
                });
                stats.loss_sum += (l * per_sample).to_f64();
                stats.correct += zrow
                    .iter()
                    .zip(yrow)
                    .filter(|(&z, &y)| (z > T::zero()) == (y > half))
                    .count();
            }
            if let Some(delta) = delta {
                let scale = T::one() / T::c(n as f64);
                for ((d, &a), &y) in delta[..n].iter_mut().zip(a).zip(y) {
                    *d = (a - y) * scale;
                }
            }
        }
        (Loss::Mse | Loss::Mae | Loss::Huber, Targets::Dense(y)) => {
            assert!(y.len() >= n);
            let per_sample = T::one() / T::c(width as f64);
            for (arow, yrow) in a.chunks_exact(width).zip(y.chunks_exact(width)) {
                let l = arow
                    .iter()
                    .zip(yrow)
                    .fold(T::zero(), |s, (&a, &y)| s + elementwise(loss, a - y));
                stats.loss_sum += (l * per_sample).to_f64();
            }
            if let Some(delta) = delta {
                let scale = T::one() / T::c(n as f64);
                for ((d, &a), &y) in delta[..n].iter_mut().zip(a).zip(y) {
                    *d = elementwise_derivative(loss, a - y) * scale;
                }
                output.backward(&mut delta[..n], a, z, width);
            }
        }
        (_, Targets::Labels(_)) => panic!("class labels are only accepted by cross_entropy"),
    }
    stats
}

/// The per-element regression loss of a residual `r = a - y`.
#[inline]
fn elementwise<T: Real>(loss: Loss, r: T) -> T {
    match loss {
        Loss::Mse => r * r,
        Loss::Mae => r.abs(),
        _ => {
            let abs = r.abs();
            if abs <= T::one() {
                T::c(0.5) * r * r
            } else {
                abs - T::c(0.5)
            }
        }
    }
}

/// The derivative of [`elementwise`] with respect to the residual.
#[inline]
fn elementwise_derivative<T: Real>(loss: Loss, r: T) -> T {
    match loss {
        Loss::Mse => T::c(2.0) * r,
        Loss::Mae => {
            if r > T::zero() {
                T::one()
            } else if r < T::zero() {
                -T::one()
            } else {
                T::zero()
            }
        }
        _ => r.max(-T::one()).min(T::one()),
    }
}

/// The index of the first largest element, as numpy's `argmax` picks it.
#[inline]
pub fn argmax<T: Real>(row: &[T]) -> usize {
    // Select rather than branch: which element wins is data-dependent, and
    // a mispredicted branch per element costs more than the compare.
    let (mut best, mut top) = (0, row[0]);
    for (i, &v) in row.iter().enumerate().skip(1) {
        let better = v > top;
        best = if better { i } else { best };
        top = if better { v } else { top };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_of_classes() {
        // Equal logits give softmax 1/3 each: loss ln 3, gradient (1/3 - onehot) / rows.
        let z = [0.0; 6];
        let a = [1.0 / 3.0; 6];
        let mut delta = [0.0_f64; 6];
        let s = batch_loss(
            Loss::CrossEntropy,
            Activation::Softmax,
            &z,
            &a,
            Targets::Labels(&[0, 2]),
            2,
            3,
            Some(&mut delta),
        );
        assert!((s.loss_sum - 2.0 * 3f64.ln()).abs() < 1e-12);
        let third: f64 = 1.0 / 6.0;
        let expected = [third - 0.5, third, third, third, third, third - 0.5];
        for (d, e) in delta.iter().zip(expected) {
            assert!((d - e).abs() < 1e-15);
        }
    }

    #[test]
    fn binary_cross_entropy_is_finite_for_saturated_logits() {
        // z = 800 with y = 0 costs 800 exactly (log-sigmoid form), never inf.
        let s = batch_loss(
            Loss::BinaryCrossEntropy,
            Activation::Sigmoid,
            &[800.0],
            &[1.0],
            Targets::Dense(&[0.0]),
            1,
            1,
            None,
        );
        assert_eq!(s.loss_sum, 800.0);
    }

    #[test]
    fn huber_switches_to_linear_beyond_delta() {
        // residuals 0.5 and -3: 0.125 and 2.5, mean over 2 outputs = 1.3125.
        let s = batch_loss(
            Loss::Huber,
            Activation::Identity,
            &[0.5, -3.0],
            &[0.5, -3.0],
            Targets::Dense(&[0.0, 0.0]),
            1,
            2,
            None,
        );
        assert!((s.loss_sum - 1.3125).abs() < 1e-15);
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn cross_entropy_of_an_underflowed_probability_comes_from_the_logits() {
        // z = [0, -200]: softmax_1 = e^-200 underflows float32 to 0, yet the loss
        // is lse - z_1 = log(1 + e^-200) + 200 = 200 in float32.
        let z = [0.0_f32, -200.0];
        let mut a = z;
        Activation::Softmax.forward(&mut a, &[0.0, 0.0], None);
        assert_eq!(a[1], 0.0);
        let s = batch_loss(
            Loss::CrossEntropy,
            Activation::Softmax,
            &z,
            &a,
            Targets::Labels(&[1]),
            1,
            2,
            None,
        );
        assert_eq!(s.loss_sum, 200.0);
    }
}
