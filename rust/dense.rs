//! A fully connected layer: `Z = A_prev W + b`, `A = activation(Z)`.
//!
//! Shapes: `W` is `fan_in x fan_out` (as scikit-learn's `coefs_`), `b` is `fan_out`,
//! a batch of `rows` samples gives `Z` and `A` of `rows x fan_out`.

use crate::activation::Activation;
use crate::error::{zeros, Result};
use crate::gemm::{matmul, matmul_nt, matmul_tn};
use crate::real::Real;

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
    /// The matrix product writes straight into `a`; bias and activation are then
    /// applied in one pass over it, copying `z` into `z_keep` when the backward
    /// pass will need it.
    pub fn forward(&self, input: &[T], rows: usize, a: &mut [T], z_keep: Option<&mut [T]>) {
        let n = rows * self.fan_out;
        matmul(rows, self.fan_in, self.fan_out, input, &self.w, &mut a[..n]);
        self.activation
            .forward(&mut a[..n], &self.b, z_keep.map(|z| &mut z[..n]));
    }

    /// Parameter gradients from this layer's `delta` (dL/dZ, `rows x fan_out`):
    /// `dW = input^T delta`, `db = sum over rows of delta`.
    pub fn gradient(&self, input: &[T], delta: &[T], rows: usize, grad: &mut Gradient<T>) {
        let delta = &delta[..rows * self.fan_out];
        matmul_tn(self.fan_in, rows, self.fan_out, input, delta, &mut grad.w);
        grad.b.fill(T::zero());
        for row in delta.chunks_exact(self.fan_out) {
            for (g, &d) in grad.b.iter_mut().zip(row) {
                *g += d;
            }
        }
    }

    /// dL/dA of the layer below: `delta W^T` (`rows x fan_in`), written into `out`.
    pub fn delta_below(&self, delta: &[T], rows: usize, out: &mut [T]) {
        let n = rows * self.fan_in;
        matmul_nt(
            rows,
            self.fan_out,
            self.fan_in,
            delta,
            &self.w,
            &mut out[..n],
        );
    }
}
