//! A fully connected layer: `Z = A_prev W + b`, `A = activation(Z)`.
//!
//! Shapes: `W` is `fan_in x fan_out` (as scikit-learn's `coefs_`), `b` is `fan_out`,
//! a batch of `rows` samples gives `Z` and `A` of `rows x fan_out`.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::activation::Activation;
use crate::error::{zeros, Result};
use crate::gemm::{matmul, matmul_nt, matmul_nt_then, matmul_then, matmul_tn_then};
use crate::real::Real;
use crate::train::finite;

/// One layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<T> {
    pub fan_in: usize,
    pub fan_out: usize,
    pub activation: Activation,
    /// `fan_in x fan_out`, row-major.
    pub w: Vec<T>,
    /// `fan_out`.
    pub b: Vec<T>,
}

/// The gradient of the loss with respect to one layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient<T> {
    /// dL/dW, `fan_in x fan_out`.
    pub w: Vec<T>,
    /// dL/db, `fan_out`.
    pub b: Vec<T>,
}

impl<T: Real> Dense<T> {
    /// A layer with zero weights and biases; the caller sets the initial weights.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if the weights cannot be allocated.
    pub fn zeros(fan_in: usize, fan_out: usize, activation: Activation) -> Result<Self> {
        Ok(Dense {
            fan_in,
            fan_out,
            activation,
            w: zeros(fan_in, fan_out, "the weights")?,
            b: zeros(1, fan_out, "the biases")?,
        })
    }

    /// Forward pass of `rows` samples: `a = activation(input W + b)`.
    ///
    /// The matrix product writes straight into `a`. An element-wise activation
    /// and the bias are applied to each block of it as soon as the block is
    /// written, on the thread that wrote it; softmax, and a layer whose `z` is
    /// kept in `z_keep` for the backward pass, take a pass of their own.
    pub fn forward(&self, input: &[T], rows: usize, a: &mut [T], z_keep: Option<&mut [T]>) {
        let n = rows * self.fan_out;
        let act = self.activation;
        match z_keep {
            None if act.is_element_wise() => {
                let (bias, fan_in, fan_out) = (&self.b, self.fan_in, self.fan_out);
                matmul_then(
                    rows,
                    fan_in,
                    fan_out,
                    input,
                    &self.w,
                    &mut a[..n],
                    |block| {
                        let bias = &bias[block.cols()];
                        block.for_each_run(|run, _| act.forward_serial(run, bias));
                    },
                );
            }
            keep => {
                matmul(rows, self.fan_in, self.fan_out, input, &self.w, &mut a[..n]);
                act.forward(&mut a[..n], &self.b, keep.map(|z| &mut z[..n]));
            }
        }
    }

    /// Parameter gradients from this layer's `delta` (dL/dZ, `rows x fan_out`):
    /// `dW = input^T delta`, `db = sum over rows of delta`. Returns whether
    /// every one of them is finite, checked block by block as the product
    /// writes `dW`.
    #[must_use]
    pub fn gradient(&self, input: &[T], delta: &[T], rows: usize, grad: &mut Gradient<T>) -> bool {
        let delta = &delta[..rows * self.fan_out];
        let all_finite = AtomicBool::new(true);
        matmul_tn_then(
            self.fan_in,
            rows,
            self.fan_out,
            input,
            delta,
            &mut grad.w,
            |block| {
                block.for_each_run(|run, _| {
                    if !finite(run) {
                        all_finite.store(false, Ordering::Relaxed);
                    }
                });
            },
        );
        grad.b.fill(T::zero());
        for row in delta.chunks_exact(self.fan_out) {
            for (g, &d) in grad.b.iter_mut().zip(row) {
                *g += d;
            }
        }
        all_finite.into_inner() && finite(&grad.b)
    }

    /// dL/dZ of the layer below, `(delta W^T) (.) below'` (`rows x fan_in`),
    /// into `out`: `delta` is this layer's dL/dZ, `below` the activation of the
    /// layer below, `a` and `z` its outputs and kept pre-activations (`z`
    /// empty unless [`Activation::needs_z`]). An element-wise derivative is
    /// applied to each block of the product as soon as it is written.
    #[allow(clippy::too_many_arguments)]
    pub fn delta_below(
        &self,
        delta: &[T],
        rows: usize,
        out: &mut [T],
        below: Activation,
        a: &[T],
        z: &[T],
    ) {
        let n = rows * self.fan_in;
        let (fan_in, fan_out) = (self.fan_in, self.fan_out);
        if below.is_element_wise() {
            matmul_nt_then(
                rows,
                fan_out,
                fan_in,
                delta,
                &self.w,
                &mut out[..n],
                |block| {
                    block.for_each_run(|run, at| {
                        let span = at..at + run.len();
                        let z = if z.is_empty() { z } else { &z[span.clone()] };
                        below.backward_serial(run, &a[span], z);
                    });
                },
            );
        } else {
            matmul_nt(rows, fan_out, fan_in, delta, &self.w, &mut out[..n]);
            below.backward(&mut out[..n], a, z, fan_in);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::is_serial;

    fn filled(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f64 - 1000.0) / 700.0)
            .collect()
    }

    fn layer(fan_in: usize, fan_out: usize, act: Activation) -> Dense<f64> {
        let mut d = Dense::zeros(fan_in, fan_out, act).unwrap();
        d.w = filled(fan_in * fan_out, 1);
        d.b = filled(fan_out, 2);
        d
    }

    fn assert_same_bits(got: &[f64], want: &[f64], what: impl Fn() -> String) {
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
        assert!(same, "{}", what());
    }

    // Shapes whose products run as one block, in row panels and in column panels.
    const SHAPES: [(usize, usize, usize); 4] =
        [(5, 7, 3), (700, 64, 48), (64, 96, 700), (64, 700, 96)];

    #[test]
    fn fused_forward_equals_product_then_activation() {
        for (rows, fan_in, fan_out) in SHAPES {
            for act in Activation::ALL.into_iter().filter(|a| a.is_element_wise()) {
                let l = layer(fan_in, fan_out, act);
                let x = filled(rows * fan_in, 3);
                let mut fused = vec![f64::NAN; rows * fan_out];
                l.forward(&x, rows, &mut fused, None);
                let mut want = vec![0.0; rows * fan_out];
                matmul(rows, fan_in, fan_out, &x, &l.w, &mut want);
                act.forward(&mut want, &l.b, None);
                assert_same_bits(&fused, &want, || {
                    format!("{act:?} at {rows}x{fan_in}x{fan_out}")
                });
            }
        }
    }

    #[test]
    fn fused_delta_below_equals_product_then_derivative() {
        for (rows, fan_in, fan_out) in SHAPES {
            for act in Activation::ALL {
                let l = layer(fan_in, fan_out, Activation::Identity);
                let delta = filled(rows * fan_out, 4);
                // What the layer below kept: its outputs, and z for GELU.
                let z = filled(rows * fan_in, 5);
                let mut a = z.clone();
                act.forward(&mut a, &vec![0.0; fan_in], None);
                let z = if act.needs_z() { z } else { Vec::new() };
                let mut fused = vec![f64::NAN; rows * fan_in];
                l.delta_below(&delta, rows, &mut fused, act, &a, &z);
                let mut want = vec![0.0; rows * fan_in];
                matmul_nt(rows, fan_out, fan_in, &delta, &l.w, &mut want);
                act.backward(&mut want, &a, &z, fan_in);
                assert_same_bits(&fused, &want, || {
                    format!("{act:?} at {rows}x{fan_in}x{fan_out}")
                });
            }
        }
    }

    #[test]
    fn gradient_reports_a_non_finite_value_in_any_block() {
        // dW of a 700-input layer is cut into row panels; a huge input row
        // overflows one row of dW, in the last panel.
        let (rows, fan_in, fan_out) = (64, 700, 48);
        assert!(!is_serial(fan_in, rows, fan_out));
        let l = layer(fan_in, fan_out, Activation::Identity);
        let delta = filled(rows * fan_out, 6);
        let mut grad = Gradient {
            w: vec![0.0; fan_in * fan_out],
            b: vec![0.0; fan_out],
        };
        let mut x = filled(rows * fan_in, 7);
        assert!(l.gradient(&x, &delta, rows, &mut grad));
        for r in 0..rows {
            x[r * fan_in + fan_in - 1] = 1e308;
        }
        assert!(!l.gradient(&x, &delta, rows, &mut grad));
        assert!(grad.w[(fan_in - 1) * fan_out..]
            .iter()
            .any(|g| !g.is_finite()));
        // And a NaN in delta reaches the bias gradient too.
        let x = filled(rows * fan_in, 7);
        let mut delta = delta;
        delta[5] = f64::NAN;
        assert!(!l.gradient(&x, &delta, rows, &mut grad));
    }
}
