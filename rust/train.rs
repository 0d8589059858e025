//! The epoch loop: gather a mini-batch from a shuffled index, forward, loss,
//! backward, update; repeat until the data set is used up.
//!
//! Shapes: the data set `x` is `n x n_inputs`; dense targets are `n x n_outputs`,
//! labels `n`. `order` is a permutation (or any selection) of row indices.

use multiversion::multiversion;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::dense::Gradient;
use crate::error::{self, zeros, Error};
use crate::loss::Targets;
use crate::network::{Caches, Network};
use crate::optim::{Sgd, Velocity};
use crate::real::Real;
use crate::threads;

/// Every buffer a training step writes, allocated once per batch size and reused.
#[derive(Debug)]
pub struct Workspace<T> {
    /// The gathered inputs of the current batch, `batch x n_inputs`.
    x: Vec<T>,
    /// The gathered labels or dense targets of the current batch.
    labels: Vec<u32>,
    y: Vec<T>,
    caches: Caches<T>,
    grads: Vec<Gradient<T>>,
}

impl<T: Real> Workspace<T> {
    /// Buffers for `net` and batches of up to `batch` rows.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`](crate::Error::Memory) if they cannot be allocated.
    pub fn new(net: &Network<T>, batch: usize) -> error::Result<Self> {
        let mut labels = Vec::new();
        labels
            .try_reserve_exact(batch)
            .map_err(|_| Error::Memory(format!("cannot allocate {batch} labels")))?;
        labels.resize(batch, 0);
        Ok(Workspace {
            x: zeros(batch, net.n_inputs(), "the batch buffer")?,
            labels,
            y: zeros(batch, net.n_outputs(), "the batch targets")?,
            caches: net.caches(batch)?,
            grads: net.zero_gradients()?,
        })
    }

    /// Whether these buffers serve `net` at batch size `batch` as they are.
    #[must_use]
    pub fn fits(&self, net: &Network<T>, batch: usize) -> bool {
        net.fits(&self.caches, batch)
            && self.x.len() >= batch * net.n_inputs()
            && self.grads.len() == net.layers.len()
            && self
                .grads
                .iter()
                .zip(&net.layers)
                .all(|(g, l)| g.w.len() == l.w.len())
    }
}

/// Running totals over the steps of an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    /// Sum over the samples seen of each sample's loss.
    pub loss_sum: f64,
    /// Correct predictions (see [`crate::loss::BatchStats::correct`]).
    pub correct: usize,
    /// Samples trained on.
    pub samples: usize,
    /// Optimizer steps taken.
    pub steps: usize,
}

/// Why an epoch ended before its last batch.
#[derive(Debug)]
pub enum Stop<E> {
    /// The loss or a gradient of step `stats.steps` (0-based) was not finite; the
    /// parameters are those before that step.
    NonFinite { stats: EpochStats },
    /// The callback between batches asked to stop, with its reason.
    Interrupted { reason: E, stats: EpochStats },
}

/// One epoch of mini-batch SGD over the rows of `x` in the order `order`.
///
/// The last, smaller batch is kept and averaged over its own size. Between
/// batches, `between` is called with the totals so far; an `Err` from it stops
/// the epoch with the parameters at the last completed step.
///
/// # Errors
///
/// [`Stop::NonFinite`] when a step's loss or gradient is not finite (that step is
/// not applied), [`Stop::Interrupted`] when `between` returns an error.
///
/// # Panics
///
/// If `ws` does not fit `net` and `batch`, `batch` is zero, or an index in
/// `order` is out of range for `x`.
#[allow(clippy::too_many_arguments)]
pub fn train_epoch<T: Real, E: Send>(
    net: &mut Network<T>,
    ws: &mut Workspace<T>,
    x: &[T],
    targets: Targets<'_, T>,
    order: &[u32],
    batch: usize,
    sgd: &Sgd<T>,
    velocity: &mut Velocity<T>,
    between: &mut (dyn FnMut(&EpochStats) -> Result<(), E> + Send),
) -> Result<EpochStats, Stop<E>> {
    assert!(batch > 0 && ws.fits(net, batch));
    // An epoch with products to split runs on the pool, so that their panels
    // fork and join there instead of waking this thread each time.
    let serial = net.step_is_serial(batch);
    threads::run_unless(serial, || {
        epoch(net, ws, x, targets, order, batch, sgd, velocity, between)
    })
}

#[allow(clippy::too_many_arguments)]
fn epoch<T: Real, E: Send>(
    net: &mut Network<T>,
    ws: &mut Workspace<T>,
    x: &[T],
    targets: Targets<'_, T>,
    order: &[u32],
    batch: usize,
    sgd: &Sgd<T>,
    velocity: &mut Velocity<T>,
    between: &mut (dyn FnMut(&EpochStats) -> Result<(), E> + Send),
) -> Result<EpochStats, Stop<E>> {
    let (f, o) = (net.n_inputs(), net.n_outputs());
    let mut stats = EpochStats::default();
    for idx in order.chunks(batch) {
        let rows = idx.len();

        // Gather the batch's rows from the shuffled index.
        gather(&mut ws.x[..rows * f], x, idx, f);
        let batch_targets = match targets {
            Targets::Labels(y) => {
                for (dst, &i) in ws.labels.iter_mut().zip(idx) {
                    *dst = y[i as usize];
                }
                Targets::Labels(&ws.labels[..rows])
            }
            Targets::Dense(y) => {
                for (dst, &i) in ws.y.chunks_exact_mut(o).zip(idx) {
                    let i = i as usize;
                    dst.copy_from_slice(&y[i * o..(i + 1) * o]);
                }
                Targets::Dense(&ws.y[..rows * o])
            }
        };

        // Forward pass and loss, with the output layer's dL/dZ.
        let xb = &ws.x[..rows * f];
        net.forward(xb, rows, &mut ws.caches);
        let batch_stats = net.loss(&mut ws.caches, batch_targets, rows, true);
        if !batch_stats.loss_sum.is_finite() {
            return Err(Stop::NonFinite { stats });
        }

        // Backward pass; a non-finite gradient is refused before it reaches the weights.
        if !net.backward(xb, rows, &mut ws.caches, &mut ws.grads) {
            return Err(Stop::NonFinite { stats });
        }

        // Update.
        sgd.step(&mut net.layers, &ws.grads, velocity);
        stats.loss_sum += batch_stats.loss_sum;
        stats.correct += batch_stats.correct;
        stats.samples += rows;
        stats.steps += 1;

        if let Err(reason) = between(&stats) {
            return Err(Stop::Interrupted { reason, stats });
        }
    }
    Ok(stats)
}

/// A uniformly random order of `0..n` drawn from `seed`: Fisher-Yates over
/// xoshiro256++. The same seed gives the same order on every machine.
///
/// # Panics
///
/// If `n` does not fit in `u32`.
#[must_use]
pub fn shuffled_order(n: usize, seed: u64) -> Vec<u32> {
    let n = u32::try_from(n).expect("at most 2^32 samples");
    let mut order: Vec<u32> = (0..n).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
    order
}

/// Copies rows `idx` of `x` (`f` wide) into `dst`, in parallel chunks when large.
fn gather<T: Real>(dst: &mut [T], x: &[T], idx: &[u32], f: usize) {
    let copy = |dst: &mut [T], idx: &[u32]| {
        for (row, &i) in dst.chunks_exact_mut(f).zip(idx) {
            let i = i as usize;
            row.copy_from_slice(&x[i * f..(i + 1) * f]);
        }
    };
    if dst.len() < 1 << 15 {
        return copy(dst, idx);
    }
    let rows = ((1 << 14) / f).max(1);
    threads::run(|| {
        dst.par_chunks_mut(rows * f)
            .zip(idx.par_chunks(rows))
            .for_each(|(d, i)| copy(d, i));
    });
}

/// Whether every value of `values` is finite, as the check of a data set
/// before training: up to a megabyte on the calling thread, above that in
/// fixed chunks on the pool.
pub fn all_values_finite<T: Real>(values: &[T]) -> bool {
    const CHUNK: usize = 1 << 16;
    if std::mem::size_of_val(values) <= 1 << 20 {
        finite(values)
    } else {
        threads::run(|| values.par_chunks(CHUNK).all(finite))
    }
}

/// Whether every value is finite: `x * 0` is 0 for finite `x` and NaN otherwise,
/// and 64 independent sums of it vectorise into several vector registers, so
/// that no single chain of additions sets the pace.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
pub(crate) fn finite<T: Real>(values: &[T]) -> bool {
    let mut acc = [T::zero(); 64];
    let chunks = values.chunks_exact(64);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x * T::zero();
        }
    }
    rest.iter().all(|x| x.is_finite()) && acc.iter().all(|&a| a == T::zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::loss::Loss;

    #[test]
    fn shuffled_order_is_a_permutation_fixed_by_its_seed() {
        for n in [0, 1, 2, 17, 1437] {
            let order = shuffled_order(n, 7);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
            assert_eq!(order, shuffled_order(n, 7));
        }
        assert_ne!(shuffled_order(1437, 7), shuffled_order(1437, 8));
        // Every position takes every value about equally often.
        let (n, draws) = (5usize, 20_000u64);
        let mut counts = [[0u32; 5]; 5];
        for seed in 0..draws {
            for (pos, &v) in shuffled_order(n, seed).iter().enumerate() {
                counts[pos][v as usize] += 1;
            }
        }
        let expected = draws as f64 / n as f64;
        for row in counts {
            for c in row {
                assert!(
                    (f64::from(c) - expected).abs() < 0.06 * expected,
                    "{counts:?}"
                );
            }
        }
    }

    fn regression_net() -> Network<f64> {
        let specs = [(2, 3, Activation::Tanh), (3, 1, Activation::Identity)];
        let mut net = Network::new(&specs, Loss::Mse).unwrap();
        net.layers[0].w = vec![0.5, -0.3, 0.2, 0.1, 0.4, -0.6];
        net.layers[1].w = vec![0.3, -0.2, 0.5];
        net
    }

    #[test]
    fn epoch_equals_manual_steps_with_a_smaller_last_batch() {
        // 5 rows in batches of 2: steps of 2, 2 and 1 rows, each averaged over itself.
        let x = [0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0];
        let y = [0.3, -0.1, 0.2, 0.5, -0.4];
        let order = [4_u32, 1, 3, 0, 2];
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        };

        let mut manual = regression_net();
        let mut v_manual = Velocity::default();
        let mut expected_loss = 0.0;
        for idx in order.chunks(2) {
            let xb: Vec<f64> = idx
                .iter()
                .flat_map(|&i| x[2 * i as usize..2 * i as usize + 2].to_vec())
                .collect();
            let yb: Vec<f64> = idx.iter().map(|&i| y[i as usize]).collect();
            let (l, g) = manual
                .loss_and_gradients(&xb, Targets::Dense(&yb), idx.len())
                .unwrap();
            expected_loss += l * idx.len() as f64;
            sgd.step(&mut manual.layers, &g, &mut v_manual);
        }

        let mut net = regression_net();
        let mut ws = Workspace::new(&net, 2).unwrap();
        let mut v = Velocity::default();
        let mut calls = 0;
        let stats = train_epoch::<f64, ()>(
            &mut net,
            &mut ws,
            &x,
            Targets::Dense(&y),
            &order,
            2,
            &sgd,
            &mut v,
            &mut |_| {
                calls += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(net, manual);
        assert_eq!((stats.steps, stats.samples, calls), (3, 5, 3));
        assert!((stats.loss_sum - expected_loss).abs() < 1e-14);
    }

    #[test]
    fn non_finite_loss_stops_before_the_step() {
        let mut net = regression_net();
        let before = net.clone();
        let mut ws = Workspace::new(&net, 2).unwrap();
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        let y = [f64::INFINITY, 0.0];
        let r = train_epoch::<f64, ()>(
            &mut net,
            &mut ws,
            &[0.1, 0.2, 0.3, 0.4],
            Targets::Dense(&y),
            &[0, 1],
            2,
            &sgd,
            &mut Velocity::default(),
            &mut |_| Ok(()),
        );
        assert!(matches!(r, Err(Stop::NonFinite { stats }) if stats.steps == 0));
        assert_eq!(net, before);
    }

    #[test]
    fn interruption_leaves_the_last_completed_step() {
        let mut net = regression_net();
        let mut ws = Workspace::new(&net, 1).unwrap();
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        let r = train_epoch(
            &mut net,
            &mut ws,
            &[0.1, 0.2, 0.3, 0.4],
            Targets::Dense(&[0.5, 0.5]),
            &[0, 1],
            1,
            &sgd,
            &mut Velocity::default(),
            &mut |s: &EpochStats| if s.steps == 1 { Err("stop") } else { Ok(()) },
        );
        assert!(matches!(r, Err(Stop::Interrupted { reason: "stop", stats }) if stats.steps == 1));
    }

    #[test]
    fn finite_check_finds_nan_and_inf_anywhere() {
        let mut v = vec![1.0e30_f32; 21];
        assert!(finite(&v));
        for (i, bad) in [(3, f32::NAN), (17, f32::INFINITY), (20, f32::NEG_INFINITY)] {
            v[i] = bad;
            assert!(!finite(&v), "missed {bad} at {i}");
            v[i] = 1.0;
        }
    }
}
