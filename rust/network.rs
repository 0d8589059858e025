//! A stack of dense layers with a loss: forward pass, loss, backward pass.
//!
//! Shapes, for a batch of `rows` samples and layers `l = 0..L`:
//! `x` is `rows x fan_in(0)`; `a[l]`, `z[l]` and `delta[l]` are `rows x fan_out(l)`;
//! `delta[l]` holds dL/dZ of layer `l`. The output is `a[L-1]`.

use crate::activation::Activation;
use crate::dense::{Dense, Gradient};
use crate::error::{zeros, Error, Result};
use crate::gemm::is_serial;
use crate::loss::{batch_loss, BatchStats, Loss, Targets};
use crate::real::Real;

/// The network: its layers and the loss it is trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T> {
    pub layers: Vec<Dense<T>>,
    pub loss: Loss,
}

/// What the forward pass keeps for the backward pass, sized for up to
/// `capacity` rows. A smaller batch uses the leading rows.
#[derive(Debug)]
pub struct Caches<T> {
    capacity: usize,
    widths: Vec<usize>,
    pub a: Vec<Vec<T>>,
    /// Empty for layers whose derivative does not need `z`.
    pub z: Vec<Vec<T>>,
    pub delta: Vec<Vec<T>>,
}

impl<T: Real> Network<T> {
    /// A network of zero-initialised layers `(fan_in, fan_out, activation)`.
    ///
    /// # Errors
    ///
    /// If there are no layers, a width is zero, consecutive widths do not chain,
    /// or the loss needs an output activation the last layer does not have.
    pub fn new(specs: &[(usize, usize, Activation)], loss: Loss) -> Result<Self> {
        let Some(&(_, _, output)) = specs.last() else {
            return Err(Error::new(
                "layers is empty; expected at least one Dense layer",
            ));
        };
        for (i, &(fan_in, fan_out, _)) in specs.iter().enumerate() {
            if fan_in == 0 || fan_out == 0 {
                return Err(Error::new(format!(
                    "layer {i} has shape ({fan_in}, {fan_out}); widths must be positive"
                )));
            }
            if i > 0 && specs[i - 1].1 != fan_in {
                return Err(Error::new(format!(
                    "layer {i} expects {fan_in} inputs, but layer {} has {} outputs",
                    i - 1,
                    specs[i - 1].1
                )));
            }
        }
        if let Some(required) = loss.required_output() {
            if output != required {
                return Err(Error::new(format!(
                    "loss {:?} needs a {:?} output layer, got {:?}",
                    loss.name(),
                    required.name(),
                    output.name()
                )));
            }
        }
        let layers = specs
            .iter()
            .map(|&(i, o, act)| Dense::zeros(i, o, act))
            .collect::<Result<_>>()?;
        Ok(Network { layers, loss })
    }

    /// Features the first layer takes.
    #[must_use]
    pub fn n_inputs(&self) -> usize {
        self.layers[0].fan_in
    }

    /// Units of the output layer.
    #[must_use]
    pub fn n_outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].fan_out
    }

    /// Zero gradients shaped like the parameters.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if they cannot be allocated.
    pub fn zero_gradients(&self) -> Result<Vec<Gradient<T>>> {
        self.layers
            .iter()
            .map(|l| {
                Ok(Gradient {
                    w: zeros(l.fan_in, l.fan_out, "the weight gradients")?,
                    b: zeros(1, l.fan_out, "the bias gradients")?,
                })
            })
            .collect()
    }

    /// Caches for batches of up to `capacity` rows.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if they cannot be allocated.
    pub fn caches(&self, capacity: usize) -> Result<Caches<T>> {
        let last = self.layers.len() - 1;
        let buf = |w: usize| zeros(capacity, w, "the activation caches");
        let mut z = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            // The output layer keeps its logits: the fused losses are computed from them.
            let keep = l.activation.needs_z() || i == last;
            z.push(if keep { buf(l.fan_out)? } else { Vec::new() });
        }
        Ok(Caches {
            capacity,
            widths: self.layers.iter().map(|l| l.fan_out).collect(),
            a: self
                .layers
                .iter()
                .map(|l| buf(l.fan_out))
                .collect::<Result<_>>()?,
            z,
            delta: self
                .layers
                .iter()
                .map(|l| buf(l.fan_out))
                .collect::<Result<_>>()?,
        })
    }

    /// Whether `caches` can hold `rows` rows of this network's layers.
    #[must_use]
    pub fn fits(&self, caches: &Caches<T>, rows: usize) -> bool {
        rows <= caches.capacity
            && caches.widths.len() == self.layers.len()
            && caches
                .widths
                .iter()
                .zip(&self.layers)
                .all(|(&w, l)| w == l.fan_out)
    }

    /// Whether every matrix product of a training step on `rows` rows is small
    /// enough to run on the calling thread.
    #[must_use]
    pub fn step_is_serial(&self, rows: usize) -> bool {
        self.layers.iter().all(|l| {
            let (i, o) = (l.fan_in, l.fan_out);
            is_serial(rows, i, o) && is_serial(i, rows, o) && is_serial(rows, o, i)
        })
    }

    /// Whether every product of a forward pass on `rows` rows runs on the
    /// calling thread.
    fn forward_is_serial(&self, rows: usize) -> bool {
        self.layers
            .iter()
            .all(|l| is_serial(rows, l.fan_in, l.fan_out))
    }

    /// Forward pass of `rows` samples of `x`, filling `caches.a` (and `z`).
    ///
    /// # Panics
    ///
    /// If `caches` cannot hold `rows` rows or `x` is shorter than `rows x n_inputs`.
    pub fn forward(&self, x: &[T], rows: usize, caches: &mut Caches<T>) {
        assert!(self.fits(caches, rows) && x.len() >= rows * self.n_inputs());
        for (l, layer) in self.layers.iter().enumerate() {
            let (below, rest) = caches.a.split_at_mut(l);
            let input: &[T] = if l == 0 { x } else { &below[l - 1] };
            let z = &mut caches.z[l];
            let keep = if z.is_empty() { None } else { Some(&mut z[..]) };
            layer.forward(input, rows, &mut rest[0], keep);
        }
    }

    /// The loss of the batch last passed forward; with `with_delta`, also writes
    /// the output layer's dL/dZ into `caches.delta`.
    pub fn loss(
        &self,
        caches: &mut Caches<T>,
        targets: Targets<'_, T>,
        rows: usize,
        with_delta: bool,
    ) -> BatchStats {
        let last = self.layers.len() - 1;
        let out = &self.layers[last];
        let delta = if with_delta {
            Some(&mut caches.delta[last][..])
        } else {
            None
        };
        batch_loss(
            self.loss,
            out.activation,
            &caches.z[last],
            &caches.a[last],
            targets,
            rows,
            out.fan_out,
            delta,
        )
    }

    /// Backward pass, after [`Network::forward`] and [`Network::loss`] with a delta:
    /// every layer's parameter gradients, by the chain rule in reverse order.
    /// Returns whether every gradient is finite.
    pub fn backward(
        &self,
        x: &[T],
        rows: usize,
        caches: &mut Caches<T>,
        grads: &mut [Gradient<T>],
    ) -> bool {
        let mut all_finite = true;
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (below, here) = caches.delta.split_at_mut(l);
            let input: &[T] = if l == 0 { x } else { &caches.a[l - 1] };

            // dW = A_prev^T delta, db = column sums of delta.
            all_finite &= layer.gradient(input, &here[0], rows, &mut grads[l]);

            // delta_prev = (delta W^T) (.) activation'(Z_prev); not needed below layer 0.
            if l > 0 {
                let act = self.layers[l - 1].activation;
                let (a, z) = (&caches.a[l - 1], &caches.z[l - 1]);
                layer.delta_below(&here[0], rows, &mut below[l - 1], act, a, z);
            }
        }
        all_finite
    }

    /// Output activations of every row of `x` (`rows x n_inputs`), computed in
    /// chunks of at most `chunk` rows, into `out` (`rows x n_outputs`).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if the caches cannot be allocated.
    ///
    /// # Panics
    ///
    /// If `x` or `out` do not have `rows` rows.
    pub fn predict(&self, x: &[T], rows: usize, chunk: usize, out: &mut [T]) -> Result<()> {
        let (f, o) = (self.n_inputs(), self.n_outputs());
        assert!(x.len() == rows * f && out.len() == rows * o);
        let serial = self.forward_is_serial(chunk.min(rows));
        crate::threads::run_unless(serial, || self.predict_chunks(x, rows, chunk, out))
    }

    fn predict_chunks(&self, x: &[T], rows: usize, chunk: usize, out: &mut [T]) -> Result<()> {
        let (f, o) = (self.n_inputs(), self.n_outputs());
        let mut caches = self.caches(chunk.min(rows).max(1))?;
        let last = self.layers.len() - 1;
        for start in (0..rows).step_by(chunk.max(1)) {
            let n = chunk.min(rows - start);
            self.forward(&x[start * f..(start + n) * f], n, &mut caches);
            out[start * o..(start + n) * o].copy_from_slice(&caches.a[last][..n * o]);
        }
        Ok(())
    }

    /// The summed loss and correct count over every row of `x`, in chunks.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if the caches cannot be allocated.
    pub fn evaluate(
        &self,
        x: &[T],
        targets: Targets<'_, T>,
        rows: usize,
        chunk: usize,
    ) -> Result<BatchStats> {
        let serial = self.forward_is_serial(chunk.min(rows));
        crate::threads::run_unless(serial, || self.evaluate_chunks(x, targets, rows, chunk))
    }

    fn evaluate_chunks(
        &self,
        x: &[T],
        targets: Targets<'_, T>,
        rows: usize,
        chunk: usize,
    ) -> Result<BatchStats> {
        let (f, o) = (self.n_inputs(), self.n_outputs());
        let mut caches = self.caches(chunk.min(rows).max(1))?;
        let mut total = BatchStats::default();
        for start in (0..rows).step_by(chunk.max(1)) {
            let n = chunk.min(rows - start);
            self.forward(&x[start * f..(start + n) * f], n, &mut caches);
            let part = match targets {
                Targets::Labels(y) => Targets::Labels(&y[start..start + n]),
                Targets::Dense(y) => Targets::Dense(&y[start * o..(start + n) * o]),
            };
            let s = self.loss(&mut caches, part, n, false);
            total.loss_sum += s.loss_sum;
            total.correct += s.correct;
        }
        Ok(total)
    }

    /// The mean loss over all of `x` and its gradient with respect to every
    /// parameter: one forward and one backward pass over the whole batch.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if the caches for all of `x` cannot
    /// be allocated.
    pub fn loss_and_gradients(
        &self,
        x: &[T],
        targets: Targets<'_, T>,
        rows: usize,
    ) -> Result<(f64, Vec<Gradient<T>>)> {
        let mut caches = self.caches(rows)?;
        let mut grads = self.zero_gradients()?;
        self.forward(x, rows, &mut caches);
        let stats = self.loss(&mut caches, targets, rows, true);
        // The gradients are returned as they are, finite or not, to be checked.
        let _ = self.backward(x, rows, &mut caches, &mut grads);
        #[allow(clippy::cast_precision_loss)]
        Ok((stats.loss_sum / rows as f64, grads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-2-1 network with identity hidden units and MSE, worked by hand.
    ///
    /// x = [1, 2], W1 = [[1, 0], [0, 1]], b1 = [0, 0] -> a1 = [1, 2];
    /// W2 = [[1], [1]], b2 = [0.5] -> o = 3.5; y = 1.5: loss = (3.5 - 1.5)^2 = 4.
    /// dL/do = 2 (o - y) = 4; dW2 = a1^T 4 = [[4], [8]]; db2 = [4];
    /// delta1 = 4 W2^T = [4, 4]; dW1 = x^T delta1 = [[4, 4], [8, 8]]; db1 = [4, 4].
    #[test]
    fn hand_computed_two_layer_gradients() {
        let specs = [(2, 2, Activation::Identity), (2, 1, Activation::Identity)];
        let mut net = Network::<f64>::new(&specs, Loss::Mse).unwrap();
        net.layers[0].w = vec![1.0, 0.0, 0.0, 1.0];
        net.layers[1].w = vec![1.0, 1.0];
        net.layers[1].b = vec![0.5];
        let (loss, g) = net
            .loss_and_gradients(&[1.0, 2.0], Targets::Dense(&[1.5]), 1)
            .unwrap();
        assert_eq!(loss, 4.0);
        assert_eq!(g[1].w, vec![4.0, 8.0]);
        assert_eq!(g[1].b, vec![4.0]);
        assert_eq!(g[0].w, vec![4.0, 4.0, 8.0, 8.0]);
        assert_eq!(g[0].b, vec![4.0, 4.0]);
    }

    #[test]
    fn construction_rejects_bad_stacks() {
        let relu = Activation::Relu;
        assert!(Network::<f32>::new(&[], Loss::Mse).is_err());
        let e = Network::<f32>::new(&[(4, 3, relu), (2, 1, relu)], Loss::Mse).unwrap_err();
        assert!(
            e.message()
                .contains("layer 1 expects 2 inputs, but layer 0 has 3 outputs"),
            "{e}"
        );
        let e = Network::<f32>::new(&[(4, 3, relu)], Loss::CrossEntropy).unwrap_err();
        assert!(e.message().contains("softmax"), "{e}");
    }

    #[test]
    fn gradients_match_central_differences_for_every_activation() {
        let x = [0.3, -1.1, 0.8, 0.5, 1.7, -0.4];
        let y = [0.2, 0.9, -0.5, 0.1];
        for act in Activation::ALL {
            let specs = [(3, 4, act), (4, 2, Activation::Tanh)];
            let mut net = Network::<f64>::new(&specs, Loss::Mse).unwrap();
            for (l, layer) in net.layers.iter_mut().enumerate() {
                for (i, w) in layer.w.iter_mut().enumerate() {
                    *w = ((i * 7 + l * 3) % 11) as f64 / 11.0 - 0.45;
                }
                for (i, b) in layer.b.iter_mut().enumerate() {
                    *b = 0.1 * i as f64 - 0.05;
                }
            }
            let (_, grads) = net.loss_and_gradients(&x, Targets::Dense(&y), 2).unwrap();
            let h = 1e-6;
            for (l, grad) in grads.iter().enumerate() {
                for i in 0..net.layers[l].w.len() {
                    let w0 = net.layers[l].w[i];
                    net.layers[l].w[i] = w0 + h;
                    let lp = net.loss_and_gradients(&x, Targets::Dense(&y), 2).unwrap().0;
                    net.layers[l].w[i] = w0 - h;
                    let lm = net.loss_and_gradients(&x, Targets::Dense(&y), 2).unwrap().0;
                    net.layers[l].w[i] = w0;
                    let fd = (lp - lm) / (2.0 * h);
                    let g = grad.w[i];
                    assert!(
                        (g - fd).abs() <= 1e-7 * (1.0 + fd.abs()),
                        "{act:?} l{l} w{i}: {g} vs {fd}"
                    );
                }
            }
        }
    }
}
