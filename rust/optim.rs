//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay.
//!
//! The update is `torch.optim.SGD`'s with `dampening = 0`, per parameter buffer:
//!
//! ```text
//! g = grad + weight_decay * w          (biases too, as PyTorch does;
//!                                       g = grad when weight_decay = 0)
//! v = momentum * v + g                 (v = g on the first step)
//! step = g + momentum * v  if nesterov, else v   (g when momentum = 0)
//! w -= lr * step
//! ```
//!
//! Learning-rate schedules are evaluated by the caller once per epoch and passed
//! in as `lr`.

use crate::dense::{Dense, Gradient};
use crate::error::{zeros, Result};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::real::Real;
use crate::threads;

/// The hyper-parameters of one SGD step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd<T> {
    pub lr: T,
    pub momentum: T,
    pub nesterov: bool,
    pub weight_decay: T,
}

/// The optimizer's state: one velocity buffer per parameter buffer.
///
/// It lives outside the network so that an optimizer object carries it from one
/// `fit` call to the next, as `torch.optim.SGD` does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Velocity<T> {
    /// `(dW, db)` shaped buffers per layer; empty until the first step with momentum.
    pub layers: Vec<Gradient<T>>,
    /// Steps taken, so that an interrupted epoch still says how far it got.
    pub steps: u64,
}

impl<T: Real> Velocity<T> {
    /// Allocates the buffers for `layers` ahead of the first step with momentum.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Memory`] if they cannot be allocated.
    pub fn prepare(&mut self, layers: &[Dense<T>]) -> Result<()> {
        if self.layers.is_empty() {
            self.layers = layers
                .iter()
                .map(|l| {
                    Ok(Gradient {
                        w: zeros(l.fan_in, l.fan_out, "the velocities")?,
                        b: zeros(1, l.fan_out, "the velocities")?,
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(())
    }
}

impl<T: Real> Sgd<T> {
    /// Applies one step to every layer.
    ///
    /// # Panics
    ///
    /// If the velocity buffers are needed and cannot be allocated; call
    /// [`Velocity::prepare`] first to get that as an error instead.
    pub fn step(&self, layers: &mut [Dense<T>], grads: &[Gradient<T>], velocity: &mut Velocity<T>) {
        let first = velocity.steps == 0;
        velocity.steps += 1;
        if self.momentum != T::zero() {
            // A no-op once allocated; the epoch loop prepares ahead to report failure.
            velocity
                .prepare(layers)
                .expect("the velocity buffers could not be allocated");
        }
        for (l, (layer, grad)) in layers.iter_mut().zip(grads).enumerate() {
            match velocity.layers.get_mut(l) {
                Some(v) => {
                    self.update(&mut layer.w, &grad.w, Some(&mut v.w), first);
                    self.update(&mut layer.b, &grad.b, Some(&mut v.b), first);
                }
                None => {
                    self.update(&mut layer.w, &grad.w, None, first);
                    self.update(&mut layer.b, &grad.b, None, first);
                }
            }
        }
    }

    /// The update of one parameter buffer, fused into a single pass; a large
    /// buffer is cut into fixed chunks updated in parallel (element-wise, so the
    /// result does not depend on the thread count).
    fn update(&self, w: &mut [T], grad: &[T], velocity: Option<&mut [T]>, first: bool) {
        let momentum = self.momentum != T::zero();
        match velocity {
            Some(v) if momentum && w.len() >= PARALLEL_MIN => threads::run(|| {
                w.par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(|((w, g), v)| update_chunk(*self, w, g, Some(v), first));
            }),
            Some(v) if momentum => update_chunk(*self, w, grad, Some(v), first),
            _ if w.len() >= PARALLEL_MIN => threads::run(|| {
                w.par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .for_each(|(w, g)| update_chunk(*self, w, g, None, first));
            }),
            _ => update_chunk(*self, w, grad, None, first),
        }
    }
}

/// One chunk of [`Sgd::update`]; each case is its own loop so that it
/// vectorises, with the operations in the order of the module doc.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn update_chunk<T: Real>(
    sgd: Sgd<T>,
    w: &mut [T],
    grad: &[T],
    velocity: Option<&mut [T]>,
    first: bool,
) {
    let wd = sgd.weight_decay;
    if wd == T::zero() {
        // As in torch.optim.SGD, no decay term at all: `g + 0 * w` would turn
        // an infinite weight's step into NaN and cost a multiply-add.
        update_with(sgd, w, grad, velocity, first, |g, _| g);
    } else {
        update_with(sgd, w, grad, velocity, first, |g, w| g + wd * w);
    }
}

/// [`update_chunk`] with `decayed(grad, w)` as the gradient.
#[inline(always)]
fn update_with<T: Real>(
    sgd: Sgd<T>,
    w: &mut [T],
    grad: &[T],
    velocity: Option<&mut [T]>,
    first: bool,
    decayed: impl Fn(T, T) -> T,
) {
    let (lr, mu) = (sgd.lr, sgd.momentum);
    let Some(v) = velocity.filter(|_| mu != T::zero()) else {
        for (w, &g) in w.iter_mut().zip(grad) {
            let g = decayed(g, *w);
            *w -= lr * g;
        }
        return;
    };
    let items = w.iter_mut().zip(grad).zip(v.iter_mut());
    match (first, sgd.nesterov) {
        (true, false) => items.for_each(|((w, &g), v)| {
            let g = decayed(g, *w);
            *v = g;
            *w -= lr * *v;
        }),
        (true, true) => items.for_each(|((w, &g), v)| {
            let g = decayed(g, *w);
            *v = g;
            *w -= lr * (g + mu * *v);
        }),
        (false, false) => items.for_each(|((w, &g), v)| {
            let g = decayed(g, *w);
            *v = mu * *v + g;
            *w -= lr * *v;
        }),
        (false, true) => items.for_each(|((w, &g), v)| {
            let g = decayed(g, *w);
            *v = mu * *v + g;
            *w -= lr * (g + mu * *v);
        }),
    }
}

/// Elements per chunk of a parallel update.
const CHUNK: usize = 1 << 14;
/// Buffers shorter than this are updated on one thread.
const PARALLEL_MIN: usize = 4 * CHUNK;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    fn one_weight(w: f64) -> Vec<Dense<f64>> {
        let mut d = Dense::zeros(1, 1, Activation::Identity).unwrap();
        d.w = vec![w];
        vec![d]
    }

    fn grad(g: f64) -> Vec<Gradient<f64>> {
        vec![Gradient {
            w: vec![g],
            b: vec![0.0],
        }]
    }

    #[test]
    fn momentum_follows_torch_sgd_by_hand() {
        // lr 0.1, mu 0.9, wd 0.5, w0 = 1, grads 2 then 1:
        // g1 = 2 + 0.5 = 2.5, v1 = 2.5, w1 = 1 - 0.25 = 0.75;
        // g2 = 1 + 0.375 = 1.375, v2 = 2.25 + 1.375 = 3.625, w2 = 0.75 - 0.3625 = 0.3875.
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.5,
        };
        let mut layers = one_weight(1.0);
        let mut v = Velocity::default();
        sgd.step(&mut layers, &grad(2.0), &mut v);
        assert!((layers[0].w[0] - 0.75).abs() < 1e-15);
        sgd.step(&mut layers, &grad(1.0), &mut v);
        assert!((layers[0].w[0] - 0.3875).abs() < 1e-15);
        assert!((v.layers[0].w[0] - 3.625).abs() < 1e-15);
    }

    #[test]
    fn nesterov_steps_along_gradient_plus_momentum() {
        // lr 0.1, mu 0.5, w0 = 0, grads 1 then 1:
        // v1 = 1, step 1 + 0.5 = 1.5, w1 = -0.15; v2 = 1.5, step 1 + 0.75, w2 = -0.325.
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.5,
            nesterov: true,
            weight_decay: 0.0,
        };
        let mut layers = one_weight(0.0);
        let mut v = Velocity::default();
        sgd.step(&mut layers, &grad(1.0), &mut v);
        assert!((layers[0].w[0] + 0.15).abs() < 1e-15);
        sgd.step(&mut layers, &grad(1.0), &mut v);
        assert!((layers[0].w[0] + 0.325).abs() < 1e-15);
    }

    #[test]
    fn weight_decay_applies_to_biases() {
        // b0 = 2, wd 0.5, lr 0.1, zero gradient: b1 = 2 - 0.1 * 1 = 1.9.
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.5,
        };
        let mut layers = one_weight(0.0);
        layers[0].b = vec![2.0];
        sgd.step(&mut layers, &grad(0.0), &mut Velocity::default());
        assert!((layers[0].b[0] - 1.9).abs() < 1e-15);
    }
}
