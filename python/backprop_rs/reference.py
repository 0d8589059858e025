"""The numpy reference: the same model, computed with numpy alone.

``backprop_rs.reference.Sequential`` has the API and the semantics of
``backprop_rs.Sequential`` (it shares its argument checks, history and
progress), but every number comes from the numpy code below: the forward pass
with cached activations, the fused output gradients, the backward pass and the
SGD update, written with preallocated buffers and in-place operations as a
careful numpy user would write them. It is the baseline of the benchmark and
the second implementation the tests compare the Rust core with.

Shapes: a batch ``x`` is ``(rows, fan_in[0])``; ``a[l]``, ``z[l]`` and
``delta[l]`` are ``(rows, fan_out[l])``; ``W[l]`` is ``(fan_in, fan_out)``.

GELU uses ``math.erf`` element by element (numpy has no ``erf``), which is
exact but slow; the other activations are vectorised.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from ._model import Dense, History, NonFiniteLossError
from ._model import Sequential as _CoreSequential
from ._optim import SGD, CosineAnnealing, ExponentialDecay, StepDecay

__all__ = [
    "SGD",
    "CosineAnnealing",
    "Dense",
    "ExponentialDecay",
    "History",
    "NonFiniteLossError",
    "Sequential",
    "StepDecay",
]

_LEAKY_SLOPE = 0.01
_CHUNK = 4096
_erf = np.frompyfunc(math.erf, 1, 1)


def _activate(name: str, z: np.ndarray) -> None:
    """Apply activation ``name`` to ``z`` in place."""
    if name == "identity":
        return
    if name == "sigmoid":
        e = np.exp(-np.abs(z))
        np.copyto(z, np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))
    elif name == "tanh":
        np.tanh(z, out=z)
    elif name == "relu":
        np.maximum(z, 0, out=z)
    elif name == "leaky_relu":
        np.multiply(z, _LEAKY_SLOPE, out=z, where=z < 0)
    elif name == "elu":
        np.expm1(z, out=z, where=z <= 0)
    elif name == "gelu":
        np.copyto(z, 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)).astype(z.dtype)))
    elif name == "softplus":
        np.copyto(z, np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))))
    elif name == "softmax":
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown activation {name!r}")


def _derivative(
    name: str, delta: np.ndarray, a: np.ndarray, z: np.ndarray | None
) -> None:
    """Turn dL/dA in ``delta`` into dL/dZ in place."""
    if name == "identity":
        return
    if name == "sigmoid":
        delta *= a * (1 - a)
    elif name == "tanh":
        delta *= 1 - a * a
    elif name == "relu":
        delta[a <= 0] = 0
    elif name == "leaky_relu":
        np.multiply(delta, _LEAKY_SLOPE, out=delta, where=a <= 0)
    elif name == "elu":
        np.multiply(delta, a + 1, out=delta, where=a <= 0)
    elif name == "gelu":
        assert z is not None
        cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)).astype(z.dtype))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        delta *= cdf + z * pdf
    elif name == "softplus":
        delta *= -np.expm1(-a)
    elif name == "softmax":
        dot = np.einsum("ij,ij->i", delta, a)[:, None]
        delta -= dot
        delta *= a
    else:
        raise ValueError(f"unknown activation {name!r}")


def _log_sum_exp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


class _Velocity:
    """The reference optimizer's momentum buffers."""

    def __init__(self) -> None:
        self.buffers: list[list[np.ndarray]] | None = None
        self.steps = 0


class _Network:
    """The numpy engine behind ``reference.Sequential``."""

    def __init__(
        self, specs: list[tuple[int, int, str]], loss: str, dtype: str
    ) -> None:
        self.specs = list(specs)
        self.loss = loss
        self._dtype = np.dtype(dtype)
        self.W = [np.zeros((i, o), dtype=self._dtype) for i, o, _ in specs]
        self.b = [np.zeros(o, dtype=self._dtype) for _, o, _ in specs]
        self.act = [a for _, _, a in specs]
        self._buffers: dict[str, Any] | None = None

    @property
    def dtype(self) -> str:
        return self._dtype.name

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(w.copy(), b.copy()) for w, b in zip(self.W, self.b)]

    def set_weights(self, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.W = [np.array(w, dtype=self._dtype, order="C") for w, _ in weights]
        self.b = [np.array(b, dtype=self._dtype, order="C") for _, b in weights]

    def new_velocity(self) -> _Velocity:
        return _Velocity()

    # Passes ---------------------------------------------------------------

    def _alloc(self, rows: int) -> dict[str, Any]:
        outs = [o for _, o, _ in self.specs]
        last = len(outs) - 1
        return {
            "rows": rows,
            "a": [np.empty((rows, o), self._dtype) for o in outs],
            "z": [
                np.empty((rows, o), self._dtype)
                if (self.act[i] == "gelu" or i == last)
                else None
                for i, o in enumerate(outs)
            ],
            "delta": [np.empty((rows, o), self._dtype) for o in outs],
            "dW": [np.empty_like(w) for w in self.W],
            "db": [np.empty_like(b) for b in self.b],
        }

    def _forward(self, x: np.ndarray, buf: dict[str, Any], rows: int) -> None:
        inp = x
        for l, (w, b) in enumerate(zip(self.W, self.b)):
            a = buf["a"][l][:rows]
            np.matmul(inp, w, out=a)
            a += b
            z = buf["z"][l]
            if z is not None:
                z[:rows] = a
            _activate(self.act[l], a)
            inp = a

    def _loss(
        self,
        buf: dict[str, Any],
        labels: np.ndarray | None,
        dense: np.ndarray | None,
        rows: int,
        with_delta: bool,
    ) -> tuple[float, int]:
        last = len(self.W) - 1
        z = buf["z"][last][:rows]
        a = buf["a"][last][:rows]
        delta = buf["delta"][last][:rows]
        width = a.shape[1]
        loss = self.loss
        if loss == "cross_entropy":
            lse = _log_sum_exp(z)
            if labels is not None:
                rows_ix = np.arange(rows)
                total = float((lse - z[rows_ix, labels]).sum(dtype=np.float64))
                correct = int((a.argmax(axis=1) == labels).sum())
                if with_delta:
                    np.multiply(a, 1.0 / rows, out=delta)
                    delta[rows_ix, labels] -= 1.0 / rows
            else:
                assert dense is not None
                total = float((dense * (lse[:, None] - z)).sum(dtype=np.float64))
                correct = int((a.argmax(axis=1) == dense.argmax(axis=1)).sum())
                if with_delta:
                    s = dense.sum(axis=1, keepdims=True)
                    np.multiply(a, s, out=delta)
                    delta -= dense
                    delta *= 1.0 / rows
            return total, correct
        assert dense is not None
        if loss == "binary_cross_entropy":
            per = np.maximum(z, 0) - z * dense + np.log1p(np.exp(-np.abs(z)))
            total = float((per.sum(axis=1) * (1.0 / width)).sum(dtype=np.float64))
            correct = int(((z > 0) == (dense > 0.5)).sum())
            if with_delta:
                np.subtract(a, dense, out=delta)
                delta *= 1.0 / (rows * width)
            return total, correct
        r = a - dense
        if loss == "mse":
            per, grad = r * r, 2 * r
        elif loss == "mae":
            per, grad = np.abs(r), np.sign(r)
        else:
            per = np.where(np.abs(r) <= 1, 0.5 * r * r, np.abs(r) - 0.5)
            grad = np.clip(r, -1, 1)
        total = float((per.sum(axis=1) * (1.0 / width)).sum(dtype=np.float64))
        if with_delta:
            np.multiply(grad, 1.0 / (rows * width), out=delta)
            zl = buf["z"][last]
            _derivative(self.act[last], delta, a, None if zl is None else zl[:rows])
        return total, 0

    def _backward(self, x: np.ndarray, buf: dict[str, Any], rows: int) -> None:
        for l in range(len(self.W) - 1, -1, -1):
            delta = buf["delta"][l][:rows]
            inp = x if l == 0 else buf["a"][l - 1][:rows]
            # dW = A_prev^T delta, db = column sums of delta.
            np.matmul(inp.T, delta, out=buf["dW"][l])
            np.sum(delta, axis=0, out=buf["db"][l])
            # delta_prev = (delta W^T) * activation'(Z_prev).
            if l > 0:
                prev = buf["delta"][l - 1][:rows]
                np.matmul(delta, self.W[l].T, out=prev)
                zp = buf["z"][l - 1]
                _derivative(
                    self.act[l - 1],
                    prev,
                    buf["a"][l - 1][:rows],
                    None if zp is None else zp[:rows],
                )

    def _step(
        self,
        buf: dict[str, Any],
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
        velocity: _Velocity,
    ) -> None:
        velocity.steps += 1
        params = [p for pair in zip(self.W, self.b) for p in pair]
        grads = [g for pair in zip(buf["dW"], buf["db"]) for g in pair]
        first = velocity.buffers is None
        if first and momentum != 0.0:
            velocity.buffers = [[np.empty_like(p)] for p in params]
        for i, (p, g) in enumerate(zip(params, grads)):
            if weight_decay != 0.0:
                g += weight_decay * p
            if momentum != 0.0:
                assert velocity.buffers is not None
                v = velocity.buffers[i][0]
                if first:
                    v[...] = g
                else:
                    v *= momentum
                    v += g
                if nesterov:
                    g += momentum * v
                    step = g
                else:
                    step = v
            else:
                step = g
            p -= lr * step

    # The engine interface ---------------------------------------------------

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], self.specs[-1][1]), self._dtype)
        buf = self._alloc(min(_CHUNK, x.shape[0]))
        for s in range(0, x.shape[0], _CHUNK):
            part = x[s : s + _CHUNK]
            self._forward(part, buf, part.shape[0])
            out[s : s + part.shape[0]] = buf["a"][-1][: part.shape[0]]
        return out

    def evaluate(
        self,
        x: np.ndarray,
        labels: np.ndarray | None = None,
        targets: np.ndarray | None = None,
    ) -> tuple[float, int]:
        buf = self._alloc(min(_CHUNK, x.shape[0]))
        total, correct = 0.0, 0
        for s in range(0, x.shape[0], _CHUNK):
            part = x[s : s + _CHUNK]
            rows = part.shape[0]
            self._forward(part, buf, rows)
            t, c = self._loss(
                buf,
                None if labels is None else labels[s : s + rows],
                None if targets is None else targets[s : s + rows],
                rows,
                False,
            )
            total += t
            correct += c
        return total, correct

    def loss_and_gradients(
        self,
        x: np.ndarray,
        labels: np.ndarray | None = None,
        targets: np.ndarray | None = None,
    ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        rows = x.shape[0]
        buf = self._alloc(rows)
        self._forward(x, buf, rows)
        total, _ = self._loss(buf, labels, targets, rows, True)
        self._backward(x, buf, rows)
        return total / rows, [
            (w.copy(), b.copy()) for w, b in zip(buf["dW"], buf["db"])
        ]

    # A diverging run overflows on its way to the non-finite loss that stops
    # it; the caller reports that, so numpy's warnings stay quiet.
    @np.errstate(over="ignore", invalid="ignore")
    def train_epoch(
        self,
        x: np.ndarray,
        labels: np.ndarray | None,
        targets: np.ndarray | None,
        order: np.ndarray,
        batch_size: int,
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
        velocity: _Velocity,
        callback: Callable[..., Any] | None = None,
        interval: float = 0.1,
    ) -> tuple[float, int, int, int, bool]:
        if self._buffers is None or self._buffers["rows"] < batch_size:
            self._buffers = self._alloc(batch_size)
        buf = self._buffers
        xb = np.empty((batch_size, x.shape[1]), self._dtype)
        total, correct, samples, steps = 0.0, 0, 0, 0
        last = time.monotonic()
        for s in range(0, order.shape[0], batch_size):
            idx = order[s : s + batch_size]
            rows = idx.shape[0]
            # Gather the batch from the shuffled index.
            np.take(x, idx, axis=0, out=xb[:rows])
            lb = None if labels is None else labels[idx]
            tb = None if targets is None else targets[idx]
            # Forward, loss and the output layer's dL/dZ.
            self._forward(xb[:rows], buf, rows)
            t, c = self._loss(buf, lb, tb, rows, True)
            if not math.isfinite(t):
                return total, correct, samples, steps, True
            # Backward; a non-finite gradient never reaches the weights.
            self._backward(xb[:rows], buf, rows)
            if not all(np.isfinite(g).all() for g in buf["dW"] + buf["db"]):
                return total, correct, samples, steps, True
            # Update.
            self._step(buf, lr, momentum, nesterov, weight_decay, velocity)
            total += t
            correct += c
            samples += rows
            steps += 1
            if callback is not None and time.monotonic() - last >= interval:
                last = time.monotonic()
                callback(steps, samples, total)
        return total, correct, samples, steps, False


class Sequential(_CoreSequential):
    """``backprop_rs.Sequential`` computed by numpy: same API, same semantics.

    See ``backprop_rs.Sequential`` for the parameters. With the same seed both
    draw the same initial weights and the same shuffles, so the two can be
    compared step for step.
    """

    _engine = _Network  # type: ignore[assignment]
