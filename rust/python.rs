//! PyO3 bindings: numpy arrays in and out, the GIL released around whole
//! epochs and passes, and core errors mapped to Python exceptions.
//!
//! The Python package validates and converts every argument before it calls in
//! here (dtype, C order, shapes, label range); these functions check shapes
//! again so that a misuse of the private module raises instead of panicking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use numpy::{
    Element, PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::activation::Activation;
use crate::dense::Gradient;
use crate::error::{zeros, Error};
use crate::loss::{Loss, Targets};
use crate::network::Network;
use crate::optim::{Sgd, Velocity};
use crate::real::Real;
use crate::train::{train_epoch, EpochStats, Stop, Workspace};

/// Rows per chunk for `predict` and `evaluate`: bounds their memory.
const CHUNK: usize = 4096;

impl From<Error> for PyErr {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => PyValueError::new_err(m),
            Error::Memory(m) => PyMemoryError::new_err(m),
        }
    }
}

fn value_error(msg: String) -> PyErr {
    PyValueError::new_err(msg)
}

/// A network of one dtype with its training buffers.
struct Model<T> {
    net: Network<T>,
    ws: Option<Workspace<T>>,
}

enum Inner {
    F32(Model<f32>),
    F64(Model<f64>),
}

enum VelocityInner {
    F32(Velocity<f32>),
    F64(Velocity<f64>),
}

/// The network, its parameters and its training buffers (private; use
/// `backprop_rs.Sequential`).
#[pyclass(module = "backprop_rs._core", name = "Network")]
pub struct PyNetwork {
    inner: Inner,
}

/// An SGD optimizer's velocity buffers (private; held by `backprop_rs.SGD`).
#[pyclass(module = "backprop_rs._core", name = "Velocity")]
pub struct PyVelocity {
    inner: VelocityInner,
}

macro_rules! dispatch {
    ($inner:expr, $m:ident => $body:expr) => {
        match $inner {
            Inner::F32($m) => $body,
            Inner::F64($m) => $body,
        }
    };
}

fn slice2<'a, T: Element>(
    a: &'a PyReadonlyArray2<'_, T>,
    name: &str,
    cols: usize,
) -> PyResult<(&'a [T], usize)> {
    let shape = a.shape();
    if shape[1] != cols {
        return Err(value_error(format!(
            "{name} has shape ({}, {}); expected {cols} columns",
            shape[0], shape[1]
        )));
    }
    let s = a
        .as_slice()
        .map_err(|_| value_error(format!("{name} must be C-contiguous")))?;
    Ok((s, shape[0]))
}

fn targets<'a, T: Real + Element>(
    net: &Network<T>,
    labels: &'a Option<PyReadonlyArray1<'_, u32>>,
    dense: &'a Option<PyReadonlyArray2<'_, T>>,
    rows: usize,
) -> PyResult<Targets<'a, T>> {
    match (labels, dense) {
        (Some(l), None) => {
            let s = l
                .as_slice()
                .map_err(|_| value_error("labels must be contiguous".into()))?;
            let classes = net.n_outputs();
            if s.len() != rows {
                return Err(value_error(format!(
                    "labels has {} rows; expected {rows}",
                    s.len()
                )));
            }
            if net.loss != Loss::CrossEntropy {
                return Err(value_error(
                    "class labels are only accepted by cross_entropy".into(),
                ));
            }
            if let Some(&bad) = s.iter().find(|&&v| v as usize >= classes) {
                return Err(value_error(format!(
                    "label {bad} is outside [0, {classes})"
                )));
            }
            Ok(Targets::Labels(s))
        }
        (None, Some(d)) => {
            let (s, r) = slice2(d, "targets", net.n_outputs())?;
            if r != rows {
                return Err(value_error(format!(
                    "targets has {r} rows; expected {rows}"
                )));
            }
            Ok(Targets::Dense(s))
        }
        _ => Err(PyTypeError::new_err(
            "pass exactly one of labels and targets",
        )),
    }
}

fn to_numpy2<T: Element>(py: Python<'_>, v: &[T], rows: usize, cols: usize) -> PyResult<Py<PyAny>> {
    Ok(PyArray1::from_slice(py, v)
        .reshape([rows, cols])?
        .into_any()
        .unbind())
}

fn to_numpy1<T: Element>(py: Python<'_>, v: &[T]) -> Py<PyAny> {
    PyArray1::from_slice(py, v).into_any().unbind()
}

fn gradients_to_py<T: Real + Element>(
    py: Python<'_>,
    net: &Network<T>,
    grads: &[Gradient<T>],
) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
    net.layers
        .iter()
        .zip(grads)
        .map(|(l, g)| {
            Ok((
                to_numpy2(py, &g.w, l.fan_in, l.fan_out)?,
                to_numpy1(py, &g.b),
            ))
        })
        .collect()
}

impl<T: Real + Element> Model<T> {
    fn get_weights(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        self.net
            .layers
            .iter()
            .map(|l| {
                Ok((
                    to_numpy2(py, &l.w, l.fan_in, l.fan_out)?,
                    to_numpy1(py, &l.b),
                ))
            })
            .collect()
    }

    fn set_weights(&mut self, weights: &[(Bound<'_, PyAny>, Bound<'_, PyAny>)]) -> PyResult<()> {
        if weights.len() != self.net.layers.len() {
            return Err(value_error(format!(
                "weights has {} layers; expected {}",
                weights.len(),
                self.net.layers.len()
            )));
        }
        // Check everything first, then assign, so that a bad entry changes nothing.
        let mut new = Vec::with_capacity(weights.len());
        for (i, ((w, b), layer)) in weights.iter().zip(&self.net.layers).enumerate() {
            let w: PyReadonlyArray2<'_, T> = w.extract().map_err(|_| {
                PyTypeError::new_err(format!("weights[{i}][0] must be a 2-D {} array", T::DTYPE))
            })?;
            let b: PyReadonlyArray1<'_, T> = b.extract().map_err(|_| {
                PyTypeError::new_err(format!("weights[{i}][1] must be a 1-D {} array", T::DTYPE))
            })?;
            let (ws, rows) = slice2(&w, &format!("weights[{i}][0]"), layer.fan_out)?;
            let bs = b
                .as_slice()
                .map_err(|_| value_error(format!("weights[{i}][1] must be contiguous")))?;
            if rows != layer.fan_in || bs.len() != layer.fan_out {
                return Err(value_error(format!(
                    "weights[{i}] has shapes ({rows}, {}) and ({},); expected ({}, {}) and ({},)",
                    layer.fan_out,
                    bs.len(),
                    layer.fan_in,
                    layer.fan_out,
                    layer.fan_out
                )));
            }
            new.push((ws.to_vec(), bs.to_vec()));
        }
        for (layer, (w, b)) in self.net.layers.iter_mut().zip(new) {
            layer.w = w;
            layer.b = b;
        }
        Ok(())
    }

    fn predict(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let x: PyReadonlyArray2<'_, T> = x.extract()?;
        let (xs, rows) = slice2(&x, "X", self.net.n_inputs())?;
        let o = self.net.n_outputs();
        let mut out = zeros(rows, o, "the predictions")?;
        py.detach(|| self.net.predict(xs, rows, CHUNK, &mut out))?;
        to_numpy2(py, &out, rows, o)
    }

    fn evaluate(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
        dense: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, usize)> {
        let x: PyReadonlyArray2<'_, T> = x.extract()?;
        let dense: Option<PyReadonlyArray2<'_, T>> = dense.map(|d| d.extract()).transpose()?;
        let (xs, rows) = slice2(&x, "X", self.net.n_inputs())?;
        let t = targets(&self.net, &labels, &dense, rows)?;
        let s = py.detach(|| self.net.evaluate(xs, t, rows, CHUNK))?;
        Ok((s.loss_sum, s.correct))
    }

    fn loss_and_gradients(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
        dense: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, Vec<(Py<PyAny>, Py<PyAny>)>)> {
        let x: PyReadonlyArray2<'_, T> = x.extract()?;
        let dense: Option<PyReadonlyArray2<'_, T>> = dense.map(|d| d.extract()).transpose()?;
        let (xs, rows) = slice2(&x, "X", self.net.n_inputs())?;
        if rows == 0 {
            return Err(value_error("X has 0 rows; expected at least 1".into()));
        }
        let t = targets(&self.net, &labels, &dense, rows)?;
        let (loss, grads) = py.detach(|| self.net.loss_and_gradients(xs, t, rows))?;
        Ok((loss, gradients_to_py(py, &self.net, &grads)?))
    }

    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
        dense: Option<&Bound<'_, PyAny>>,
        order: &PyReadonlyArray1<'_, u32>,
        batch: usize,
        sgd: Sgd<T>,
        velocity: &mut Velocity<T>,
        callback: Option<Py<PyAny>>,
        interval: Duration,
    ) -> PyResult<(f64, usize, usize, usize, bool)> {
        let x: PyReadonlyArray2<'_, T> = x.extract()?;
        let dense: Option<PyReadonlyArray2<'_, T>> = dense.map(|d| d.extract()).transpose()?;
        let (xs, rows) = slice2(&x, "X", self.net.n_inputs())?;
        let t = targets(&self.net, &labels, &dense, rows)?;
        let order = order
            .as_slice()
            .map_err(|_| value_error("order must be contiguous".into()))?;
        if batch == 0 {
            return Err(value_error("batch_size must be positive".into()));
        }
        if let Some(&bad) = order.iter().find(|&&i| i as usize >= rows) {
            return Err(value_error(format!(
                "order holds index {bad}; X has {rows} rows"
            )));
        }
        if !matches!(&self.ws, Some(ws) if ws.fits(&self.net, batch)) {
            self.ws = None;
            self.ws = Some(Workspace::new(&self.net, batch)?);
        }
        if sgd.momentum != T::zero() {
            velocity.prepare(&self.net.layers)?;
        }
        let Model { net, ws } = self;
        let ws = ws.as_mut().expect("allocated above");

        let result = if net.step_is_serial(batch) {
            // The epoch runs on this thread, which can run Python's signal
            // handlers itself between steps.
            py.detach(|| {
                let mut last = Instant::now();
                let mut between = |s: &EpochStats| -> PyResult<()> {
                    if last.elapsed() < interval {
                        return Ok(());
                    }
                    last = Instant::now();
                    Python::attach(|py| {
                        py.check_signals()?;
                        report(py, callback.as_ref(), s)
                    })
                };
                train_epoch(net, ws, xs, t, order, batch, &sgd, velocity, &mut between)
            })
        } else {
            py.detach(|| {
                epoch_on_pool(
                    net,
                    ws,
                    xs,
                    t,
                    order,
                    batch,
                    &sgd,
                    velocity,
                    callback.as_ref(),
                    interval,
                )
            })
        };
        match result {
            Ok(s) => Ok((s.loss_sum, s.correct, s.samples, s.steps, false)),
            Err(Stop::NonFinite { stats: s }) => {
                Ok((s.loss_sum, s.correct, s.samples, s.steps, true))
            }
            Err(Stop::Interrupted { reason, .. }) => Err(reason),
        }
    }
}

/// Calls the progress callback, if any, with the totals so far.
fn report(py: Python<'_>, callback: Option<&Py<PyAny>>, s: &EpochStats) -> PyResult<()> {
    if let Some(cb) = callback {
        cb.call1(py, (s.steps, s.samples, s.loss_sum))?;
    }
    Ok(())
}

/// An epoch whose products are split across the pool. It runs on a thread of
/// its own, because Python runs signal handlers on the main thread only: the
/// calling thread watches for them every `interval` and, when one raises
/// (Ctrl-C), the epoch stops after the step it is in.
#[allow(clippy::too_many_arguments)]
fn epoch_on_pool<T: Real>(
    net: &mut Network<T>,
    ws: &mut Workspace<T>,
    xs: &[T],
    t: Targets<'_, T>,
    order: &[u32],
    batch: usize,
    sgd: &Sgd<T>,
    velocity: &mut Velocity<T>,
    callback: Option<&Py<PyAny>>,
    interval: Duration,
) -> Result<EpochStats, Stop<PyErr>> {
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let caller = std::thread::current();
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut last = Instant::now();
            let mut between = |s: &EpochStats| -> PyResult<()> {
                if stop.load(Ordering::Acquire) {
                    let err = raised.lock().unwrap_or_else(PoisonError::into_inner).take();
                    return Err(err.unwrap_or_else(|| PyKeyboardInterrupt::new_err(())));
                }
                if callback.is_none() || last.elapsed() < interval {
                    return Ok(());
                }
                last = Instant::now();
                Python::attach(|py| report(py, callback, s))
            };
            let result = train_epoch(net, ws, xs, t, order, batch, sgd, velocity, &mut between);
            caller.unpark();
            result
        });
        while !worker.is_finished() {
            std::thread::park_timeout(interval);
            if worker.is_finished() || stop.load(Ordering::Acquire) {
                continue;
            }
            if let Err(e) = Python::attach(|py| py.check_signals()) {
                *raised.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                stop.store(true, Ordering::Release);
            }
        }
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn parse_dtype(dtype: &str) -> PyResult<bool> {
    match dtype {
        "float32" => Ok(false),
        "float64" => Ok(true),
        other => Err(value_error(format!(
            "dtype is {other:?}; expected 'float32' or 'float64'"
        ))),
    }
}

#[pymethods]
impl PyNetwork {
    /// `layers` is a list of `(fan_in, fan_out, activation)`; weights start at zero.
    #[new]
    fn new(layers: Vec<(usize, usize, String)>, loss: &str, dtype: &str) -> PyResult<Self> {
        let mut specs = Vec::with_capacity(layers.len());
        for (i, (fan_in, fan_out, name)) in layers.into_iter().enumerate() {
            let act = Activation::from_name(&name)
                .ok_or_else(|| value_error(format!("layer {i} has unknown activation {name:?}")))?;
            specs.push((fan_in, fan_out, act));
        }
        let loss =
            Loss::from_name(loss).ok_or_else(|| value_error(format!("unknown loss {loss:?}")))?;
        let inner = if parse_dtype(dtype)? {
            Inner::F64(Model {
                net: Network::new(&specs, loss)?,
                ws: None,
            })
        } else {
            Inner::F32(Model {
                net: Network::new(&specs, loss)?,
                ws: None,
            })
        };
        Ok(PyNetwork { inner })
    }

    /// `"float32"` or `"float64"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        match &self.inner {
            Inner::F32(_) => f32::DTYPE,
            Inner::F64(_) => f64::DTYPE,
        }
    }

    /// A copy of every layer's `(W, b)`.
    fn get_weights(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        dispatch!(&self.inner, m => m.get_weights(py))
    }

    /// Replaces every layer's `(W, b)` with copies of the given arrays, or raises
    /// and changes nothing.
    fn set_weights(&mut self, weights: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>) -> PyResult<()> {
        dispatch!(&mut self.inner, m => m.set_weights(&weights))
    }

    /// Output activations for a C-contiguous 2-D `X` of the network's dtype.
    fn predict(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        dispatch!(&self.inner, m => m.predict(py, x))
    }

    /// `(loss summed over samples, correct predictions)`.
    #[pyo3(signature = (x, labels=None, targets=None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
        targets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, usize)> {
        dispatch!(&self.inner, m => m.evaluate(py, x, labels, targets))
    }

    /// `(mean loss, [(dW, db), ...])` over the whole of `X`, without an update.
    #[pyo3(signature = (x, labels=None, targets=None))]
    fn loss_and_gradients(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
        targets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, Vec<(Py<PyAny>, Py<PyAny>)>)> {
        dispatch!(&self.inner, m => m.loss_and_gradients(py, x, labels, targets))
    }

    /// A fresh velocity of this network's dtype.
    fn new_velocity(&self) -> PyVelocity {
        let inner = match &self.inner {
            Inner::F32(_) => VelocityInner::F32(Velocity::default()),
            Inner::F64(_) => VelocityInner::F64(Velocity::default()),
        };
        PyVelocity { inner }
    }

    /// One epoch in Rust with the GIL released. Between batches, at most every
    /// `interval` seconds, checks for signals and calls `callback(steps,
    /// samples, loss_sum)`. Returns `(loss_sum, correct, samples, steps,
    /// non_finite)`; with `non_finite` the epoch stopped before the step whose
    /// loss or gradient was not finite.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, labels, targets, order, batch_size, lr, momentum, nesterov,
                        weight_decay, velocity, callback=None, interval=0.1))]
    fn train_epoch(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
        targets: Option<&Bound<'_, PyAny>>,
        order: PyReadonlyArray1<'_, u32>,
        batch_size: usize,
        lr: f64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
        velocity: &mut PyVelocity,
        callback: Option<Py<PyAny>>,
        interval: f64,
    ) -> PyResult<(f64, usize, usize, usize, bool)> {
        let interval = Duration::from_secs_f64(interval.max(0.0));
        match (&mut self.inner, &mut velocity.inner) {
            (Inner::F32(m), VelocityInner::F32(v)) => {
                let sgd = Sgd {
                    lr: f32::c(lr),
                    momentum: f32::c(momentum),
                    nesterov,
                    weight_decay: f32::c(weight_decay),
                };
                m.train_epoch(
                    py, x, labels, targets, &order, batch_size, sgd, v, callback, interval,
                )
            }
            (Inner::F64(m), VelocityInner::F64(v)) => {
                let sgd = Sgd {
                    lr,
                    momentum,
                    nesterov,
                    weight_decay,
                };
                m.train_epoch(
                    py, x, labels, targets, &order, batch_size, sgd, v, callback, interval,
                )
            }
            _ => Err(value_error(
                "velocity has another dtype than the network".into(),
            )),
        }
    }
}

#[pymethods]
impl PyVelocity {
    /// Optimizer steps taken with this state.
    #[getter]
    fn steps(&self) -> u64 {
        match &self.inner {
            VelocityInner::F32(v) => v.steps,
            VelocityInner::F64(v) => v.steps,
        }
    }
}

/// Sets the number of threads the matrix products use from the next call on.
#[pyfunction]
fn set_num_threads(threads: usize) -> PyResult<()> {
    Ok(crate::threads::set_num_threads(threads)?)
}

/// The number of threads the matrix products use.
#[pyfunction]
fn get_num_threads() -> usize {
    crate::threads::num_threads()
}

/// The value of `BACKPROP_RS_NUM_THREADS` when it is set but the core cannot
/// use it (it then runs one thread per core), else `None`.
#[pyfunction]
fn invalid_thread_variable() -> Option<String> {
    crate::threads::requested_threads().err()
}

/// Whether every value of a C-contiguous float32 or float64 array is finite.
/// `None` for any other array, which the caller then checks itself.
#[pyfunction]
fn all_finite(py: Python<'_>, a: &Bound<'_, PyAny>) -> Option<bool> {
    fn scan<T: Real + Element>(py: Python<'_>, a: &Bound<'_, PyAny>) -> Option<bool> {
        let a: PyReadonlyArrayDyn<'_, T> = a.extract().ok()?;
        let values = a.as_slice().ok()?;
        if values.len() < 1 << 16 {
            Some(crate::train::all_values_finite(values))
        } else {
            Some(py.detach(|| crate::train::all_values_finite(values)))
        }
    }
    scan::<f32>(py, a).or_else(|| scan::<f64>(py, a))
}

/// What [`class_labels`] finds: the labels as uint32 (when all are in range),
/// their minimum and their maximum.
type Labels<'py> = Option<(Option<Bound<'py, PyArray1<u32>>>, i64, i64)>;

/// Class labels of a 1-D C-contiguous int64 or int32 array, in one pass: their
/// minimum and maximum, and when all lie in `0..n_classes` the labels as
/// uint32. `None` for any other array, which the caller then checks itself.
#[pyfunction]
fn class_labels<'py>(py: Python<'py>, a: &Bound<'py, PyAny>, n_classes: u32) -> Labels<'py> {
    fn scan<'py, T: Element + Copy + Into<i64>>(
        py: Python<'py>,
        a: &Bound<'py, PyAny>,
        n_classes: u32,
    ) -> Labels<'py> {
        let a: PyReadonlyArray1<'_, T> = a.extract().ok()?;
        let values = a.as_slice().ok()?;
        let (low, high) = values.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &v| {
            let v = v.into();
            (lo.min(v), hi.max(v))
        });
        if values.is_empty() || low < 0 || high >= i64::from(n_classes) {
            return Some((None, low, high));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let labels = values.iter().map(|&v| v.into() as u32).collect::<Vec<_>>();
        Some((Some(PyArray1::from_vec(py, labels)), low, high))
    }
    scan::<i64>(py, a, n_classes).or_else(|| scan::<i32>(py, a, n_classes))
}

/// A random order of `0..n` as uint32, drawn from `seed` (see
/// `train::shuffled_order`): the epoch's shuffle.
#[pyfunction]
fn shuffled_order(py: Python<'_>, n: usize, seed: u64) -> PyResult<Bound<'_, PyArray1<u32>>> {
    if u32::try_from(n).is_err() {
        return Err(value_error(format!(
            "cannot shuffle {n} samples; at most 2^32 are supported"
        )));
    }
    Ok(PyArray1::from_vec(
        py,
        crate::train::shuffled_order(n, seed),
    ))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(invalid_thread_variable, m)?)?;
    m.add_function(wrap_pyfunction!(all_finite, m)?)?;
    m.add_function(wrap_pyfunction!(shuffled_order, m)?)?;
    m.add_function(wrap_pyfunction!(class_labels, m)?)?;
    m.add_class::<PyNetwork>()?;
    m.add_class::<PyVelocity>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_THREADS", crate::threads::MAX_THREADS)?;
    Ok(())
}
