"""Input validation, layout independence and caller-array safety.

Every public entry point validates before it touches state: a bad argument
raises ``ValueError`` or ``TypeError`` naming the argument, what it got and
what it expected, and leaves the model (weights, generator) and the optimizer
(velocity, epoch count) exactly as they were. Valid inputs laid out
differently give the same numbers as the plain case, and the caller's arrays
are never modified.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

import backprop_rs as bp

# Converting a float64 value beyond float32's range warns before the check
# refuses it; the refusal is what these tests are about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered in cast:RuntimeWarning"
)

ENGINES = [
    pytest.param(bp.Sequential, id="core"),
    pytest.param(bp.reference.Sequential, id="reference"),
]
INT_DTYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    ">i2",
    ">i4",
    ">i8",
    ">u2",
    ">u4",
    ">u8",
]


# Data and models -------------------------------------------------------------


def _data(n: int = 20, seed: int = 123) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    # Values exactly representable in float32, so float32 and float64 inputs
    # convert to the same numbers for either model dtype.
    X = rng.normal(size=(n, 4)).astype(np.float32).astype(np.float64)
    y = np.arange(n, dtype=np.int64) % 3
    rng.shuffle(y)
    Y = rng.normal(size=(n, 2)).astype(np.float32).astype(np.float64)
    B = rng.uniform(size=(n, 2)).astype(np.float32).astype(np.float64)
    Xv = rng.normal(size=(10, 4)).astype(np.float32).astype(np.float64)
    yv = np.arange(10, dtype=np.int64) % 3
    Yv = rng.normal(size=(10, 2)).astype(np.float32).astype(np.float64)
    return SimpleNamespace(X=X, y=y, Y=Y, B=B, Xv=Xv, yv=yv, Yv=Yv)


D = _data()


def _model(cls, kind: str = "clf", *, dtype: str = "float32", seed: int = 0):
    if kind == "clf":
        layers = [bp.Dense(4, 5, "relu"), bp.Dense(5, 3, "softmax")]
        loss = "cross_entropy"
    elif kind == "reg":
        layers = [bp.Dense(4, 5, "tanh"), bp.Dense(5, 2)]
        loss = "mse"
    else:
        layers = [bp.Dense(4, 5, "relu"), bp.Dense(5, 2, "sigmoid")]
        loss = "binary_cross_entropy"
    return cls(layers, loss, dtype=dtype, seed=seed)


def _targets(kind: str):
    return {"clf": D.y, "reg": D.Y, "bce": D.B}[kind]


def _opt() -> bp.SGD:
    return bp.SGD(lr=0.05, momentum=0.9, schedule=bp.StepDecay(1, 0.5))


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_weights_equal(w1, w2) -> None:
    assert len(w1) == len(w2)
    for (a, b), (c, d) in zip(w1, w2):
        assert _same_bits(a, c)
        assert _same_bits(b, d)


def _assert_grads_equal(g1, g2) -> None:
    assert g1[0] == g2[0]
    _assert_weights_equal(g1[1], g2[1])


def _assert_untouched(cls, kind, call, exc, match, dtype="float32"):
    """``call(model, opt)`` raises; the model and optimizer did not change.

    Both the model and a twin are trained one epoch first (so the optimizer
    has velocity and an epoch count), then the bad call runs on the model,
    and both train two more epochs: they must stay bitwise equal.
    """
    t = _targets(kind)
    model, twin = _model(cls, kind, dtype=dtype), _model(cls, kind, dtype=dtype)
    opt, twin_opt = _opt(), _opt()
    model.fit(D.X, t, epochs=1, batch_size=8, optimizer=opt)
    twin.fit(D.X, t, epochs=1, batch_size=8, optimizer=twin_opt)
    before = model.get_weights()
    epochs = opt.epochs_done
    with pytest.raises(exc, match=match):
        call(model, opt)
    _assert_weights_equal(model.get_weights(), before)
    assert opt.epochs_done == epochs
    h1 = model.fit(D.X, t, epochs=2, batch_size=8, optimizer=opt)
    h2 = twin.fit(D.X, t, epochs=2, batch_size=8, optimizer=twin_opt)
    _assert_weights_equal(model.get_weights(), twin.get_weights())
    assert h1.history == h2.history
    assert h1.epoch == h2.epoch == [1, 2]


def _with(a, index, value):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


# Bad X, for every method that takes X ------------------------------------------

BAD_X = [
    ("none", None, TypeError, r"^X is None; expected an array-like of numbers$"),
    (
        "features",
        D.X[:, :3],
        ValueError,
        r"^X has 3 features, but the first layer expects 4$",
    ),
    (
        "features-more",
        np.hstack([D.X, D.X]),
        ValueError,
        r"^X has 8 features, but the first layer expects 4$",
    ),
    (
        "1-D",
        D.X[0],
        ValueError,
        r"^X must be 2-D \(samples, features\); got float64 array of shape \(4,\)"
        r"; reshape a single sample with X\.reshape\(1, -1\)",
    ),
    (
        "3-D",
        D.X.reshape(20, 2, 2),
        ValueError,
        r"^X must be 2-D \(samples, features\); got float64 array of shape "
        r"\(20, 2, 2\)$",
    ),
    ("0-D", np.float64(1.0), ValueError, r"^X must be 2-D .*shape \(\)"),
    ("empty", D.X[:0], ValueError, r"^X has 0 samples; expected at least 1$"),
    (
        "object",
        D.X.astype(object),
        TypeError,
        r"^X has dtype object; expected a real numeric dtype",
    ),
    ("string", D.X.astype(str), TypeError, r"^X has dtype <U\d+; expected a real"),
    ("bytes", D.X.astype("S8"), TypeError, r"^X has dtype \|S8; expected a real"),
    (
        "complex",
        D.X.astype(complex),
        TypeError,
        r"^X has dtype complex128; expected a real numeric dtype",
    ),
    (
        "structured",
        np.zeros(20, dtype="f8,f8,f8,f8"),
        TypeError,
        r"^X has dtype \[\('f0', '<f8'\).*expected a real numeric dtype",
    ),
    (
        "timedelta",
        np.zeros((20, 4), dtype="m8[s]"),
        TypeError,
        r"^X has dtype timedelta64\[s\]; expected a real numeric dtype",
    ),
    (
        "ragged",
        [[1.0, 2.0, 3.0, 4.0], [1.0]],
        TypeError,
        r"^X must be array-like of numbers",
    ),
    (
        "nan",
        _with(D.X, (3, 1), np.nan),
        ValueError,
        r"^X contains nan at index \(3, 1\); expected only finite values$",
    ),
    (
        "inf",
        _with(D.X, (7, 2), np.inf),
        ValueError,
        r"^X contains inf at index \(7, 2\); expected only finite values$",
    ),
    (
        "-inf",
        _with(D.X, (0, 0), -np.inf),
        ValueError,
        r"^X contains -inf at index \(0, 0\)",
    ),
    (
        "nan-float32",
        _with(D.X, (5, 3), np.nan).astype(np.float32),
        ValueError,
        r"^X contains nan at index \(5, 3\)",
    ),
    (
        "overflow-float32",
        _with(D.X, (2, 2), 1e300),
        ValueError,
        r"^X converted to float32 contains inf at index \(2, 2\)",
    ),
    (
        "nan-fortran-order",
        np.asfortranarray(_with(D.X, (6, 1), np.nan)),
        ValueError,
        r"^X contains nan at index \(6, 1\); expected only finite values$",
    ),
    (
        "inf-big-endian",
        _with(D.X, (4, 3), np.inf).astype(">f8"),
        ValueError,
        r"^X contains inf at index \(4, 3\); expected only finite values$",
    ),
]


def _call_x(method, model, X):
    if method == "predict":
        return model.predict(X)
    empty = isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[0] == 0
    y = D.y[:0] if empty else D.y
    if method == "fit":
        return model.fit(X, y, epochs=1, batch_size=8)
    return getattr(model, method)(X, y)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("method", ["fit", "predict", "evaluate", "loss_and_gradients"])
@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [pytest.param(x, e, m, id=i) for i, x, e, m in BAD_X],
)
def test_bad_X(cls, method, X, exc, match):
    _assert_untouched(cls, "clf", lambda m, o: _call_x(method, m, X), exc, match)


@pytest.mark.parametrize("cls", ENGINES)
def test_a_non_finite_value_at_the_end_of_a_large_data_set_is_found(cls):
    # Over a megabyte, so the scan runs in chunks on the thread pool.
    X = np.tile(D.X.astype(np.float32), (4000, 1))
    y = np.tile(D.y, 4000)
    X[-1, -1] = -np.inf

    def call(m, o):
        m.fit(X, y, batch_size=4096, optimizer=o)

    _assert_untouched(
        cls, "clf", call, ValueError, r"^X contains -inf at index \(79999, 3\)"
    )


def _unaligned(a):
    """A C-contiguous copy of ``a`` at an odd address, as a memory map at an odd
    offset gives."""
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf[1:].data, dtype=a.dtype).reshape(a.shape)
    out[...] = a
    assert out.flags.c_contiguous and not out.flags.aligned
    return out


@pytest.mark.parametrize("cls", ENGINES)
def test_unaligned_arrays_are_accepted_everywhere(cls):
    X = _unaligned(D.X.astype(np.float32))
    y = _unaligned(D.y.astype(np.int64))
    aligned, unaligned = _model(cls), _model(cls)
    aligned.fit(
        D.X.astype(np.float32), D.y, epochs=2, batch_size=8, validation_data=(D.X, D.y)
    )
    unaligned.fit(X, y, epochs=2, batch_size=8, validation_data=(X, y))
    for (w1, b1), (w2, b2) in zip(aligned.get_weights(), unaligned.get_weights()):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    np.testing.assert_array_equal(aligned.predict(D.X), unaligned.predict(X))
    assert aligned.evaluate(D.X, D.y) == unaligned.evaluate(X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 40, 1 << 16, (1 << 18) + 3])
def test_core_finite_scan_sees_every_position(dtype, n):
    from backprop_rs import _core

    a = np.ones(n, dtype=dtype)
    assert _core.all_finite(a) is True
    positions = {0, n // 2, n - 1, min(n - 1, 15), min(n - 1, (1 << 16) - 1)}
    for i in sorted(positions):
        for bad in (np.nan, np.inf, -np.inf):
            a[i] = bad
            assert _core.all_finite(a) is False, (i, bad)
            a[i] = 1.0
    # Arrays the core does not scan are left to numpy.
    assert _core.all_finite(a[::2]) is (None if n > 1 else True)
    assert _core.all_finite(a.astype(np.float16)) is None
    assert _core.all_finite(a.astype(a.dtype.newbyteorder(">"))) is None


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("n", [1, 7, 64, 1001])
def test_core_class_labels_convert_or_report_the_range(dtype, n):
    from backprop_rs import _core

    y = (np.arange(n) * 7 % 5).astype(dtype)
    labels, low, high = _core.class_labels(y, 5)
    assert labels.dtype == np.uint32
    np.testing.assert_array_equal(labels, y.astype(np.int64))
    assert (low, high) == (int(y.min()), int(y.max()))
    for i in sorted({0, n // 2, n - 1}):
        for bad in (-1, 5, np.iinfo(dtype).min, np.iinfo(dtype).max):
            z = y.copy()
            z[i] = bad
            assert _core.class_labels(z, 5) == (None, int(z.min()), int(z.max()))
    # Arrays the core does not read are left to numpy.
    assert _core.class_labels(y.astype(np.uint8), 5) is None
    assert _core.class_labels(y.astype(np.float64), 5) is None
    assert _core.class_labels(y.astype(y.dtype.newbyteorder(">")), 5) is None
    assert _core.class_labels(y.reshape(1, -1), 5) is None
    if n > 1:
        assert _core.class_labels(y[::2], 5) is None
        assert _core.class_labels(_unaligned(y), 5) is None


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.nan, r"^y contains nan at index 7; expected only finite values$"),
        (1e300, r"^y converted to float32 contains inf at index 7; expected only"),
    ],
)
def test_bad_1d_regression_target_is_named_at_its_own_index(cls, value, match):
    model = cls([bp.Dense(4, 1)], "mse", seed=0)
    before = model.get_weights()
    y = D.Y[:, 0].copy()
    y[7] = value
    with pytest.raises(ValueError, match=match):
        model.fit(D.X, y, epochs=1, batch_size=8)
    _assert_weights_equal(model.get_weights(), before)
    # A target of the wrong width names the single unit in the singular.
    with pytest.raises(ValueError, match=r"for an output layer of 1 unit$"):
        model.fit(D.X, D.Y, epochs=1)
    # A good 1-D target trains as its (n, 1) column does.
    twin = cls([bp.Dense(4, 1)], "mse", seed=0)
    model.fit(D.X, D.Y[:, 0], epochs=2, batch_size=8)
    twin.fit(D.X, D.Y[:, :1], epochs=2, batch_size=8)
    _assert_weights_equal(model.get_weights(), twin.get_weights())


@pytest.mark.parametrize("cls", ENGINES)
def test_bad_X_fit_with_optimizer(cls):
    def call(m, o):
        m.fit(D.X[:, :3], D.y, epochs=3, optimizer=o)

    _assert_untouched(cls, "clf", call, ValueError, "X has 3 features")


@pytest.mark.parametrize("cls", ENGINES)
def test_float64_values_beyond_float32_are_fine_in_a_float64_model(cls):
    model = _model(cls, "reg", dtype="float64")
    assert model.predict(_with(D.X, (2, 2), 1e300)).shape == (20, 2)


# Bad targets -------------------------------------------------------------------


def _labels_with(index, value, dtype=np.int64):
    y = D.y.astype(dtype)
    y[index] = value
    return y


BAD_Y = [
    ("clf", "count-short", D.y[:-1], ValueError, r"^y has 19 samples, but X has 20$"),
    (
        "clf",
        "count-long",
        np.concatenate([D.y, D.y]),
        ValueError,
        r"^y has 40 samples, but X has 20$",
    ),
    (
        "clf",
        "label-negative",
        _labels_with(4, -1),
        ValueError,
        r"^y holds label -1 at index 4; expected class labels in \[0, 3\) for an "
        r"output layer of 3 units$",
    ),
    (
        "clf",
        "label-int32-negative",
        _labels_with(0, -7, np.int32),
        ValueError,
        r"^y holds label -7 at index 0; expected class labels in \[0, 3\)",
    ),
    (
        "clf",
        "label-too-big",
        _labels_with(9, 3),
        ValueError,
        r"^y holds label 3 at index 9; expected class labels in \[0, 3\)",
    ),
    (
        "clf",
        "label-uint8-255",
        _labels_with(9, 255, np.uint8),
        ValueError,
        r"^y holds label 255 at index 9; expected class labels in \[0, 3\)",
    ),
    (
        "clf",
        "label-uint64-huge",
        _labels_with(0, 2**64 - 1, np.uint64),
        ValueError,
        rf"^y holds label {2**64 - 1} at index 0; expected class labels in \[0, 3\)",
    ),
    (
        "clf",
        "label-int64-wraps-uint32",
        _labels_with(0, 2**32, np.int64),
        ValueError,
        rf"^y holds label {2**32} at index 0; expected class labels in \[0, 3\)",
    ),
    (
        "clf",
        "label-float-negative",
        _labels_with(1, -1.0, np.float64),
        ValueError,
        r"^y holds label -1\.0 at index 1; expected class labels in \[0, 3\)",
    ),
    (
        "clf",
        "label-non-integer",
        D.y + 0.5,
        ValueError,
        r"^y is a 1-D float array with non-integer values; cross_entropy expects "
        r"integer class labels of shape \(n,\) or targets of shape \(n, 3\)$",
    ),
    (
        "clf",
        "label-nan",
        _labels_with(5, np.nan, np.float64),
        ValueError,
        r"^y contains nan at index 5; expected only finite values$",
    ),
    (
        "clf",
        "label-inf",
        _labels_with(6, np.inf, np.float64),
        ValueError,
        r"^y contains inf at index 6",
    ),
    (
        "clf",
        "onehot-width",
        np.eye(4)[D.y],
        ValueError,
        r"^y has shape \(20, 4\); expected \(20, 3\) or class labels of shape "
        r"\(20,\) for an output layer of 3 units$",
    ),
    (
        "clf",
        "onehot-nan",
        _with(np.eye(3)[D.y], (2, 0), np.nan),
        ValueError,
        r"^y contains nan at index \(2, 0\)",
    ),
    (
        "clf",
        "3-D",
        np.eye(3)[D.y][:, :, None],
        ValueError,
        r"^y must be 1-D or 2-D; got float64 array of shape \(20, 3, 1\)$",
    ),
    (
        "clf",
        "0-D",
        np.int64(1),
        ValueError,
        r"^y must be 1-D or 2-D; got int64 array of shape \(\)$",
    ),
    (
        "clf",
        "none",
        None,
        TypeError,
        r"^y is None; expected an array-like of numbers$",
    ),
    (
        "clf",
        "object",
        D.y.astype(object),
        TypeError,
        r"^y has dtype object; expected a real numeric dtype",
    ),
    ("clf", "string", D.y.astype(str), TypeError, r"^y has dtype <U\d+; expected"),
    (
        "clf",
        "complex",
        D.y.astype(complex),
        TypeError,
        r"^y has dtype complex128; expected",
    ),
    (
        "clf",
        "soft-negative",
        _with(np.eye(3)[D.y], (4, slice(None)), [1.2, -0.2, 0.0]),
        ValueError,
        r"^y row 4 holds -0\.2; cross_entropy expects one-hot or probability "
        r"targets, non-negative with rows that sum to 1$",
    ),
    (
        "clf",
        "soft-row-sum",
        _with(np.eye(3)[D.y], (7, slice(None)), [0.5, 0.5, 0.5]),
        ValueError,
        r"^y row 7 sums to 1\.5; cross_entropy expects one-hot or probability "
        r"targets whose rows sum to 1 \(within 0\.001\)$",
    ),
    (
        "clf",
        "soft-all-zero-row",
        _with(np.eye(3)[D.y], (0, slice(None)), 0.0),
        ValueError,
        r"^y row 0 sums to 0; cross_entropy expects",
    ),
    (
        "clf",
        "onehot-int-twice",
        2 * np.eye(3, dtype=np.int64)[D.y],
        ValueError,
        r"^y row 0 sums to 2; cross_entropy expects",
    ),
    ("reg", "count", D.Y[:5], ValueError, r"^y has 5 samples, but X has 20$"),
    (
        "reg",
        "nan",
        _with(D.Y, (4, 1), np.nan),
        ValueError,
        r"^y contains nan at index \(4, 1\); expected only finite values$",
    ),
    (
        "reg",
        "inf",
        _with(D.Y, (0, 0), -np.inf),
        ValueError,
        r"^y contains -inf at index \(0, 0\)",
    ),
    (
        "reg",
        "overflow-float32",
        _with(D.Y, (3, 0), 1e300),
        ValueError,
        r"^y converted to float32 contains inf at index \(3, 0\)",
    ),
    (
        "reg",
        "width",
        np.hstack([D.Y, D.Y[:, :1]]),
        ValueError,
        r"^y has shape \(20, 3\); expected \(20, 2\) for an output layer of 2 units$",
    ),
    (
        "reg",
        "1-D-for-2-outputs",
        D.Y[:, 0],
        ValueError,
        r"^y has shape \(20,\), but the output layer has 2 units; expected shape "
        r"\(20, 2\)$",
    ),
    ("reg", "string", D.Y.astype(str), TypeError, r"^y has dtype <U\d+"),
    (
        "bce",
        "above-1",
        _with(D.B, (3, 1), 1.5),
        ValueError,
        r"^y holds 1\.5 at index \(3, 1\); binary_cross_entropy expects targets in "
        r"\[0, 1\]$",
    ),
    (
        "bce",
        "below-0",
        _with(D.B, (3, 1), -0.5),
        ValueError,
        r"^y holds -0\.5 at index \(3, 1\); binary_cross_entropy expects targets in "
        r"\[0, 1\]$",
    ),
    (
        "bce",
        "int-2",
        np.where(D.B > 0.5, 2, 0),
        ValueError,
        # The first entry above 1, found here independently of the check.
        "^"
        + re.escape(
            f"y holds 2 at index {tuple(np.argwhere(D.B > 0.5)[0].tolist())}; "
            "binary_cross_entropy expects targets in [0, 1]"
        )
        + "$",
    ),
    (
        "bce",
        "nan",
        _with(D.B, (1, 1), np.nan),
        ValueError,
        r"^y contains nan at index \(1, 1\)",
    ),
]


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("method", ["fit", "evaluate", "loss_and_gradients"])
@pytest.mark.parametrize(
    ("kind", "y", "exc", "match"),
    [pytest.param(k, y, e, m, id=f"{k}-{i}") for k, i, y, e, m in BAD_Y],
)
def test_bad_y(cls, method, kind, y, exc, match):
    def call(m, o):
        if method == "fit":
            return m.fit(D.X, y, epochs=2, batch_size=8, optimizer=o)
        return getattr(m, method)(D.X, y)

    _assert_untouched(cls, kind, call, exc, match)


# Bad fit arguments ------------------------------------------------------------

BAD_FIT = [
    ("epochs-0", {"epochs": 0}, ValueError, r"^epochs must be at least 1; got 0$"),
    ("epochs-neg", {"epochs": -1}, ValueError, r"^epochs must be at least 1; got -1$"),
    (
        "epochs-float",
        {"epochs": 1.5},
        TypeError,
        r"^epochs must be an integer; got 1\.5$",
    ),
    (
        "epochs-float-integral",
        {"epochs": 2.0},
        TypeError,
        r"^epochs must be an integer; got 2\.0$",
    ),
    (
        "epochs-bool",
        {"epochs": True},
        TypeError,
        r"^epochs must be an integer; got True$",
    ),
    ("epochs-str", {"epochs": "3"}, TypeError, r"^epochs must be an integer; got '3'$"),
    (
        "epochs-none",
        {"epochs": None},
        TypeError,
        r"^epochs must be an integer; got None$",
    ),
    (
        "batch-0",
        {"batch_size": 0},
        ValueError,
        r"^batch_size must be at least 1; got 0$",
    ),
    (
        "batch-neg",
        {"batch_size": -3},
        ValueError,
        r"^batch_size must be at least 1; got -3$",
    ),
    (
        "batch-str",
        {"batch_size": "32"},
        TypeError,
        r"^batch_size must be an integer; got '32'$",
    ),
    (
        "batch-float",
        {"batch_size": 8.0},
        TypeError,
        r"^batch_size must be an integer; got 8\.0$",
    ),
    (
        "batch-bool",
        {"batch_size": False},
        TypeError,
        r"^batch_size must be an integer; got False$",
    ),
    (
        "optimizer-str",
        {"optimizer": "sgd"},
        TypeError,
        r"^optimizer must be a backprop_rs SGD; got 'sgd'$",
    ),
    (
        "optimizer-class",
        {"optimizer": bp.SGD},
        TypeError,
        r"^optimizer must be a backprop_rs SGD; got <class ",
    ),
    (
        "optimizer-schedule",
        {"optimizer": bp.StepDecay(2)},
        TypeError,
        r"^optimizer must be a backprop_rs SGD; got StepDecay",
    ),
    (
        "shuffle-str",
        {"shuffle": "yes"},
        TypeError,
        r"^shuffle must be a bool; got 'yes'$",
    ),
    ("shuffle-int", {"shuffle": 1}, TypeError, r"^shuffle must be a bool; got 1$"),
    ("verbose-3", {"verbose": 3}, ValueError, r"^verbose must be 0, 1 or 2; got 3$"),
    (
        "verbose-neg",
        {"verbose": -1},
        ValueError,
        r"^verbose must be 0, 1 or 2; got -1$",
    ),
    (
        "verbose-str",
        {"verbose": "1"},
        TypeError,
        r"^verbose must be 0, 1 or 2; got '1'$",
    ),
    (
        "verbose-float",
        {"verbose": 1.0},
        TypeError,
        r"^verbose must be 0, 1 or 2; got 1\.0$",
    ),
    (
        "val-array",
        {"validation_data": D.Xv},
        ValueError,
        r"^validation_data must be a tuple \(X_val, y_val\); got ndarray$",
    ),
    (
        "val-triple",
        {"validation_data": (D.Xv, D.yv, D.yv)},
        ValueError,
        r"^validation_data must be a tuple \(X_val, y_val\); got a tuple of "
        r"length 3$",
    ),
    (
        "val-single",
        {"validation_data": (D.Xv,)},
        ValueError,
        r"^validation_data must be a tuple \(X_val, y_val\); got a tuple of "
        r"length 1$",
    ),
    (
        "val-dict",
        {"validation_data": {"X": D.Xv, "y": D.yv}},
        ValueError,
        r"^validation_data must be a tuple \(X_val, y_val\); got dict$",
    ),
    (
        "val-X-nan",
        {"validation_data": (_with(D.Xv, (2, 3), np.nan), D.yv)},
        ValueError,
        r"^validation_data\[0\] contains nan at index \(2, 3\)",
    ),
    (
        "val-X-inf",
        {"validation_data": (_with(D.Xv, (9, 0), np.inf), D.yv)},
        ValueError,
        r"^validation_data\[0\] contains inf at index \(9, 0\)",
    ),
    (
        "val-X-features",
        {"validation_data": (D.Xv[:, :3], D.yv)},
        ValueError,
        r"^validation_data\[0\] has 3 features, but the first layer expects 4$",
    ),
    (
        "val-X-1-D",
        {"validation_data": (D.Xv[0], D.yv)},
        ValueError,
        r"^validation_data\[0\] must be 2-D \(samples, features\); got float64 "
        r"array of shape \(4,\)",
    ),
    (
        "val-X-empty",
        {"validation_data": (D.Xv[:0], D.yv[:0])},
        ValueError,
        r"^validation_data\[0\] has 0 samples",
    ),
    (
        "val-X-object",
        {"validation_data": (D.Xv.astype(object), D.yv)},
        TypeError,
        r"^validation_data\[0\] has dtype object",
    ),
    (
        "val-y-label",
        {"validation_data": (D.Xv, _with(D.yv, 3, 7).astype(int))},
        ValueError,
        r"^validation_data\[1\] holds label 7 at index 3; expected class labels in "
        r"\[0, 3\)",
    ),
    (
        "val-y-nan",
        {"validation_data": (D.Xv, _with(D.yv, 3, np.nan))},
        ValueError,
        r"^validation_data\[1\] contains nan at index 3",
    ),
    (
        "val-y-count",
        {"validation_data": (D.Xv, D.yv[:9])},
        ValueError,
        r"^validation_data\[1\] has 9 samples",
    ),
]


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [pytest.param(k, e, m, id=i) for i, k, e, m in BAD_FIT],
)
def test_bad_fit_arguments(cls, kwargs, exc, match):
    def call(m, o):
        kw = {"epochs": 2, "batch_size": 8, "optimizer": o, **kwargs}
        return m.fit(D.X, D.y, **kw)

    _assert_untouched(cls, "clf", call, exc, match)


@pytest.mark.parametrize("cls", ENGINES)
def test_validation_label_count_message_names_validation_X(cls):
    model = _model(cls)
    with pytest.raises(
        ValueError,
        match=r"^validation_data\[1\] has 9 samples, but validation_data\[0\] "
        r"has 10$",
    ):
        model.fit(D.X, D.y, validation_data=(D.Xv, D.yv[:9]))


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("vd", "match"),
    [
        pytest.param(
            (D.Xv, _with(D.Yv, (1, 1), np.nan)),
            r"^validation_data\[1\] contains nan at index \(1, 1\)",
            id="nan",
        ),
        pytest.param(
            (D.Xv, _with(D.Yv, (8, 0), -np.inf)),
            r"^validation_data\[1\] contains -inf at index \(8, 0\)",
            id="inf",
        ),
        pytest.param(
            (D.Xv, D.Yv[:, :1]),
            r"^validation_data\[1\] has shape \(10, 1\); expected "
            r"\(10, 2\)",
            id="width",
        ),
    ],
)
def test_bad_regression_validation_targets(cls, vd, match):
    def call(m, o):
        return m.fit(D.X, D.Y, epochs=2, optimizer=o, validation_data=vd)

    _assert_untouched(cls, "reg", call, ValueError, match)


@pytest.mark.parametrize("cls", ENGINES)
def test_optimizer_of_another_model_is_refused(cls):
    other = _model(cls, seed=5)
    other_opt = _opt()
    other.fit(D.X, D.y, optimizer=other_opt)
    other_weights = other.get_weights()
    _assert_untouched(
        cls,
        "clf",
        lambda m, o: m.fit(D.X, D.y, optimizer=other_opt),
        ValueError,
        r"^optimizer already holds the state of another model",
    )
    assert other_opt.epochs_done == 1
    _assert_weights_equal(other.get_weights(), other_weights)


@pytest.mark.parametrize("cls", ENGINES)
def test_numpy_integer_arguments_are_accepted(cls):
    m1, m2 = _model(cls), _model(cls)
    h1 = m1.fit(D.X, D.y, epochs=2, batch_size=8, optimizer=_opt(), verbose=0)
    h2 = m2.fit(
        D.X,
        D.y,
        epochs=np.int64(2),
        batch_size=np.int32(8),
        optimizer=_opt(),
        verbose=np.int8(0),
        shuffle=np.bool_(True),
    )
    assert h1.history == h2.history
    _assert_weights_equal(m1.get_weights(), m2.get_weights())


@pytest.mark.parametrize("cls", ENGINES)
def test_failed_fit_does_not_claim_a_fresh_optimizer(cls):
    opt = _opt()
    first, second, twin = _model(cls, seed=1), _model(cls), _model(cls)
    with pytest.raises(ValueError, match="X has 3 features"):
        first.fit(D.X[:, :3], D.y, optimizer=opt)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        first.fit(D.X, D.y, epochs=0, optimizer=opt)
    assert opt.epochs_done == 0
    # The optimizer is still free: another model can take it, from scratch.
    second.fit(D.X, D.y, epochs=2, optimizer=opt)
    twin.fit(D.X, D.y, epochs=2, optimizer=_opt())
    _assert_weights_equal(second.get_weights(), twin.get_weights())


# set_weights -----------------------------------------------------------------


def _weights_with(layer: int, part: int, value):
    w = [list(p) for p in _model(bp.reference.Sequential, seed=9).get_weights()]
    w[layer][part] = value
    return [tuple(p) for p in w]


def _weights_nan(layer: int, part: int, index, value=np.nan):
    w = _model(bp.reference.Sequential, seed=9).get_weights()
    a = w[layer][part].astype(np.float64)
    a[index] = value
    return _weights_with(layer, part, a)


_GOOD = _model(bp.reference.Sequential, seed=9).get_weights()

BAD_WEIGHTS = [
    (
        "none",
        None,
        ValueError,
        r"^weights must be a list of 2 \(W, b\) pairs; got None$",
    ),
    (
        "array",
        _GOOD[0][0],
        ValueError,
        r"^weights must be a list of 2 \(W, b\) pairs; got a float32 array of shape "
        r"\(4, 5\)$",
    ),
    (
        "one-layer",
        _GOOD[:1],
        ValueError,
        r"^weights must be a list of 2 \(W, b\) pairs; got a list of length 1$",
    ),
    (
        "three-layers",
        _GOOD + _GOOD[:1],
        ValueError,
        r"^weights must be a list of 2 \(W, b\) pairs; got a list of length 3$",
    ),
    (
        "empty",
        [],
        ValueError,
        r"^weights must be a list of 2 \(W, b\) pairs; got a list of length 0$",
    ),
    (
        "flattened",
        [a for pair in _GOOD for a in pair],
        ValueError,
        r"^weights must be a list of 2 \(W, b\) pairs; got a list of length 4; pair "
        r"them as \[\(W0, b0\), \(W1, b1\), \.\.\.\], as get_weights does$",
    ),
    (
        "last-not-pair",
        [_GOOD[0], (_GOOD[1][0],)],
        ValueError,
        r"^weights\[1\] must be a \(W, b\) pair; got a tuple of length 1$",
    ),
    (
        "last-an-array",
        [_GOOD[0], _GOOD[1][0]],
        ValueError,
        r"^weights\[1\] must be a \(W, b\) pair; got a float32 array of shape "
        r"\(5, 3\)$",
    ),
    (
        "last-triple",
        [_GOOD[0], (*_GOOD[1], _GOOD[1][1])],
        ValueError,
        r"^weights\[1\] must be a \(W, b\) pair; got a tuple of length 3$",
    ),
    (
        "last-W-shape",
        _weights_with(1, 0, _GOOD[1][0].T),
        ValueError,
        r"^weights\[1\] has shapes \(3, 5\) and \(3,\); expected \(5, 3\) and "
        r"\(3,\)$",
    ),
    (
        "last-b-shape",
        _weights_with(1, 1, np.zeros(4, np.float32)),
        ValueError,
        r"^weights\[1\] has shapes \(5, 3\) and \(4,\); expected \(5, 3\) and "
        r"\(3,\)$",
    ),
    (
        "last-b-2-D",
        _weights_with(1, 1, np.zeros((1, 3), np.float32)),
        ValueError,
        r"^weights\[1\] has shapes \(5, 3\) and \(1, 3\); expected \(5, 3\) and "
        r"\(3,\)$",
    ),
    (
        "first-W-shape",
        _weights_with(0, 0, np.zeros((5, 4))),
        ValueError,
        r"^weights\[0\] has shapes \(5, 4\) and \(5,\); expected \(4, 5\) and "
        r"\(5,\)$",
    ),
    (
        "last-W-nan",
        _weights_nan(1, 0, (2, 1)),
        ValueError,
        r"^weights\[1\]\[0\] contains nan at index \(2, 1\); expected only finite",
    ),
    (
        "last-b-inf",
        _weights_nan(1, 1, 0, np.inf),
        ValueError,
        r"^weights\[1\]\[1\] contains inf at index 0; expected only finite",
    ),
    (
        "last-W-overflow",
        _weights_nan(1, 0, (0, 0), 1e300),
        ValueError,
        r"^weights\[1\]\[0\] converted to float32 contains inf at index \(0, 0\); "
        "expected only finite",
    ),
    (
        "first-b-nan",
        _weights_nan(0, 1, 3),
        ValueError,
        r"^weights\[0\]\[1\] contains nan at index 3",
    ),
    (
        "last-W-string",
        _weights_with(1, 0, _GOOD[1][0].astype(str)),
        TypeError,
        r"^weights\[1\]\[0\] has dtype <U\d+; expected a real numeric dtype",
    ),
    (
        "last-b-object",
        _weights_with(1, 1, _GOOD[1][1].astype(object)),
        TypeError,
        r"^weights\[1\]\[1\] has dtype object; expected a real numeric dtype",
    ),
    (
        "last-W-complex",
        _weights_with(1, 0, _GOOD[1][0].astype(complex)),
        TypeError,
        r"^weights\[1\]\[0\] has dtype complex128",
    ),
    (
        "last-W-none",
        _weights_with(1, 0, None),
        TypeError,
        r"^weights\[1\]\[0\] is None; expected an array-like of numbers$",
    ),
]


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("weights", "exc", "match"),
    [pytest.param(w, e, m, id=i) for i, w, e, m in BAD_WEIGHTS],
)
def test_bad_set_weights(cls, weights, exc, match):
    _assert_untouched(cls, "clf", lambda m, o: m.set_weights(weights), exc, match)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_set_weights_accepts_any_layout(cls, dtype):
    good = _model(cls, dtype=dtype, seed=9).get_weights()
    variants = [
        [(w.astype(np.float64), b.astype(np.float64)) for w, b in good],
        [(np.asfortranarray(w), b) for w, b in good],
        [(w.astype(w.dtype.newbyteorder(">")), b) for w, b in good],
        [(w.tolist(), b.tolist()) for w, b in good],
        [[w, b] for w, b in good],
        tuple((w, b) for w, b in good),
    ]
    for weights in variants:
        model = _model(cls, dtype=dtype)
        model.set_weights(weights)
        _assert_weights_equal(model.get_weights(), good)


# Constructors ------------------------------------------------------------------

_D45 = bp.Dense(4, 5, "relu")

BAD_CONSTRUCTORS = [
    (
        "dense-in-0",
        lambda: bp.Dense(0, 5),
        ValueError,
        r"^in_features must be at least 1; got 0$",
    ),
    (
        "dense-out-neg",
        lambda: bp.Dense(4, -2),
        ValueError,
        r"^out_features must be at least 1; got -2$",
    ),
    (
        "dense-in-float",
        lambda: bp.Dense(4.0, 5),
        TypeError,
        r"^in_features must be an integer; got 4\.0$",
    ),
    (
        "dense-out-str",
        lambda: bp.Dense(4, "5"),
        TypeError,
        r"^out_features must be an integer; got '5'$",
    ),
    (
        "dense-in-bool",
        lambda: bp.Dense(True, 5),
        TypeError,
        r"^in_features must be an integer; got True$",
    ),
    (
        "dense-activation",
        lambda: bp.Dense(4, 5, "relu6"),
        ValueError,
        r"^activation is 'relu6'; expected one of identity, sigmoid, tanh, relu",
    ),
    (
        "dense-activation-case",
        lambda: bp.Dense(4, 5, "ReLU"),
        ValueError,
        r"^activation is 'ReLU'; expected one of",
    ),
    (
        "dense-activation-none",
        lambda: bp.Dense(4, 5, None),
        ValueError,
        r"^activation is None; expected one of",
    ),
    (
        "dense-init",
        lambda: bp.Dense(4, 5, init="xavier"),
        ValueError,
        r"^init is 'xavier'; expected one of auto, he, glorot$",
    ),
    (
        "seq-empty",
        lambda: bp.Sequential([], "mse"),
        ValueError,
        r"^layers must be a non-empty list of Dense; got \[\]$",
    ),
    (
        "seq-not-list",
        lambda: bp.Sequential(_D45, "mse"),
        ValueError,
        r"^layers must be a non-empty list of Dense; got Dense\(4, 5",
    ),
    (
        "seq-not-dense",
        lambda: bp.Sequential([_D45, (5, 3)], "mse"),
        TypeError,
        r"^layers\[1\] is \(5, 3\); expected a Dense layer$",
    ),
    (
        "seq-chain",
        lambda: bp.Sequential([_D45, bp.Dense(6, 3)], "mse"),
        ValueError,
        r"^layers\[1\] expects 6 inputs, but layers\[0\] has 5 outputs$",
    ),
    (
        "seq-chain-late",
        lambda: bp.Sequential([_D45, bp.Dense(5, 3), bp.Dense(2, 1)], "mse"),
        ValueError,
        r"^layers\[2\] expects 2 inputs, but layers\[1\] has 3 outputs$",
    ),
    (
        "seq-loss",
        lambda: bp.Sequential([_D45], "mse2"),
        ValueError,
        r"^loss is 'mse2'; expected one of mse, mae, huber, binary_cross_entropy, "
        r"cross_entropy$",
    ),
    (
        "seq-loss-none",
        lambda: bp.Sequential([_D45], None),
        ValueError,
        r"^loss is None; expected one of",
    ),
    (
        "seq-ce-identity",
        lambda: bp.Sequential([_D45], "cross_entropy"),
        ValueError,
        r"^loss 'cross_entropy' needs a 'softmax' output layer; the last "
        r"layer has activation 'relu'$",
    ),
    (
        "seq-ce-sigmoid",
        lambda: bp.Sequential([bp.Dense(4, 3, "sigmoid")], "cross_entropy"),
        ValueError,
        r"^loss 'cross_entropy' needs a 'softmax' output layer; the last "
        r"layer has activation 'sigmoid'$",
    ),
    (
        "seq-bce-softmax",
        lambda: bp.Sequential([bp.Dense(4, 3, "softmax")], "binary_cross_entropy"),
        ValueError,
        r"^loss 'binary_cross_entropy' needs a 'sigmoid' output layer; "
        r"the last layer has activation 'softmax'$",
    ),
    (
        "seq-bce-identity",
        lambda: bp.Sequential([bp.Dense(4, 3)], "binary_cross_entropy"),
        ValueError,
        r"needs a 'sigmoid' output layer; the last layer has activation "
        r"'identity'$",
    ),
    (
        "seq-dtype-float16",
        lambda: bp.Sequential([_D45], "mse", dtype="float16"),
        ValueError,
        r"^dtype is 'float16'; expected 'float32' or 'float64'$",
    ),
    (
        "seq-dtype-int",
        lambda: bp.Sequential([_D45], "mse", dtype=np.int32),
        ValueError,
        r"^dtype is <class 'numpy\.int32'>; expected 'float32' or ",
    ),
    (
        "seq-dtype-junk",
        lambda: bp.Sequential([_D45], "mse", dtype="double2"),
        ValueError,
        r"^dtype is 'double2'; expected 'float32' or 'float64'$",
    ),
    (
        "seq-seed-neg",
        lambda: bp.Sequential([_D45], "mse", seed=-1),
        ValueError,
        r"^seed must be at least 0; got -1$",
    ),
    (
        "seq-seed-float",
        lambda: bp.Sequential([_D45], "mse", seed=1.5),
        TypeError,
        r"^seed must be an integer; got 1\.5$",
    ),
    (
        "seq-seed-str",
        lambda: bp.Sequential([_D45], "mse", seed="0"),
        TypeError,
        r"^seed must be an integer; got '0'$",
    ),
    (
        "sgd-lr-neg",
        lambda: bp.SGD(lr=-0.1),
        ValueError,
        r"^lr must be at least 0\.0; got -0\.1$",
    ),
    (
        "sgd-lr-nan",
        lambda: bp.SGD(lr=float("nan")),
        ValueError,
        r"^lr must be finite; got nan$",
    ),
    (
        "sgd-lr-inf",
        lambda: bp.SGD(lr=float("inf")),
        ValueError,
        r"^lr must be finite; got inf$",
    ),
    (
        "sgd-lr-str",
        lambda: bp.SGD(lr="0.1"),
        TypeError,
        r"^lr must be a real number; got '0\.1'$",
    ),
    (
        "sgd-lr-none",
        lambda: bp.SGD(lr=None),
        TypeError,
        r"^lr must be a real number; got None$",
    ),
    (
        "sgd-momentum-1",
        lambda: bp.SGD(momentum=1.0),
        ValueError,
        r"^momentum must be below 1\.0; got 1\.0$",
    ),
    (
        "sgd-momentum-2",
        lambda: bp.SGD(momentum=2),
        ValueError,
        r"^momentum must be below 1\.0; got 2\.0$",
    ),
    (
        "sgd-momentum-neg",
        lambda: bp.SGD(momentum=-0.1),
        ValueError,
        r"^momentum must be at least 0\.0; got -0\.1$",
    ),
    (
        "sgd-momentum-bool",
        lambda: bp.SGD(momentum=True),
        TypeError,
        r"^momentum must be a real number; got True$",
    ),
    (
        "sgd-nesterov-no-momentum",
        lambda: bp.SGD(nesterov=True),
        ValueError,
        r"^nesterov=True needs momentum > 0; got momentum=0\.0$",
    ),
    (
        "sgd-nesterov-str",
        lambda: bp.SGD(momentum=0.9, nesterov="yes"),
        TypeError,
        r"^nesterov must be a bool; got 'yes'$",
    ),
    (
        "sgd-wd-neg",
        lambda: bp.SGD(weight_decay=-1e-4),
        ValueError,
        r"^weight_decay must be at least 0\.0; got -0\.0001$",
    ),
    (
        "sgd-wd-nan",
        lambda: bp.SGD(weight_decay=float("nan")),
        ValueError,
        r"^weight_decay must be finite; got nan$",
    ),
    (
        "sgd-schedule-str",
        lambda: bp.SGD(schedule="step"),
        TypeError,
        r"^schedule must be StepDecay, ExponentialDecay, CosineAnnealing or None; "
        r"got 'step'$",
    ),
    (
        "sgd-schedule-class",
        lambda: bp.SGD(schedule=bp.StepDecay),
        TypeError,
        r"^schedule must be StepDecay, .* got <class ",
    ),
    (
        "sgd-positional-momentum",
        lambda: bp.SGD(0.1, 0.9),
        TypeError,
        r"positional argument",
    ),
    (
        "step-0",
        lambda: bp.StepDecay(0),
        ValueError,
        r"^step_size must be at least 1; got 0$",
    ),
    (
        "step-float",
        lambda: bp.StepDecay(1.5),
        TypeError,
        r"^step_size must be an integer; got 1\.5$",
    ),
    (
        "step-gamma-0",
        lambda: bp.StepDecay(2, gamma=0),
        ValueError,
        r"^gamma must be positive; got 0\.0$",
    ),
    (
        "step-gamma-big",
        lambda: bp.StepDecay(2, gamma=1.5),
        ValueError,
        r"^gamma must be at most 1\.0; got 1\.5$",
    ),
    (
        "step-gamma-neg",
        lambda: bp.StepDecay(2, gamma=-0.1),
        ValueError,
        r"^gamma must be at least 0\.0; got -0\.1$",
    ),
    (
        "step-gamma-str",
        lambda: bp.StepDecay(2, gamma="0.1"),
        TypeError,
        r"^gamma must be a real number; got '0\.1'$",
    ),
    (
        "exp-gamma-0",
        lambda: bp.ExponentialDecay(0.0),
        ValueError,
        r"^gamma must be positive; got 0\.0$",
    ),
    (
        "exp-gamma-big",
        lambda: bp.ExponentialDecay(1.01),
        ValueError,
        r"^gamma must be at most 1\.0; got 1\.01$",
    ),
    (
        "exp-gamma-nan",
        lambda: bp.ExponentialDecay(float("nan")),
        ValueError,
        r"^gamma must be finite; got nan$",
    ),
    (
        "cos-tmax-0",
        lambda: bp.CosineAnnealing(0),
        ValueError,
        r"^t_max must be at least 1; got 0$",
    ),
    (
        "cos-tmax-float",
        lambda: bp.CosineAnnealing(10.0),
        TypeError,
        r"^t_max must be an integer; got 10\.0$",
    ),
    (
        "cos-lrmin-neg",
        lambda: bp.CosineAnnealing(10, lr_min=-1),
        ValueError,
        r"^lr_min must be at least 0\.0; got -1\.0$",
    ),
    (
        "cos-lrmin-inf",
        lambda: bp.CosineAnnealing(10, lr_min=float("inf")),
        ValueError,
        r"^lr_min must be finite; got inf$",
    ),
]


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [pytest.param(f, e, m, id=i) for i, f, e, m in BAD_CONSTRUCTORS],
)
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        pytest.param(
            ([bp.Dense(4, 5), bp.Dense(6, 1)], "mse"),
            {},
            ValueError,
            r"^layers\[1\] expects 6 inputs, but layers\[0\] has 5 "
            r"outputs$",
            id="chain",
        ),
        pytest.param(
            ([bp.Dense(4, 1)], "hinge"),
            {},
            ValueError,
            r"^loss is 'hinge'; expected one of",
            id="loss",
        ),
        pytest.param(
            ([bp.Dense(4, 3)], "cross_entropy"),
            {},
            ValueError,
            r"^loss 'cross_entropy' needs a 'softmax' output layer",
            id="ce-pairing",
        ),
        pytest.param(
            ([bp.Dense(4, 3, "tanh")], "binary_cross_entropy"),
            {},
            ValueError,
            r"^loss 'binary_cross_entropy' needs a 'sigmoid'",
            id="bce-pairing",
        ),
        pytest.param(
            ([bp.Dense(4, 1)], "mse"),
            {"dtype": "float16"},
            ValueError,
            r"^dtype is 'float16'",
            id="dtype",
        ),
        pytest.param(
            ([bp.Dense(4, 1)], "mse"),
            {"dtype": "int64"},
            ValueError,
            r"^dtype is 'int64'",
            id="dtype-int",
        ),
    ],
)
def test_bad_construction_both_engines(cls, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(*args, **kwargs)


@pytest.mark.parametrize("cls", ENGINES)
def test_dtype_none_is_refused(cls):
    with pytest.raises(ValueError, match=r"^dtype is None; expected 'float32'"):
        cls([_D45], "mse", dtype=None)


@pytest.mark.parametrize(
    "cls",
    [
        pytest.param(
            bp.Sequential,
            id="core",
        ),
        pytest.param(bp.reference.Sequential, id="reference"),
    ],
)
@pytest.mark.parametrize("spelling", [">f4", ">f8"])
def test_non_native_dtype_spelling_works_or_is_refused(cls, spelling):
    """A big-endian dtype spec must either act as its native twin or raise a
    ValueError that names ``dtype``, never fail later with an unrelated one."""
    native = np.dtype(spelling).newbyteorder("=").name
    try:
        model = _model(cls, "clf", dtype=spelling)
    except ValueError as e:
        assert str(e).startswith("dtype is")
        return
    twin = _model(cls, "clf", dtype=native)
    assert _same_bits(model.predict(D.X), twin.predict(D.X))
    model.fit(D.X, D.y, epochs=1, optimizer=_opt())
    twin.fit(D.X, D.y, epochs=1, optimizer=_opt())
    _assert_weights_equal(model.get_weights(), twin.get_weights())


def test_constructor_does_not_touch_global_rngs():
    state = np.random.get_state()  # noqa: NPY002
    with pytest.raises(ValueError):
        bp.Sequential([bp.Dense(4, 3)], "cross_entropy", seed=1)
    bp.Sequential([bp.Dense(4, 3)], "mse", seed=1)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1])


# load --------------------------------------------------------------------------


def _saved(cls, tmp_path, name="model.npz"):
    model = _model(cls, seed=3)
    model.fit(D.X, D.y, epochs=1)
    path = tmp_path / name
    model.save(path)
    return model, path


def _entries(path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _meta(path) -> dict:
    return json.loads(bytes(_entries(path)["model.json"]).decode())


def _write_npz(path, entries) -> None:
    with open(path, "wb") as f:
        np.savez(f, **entries)


def _json_entry(meta) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


@pytest.mark.parametrize("cls", ENGINES)
def test_load_round_trip(cls, tmp_path):
    model, path = _saved(cls, tmp_path)
    loaded = bp.load(path)
    assert type(loaded) is cls
    _assert_weights_equal(loaded.get_weights(), model.get_weights())
    assert _same_bits(loaded.predict(D.X), model.predict(D.X))
    bp.load(str(path))


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "nope.npz")


def test_load_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"random\.npz is not a backprop_rs model"):
        bp.load(path)


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npz is not a backprop_rs model"):
        bp.load(path)


def test_load_text_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": "backprop_rs", "version": 1}))
    with pytest.raises(ValueError, match=r"model\.json is not a backprop_rs model"):
        bp.load(path)


def test_load_plain_npy(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros((4, 5)))
    with pytest.raises(
        ValueError, match=r"weights\.npy is a single \.npy array, not a backprop_rs"
    ):
        bp.load(path)


def test_load_directory(tmp_path):
    with pytest.raises(ValueError, match=r"is not a backprop_rs model file"):
        bp.load(tmp_path)


def test_load_foreign_zip(tmp_path):
    path = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"foreign\.zip .*no model\.json entry"):
        bp.load(path)


def test_load_npz_without_metadata(tmp_path):
    _, path = _saved(bp.Sequential, tmp_path)
    entries = _entries(path)
    del entries["model.json"]
    _write_npz(path, entries)
    with pytest.raises(
        ValueError,
        match=r"model\.npz is not a valid backprop_rs model file: it holds no "
        r"model\.json entry",
    ):
        bp.load(path)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param(
            lambda m: {**m, "format": "keras"},
            r"model\.json does not describe a backprop_rs model",
            id="format",
        ),
        pytest.param(
            lambda m: {k: v for k, v in m.items() if k != "format"},
            r"model\.json does not describe a backprop_rs model",
            id="no-format",
        ),
        pytest.param(
            lambda m: {**m, "version": 2},
            r"format version 2; this release reads version 1",
            id="version",
        ),
        pytest.param(
            lambda m: {**m, "version": "1"},
            r"format version '1'; this release reads version 1",
            id="version-str",
        ),
        pytest.param(
            lambda m: {k: v for k, v in m.items() if k != "version"},
            r"format version None",
            id="no-version",
        ),
        pytest.param(
            lambda m: [m], r"does not describe a backprop_rs model", id="list"
        ),
        pytest.param(
            lambda m: {k: v for k, v in m.items() if k != "layers"},
            r"not a valid backprop_rs model file",
            id="no-layers",
        ),
        pytest.param(
            lambda m: {**m, "layers": 3},
            r"not a valid backprop_rs model file",
            id="layers-int",
        ),
        pytest.param(
            lambda m: {**m, "layers": [1, 2]},
            r"not a valid backprop_rs model file",
            id="layers-ints",
        ),
        pytest.param(
            lambda m: {**m, "layers": []},
            r"layers must be a non-empty list",
            id="layers-empty",
        ),
        pytest.param(
            lambda m: {
                **m,
                "layers": [{**m["layers"][0], "activation": "evil"}, m["layers"][1]],
            },
            r"activation is 'evil'",
            id="activation",
        ),
        pytest.param(
            lambda m: {
                **m,
                "layers": [{**m["layers"][0], "out_features": 6}, m["layers"][1]],
            },
            r"W0 and b0 have shapes \(4, 5\) and \(5,\); the architecture declares "
            r"\(4, 6\)",
            id="chain",
        ),
        pytest.param(lambda m: {**m, "loss": "evil"}, r"loss is 'evil'", id="loss"),
        pytest.param(
            lambda m: {**m, "dtype": "float16"}, r"dtype is 'float16'", id="dtype"
        ),
        pytest.param(
            lambda m: {**m, "seed": -4}, r"seed must be at least 0", id="seed"
        ),
        pytest.param(
            lambda m: {**m, "rng_state": {"bit_generator": "MT19937"}},
            r"not a valid backprop_rs model file",
            id="rng-state",
        ),
        pytest.param(
            lambda m: {**m, "rng_state": 7},
            r"not a valid backprop_rs model file",
            id="rng-state-int",
        ),
    ],
)
def test_load_bad_metadata(cls, tmp_path, edit, match):
    _, path = _saved(cls, tmp_path)
    entries = _entries(path)
    entries["model.json"] = _json_entry(edit(_meta(path)))
    _write_npz(path, entries)
    with pytest.raises(ValueError, match=match):
        bp.load(path)


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b'{"format": "backprop_rs", "version": 1, ', id="truncated"),
        pytest.param(b"not json at all", id="garbage"),
        pytest.param(b"\xff\xfe\x00{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"null", id="null"),
    ],
)
def test_load_corrupted_json(tmp_path, blob):
    _, path = _saved(bp.Sequential, tmp_path)
    entries = _entries(path)
    entries["model.json"] = np.frombuffer(blob, dtype=np.uint8)
    _write_npz(path, entries)
    with pytest.raises(ValueError, match=r"model\.npz is not a valid backprop_rs"):
        bp.load(path)


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(np.array([1.5, 2.5]), id="float-array"),
        pytest.param(np.zeros((2, 3), np.uint8), id="2-D"),
        pytest.param(np.array(5, np.int64), id="0-D-small"),
    ],
)
def test_load_metadata_of_wrong_kind(tmp_path, entry):
    _, path = _saved(bp.Sequential, tmp_path)
    entries = _entries(path)
    entries["model.json"] = entry
    _write_npz(path, entries)
    with pytest.raises(ValueError, match=r"model\.npz is not a valid backprop_rs"):
        bp.load(path)


def test_load_metadata_0d_huge_int_is_a_value_error(tmp_path):
    _, path = _saved(bp.Sequential, tmp_path)
    entries = _entries(path)
    entries["model.json"] = np.array(2**62, np.int64)
    _write_npz(path, entries)
    with pytest.raises(ValueError, match=r"not a valid backprop_rs model file"):
        bp.load(path)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param(lambda e: e.pop("W1"), r"W1", id="missing-W1"),
        pytest.param(lambda e: e.pop("b0"), r"b0", id="missing-b0"),
        pytest.param(
            lambda e: e.update(W1=e["W1"].T),
            r"W1 and b1 have shapes \(3, 5\)",
            id="W1-shape",
        ),
        pytest.param(
            lambda e: e.update(b1=e["b1"][:2]),
            r"W1 and b1 have shapes \(5, 3\) and \(2,\)",
            id="b1-shape",
        ),
        pytest.param(
            lambda e: e.update(W1=_with(e["W1"], (0, 0), np.nan)),
            r"weights\[1\]\[0\] contains nan",
            id="W1-nan",
        ),
        pytest.param(
            lambda e: e.update(W0=e["W0"].astype(str)),
            r"weights\[0\]\[0\] has dtype <U",
            id="W0-string",
        ),
        pytest.param(
            lambda e: e.update(W0=e["W0"].astype(complex)),
            r"weights\[0\]\[0\] has dtype complex128",
            id="W0-complex",
        ),
    ],
)
def test_load_bad_weights(cls, tmp_path, edit, match):
    _, path = _saved(cls, tmp_path)
    entries = _entries(path)
    edit(entries)
    _write_npz(path, entries)
    with pytest.raises(ValueError, match=match):
        bp.load(path)


@pytest.mark.parametrize("fraction", [0.02, 0.25, 0.5, 0.75, 0.98])
def test_load_truncated_file(tmp_path, fraction):
    _, path = _saved(bp.Sequential, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=r"model\.npz is not a .*backprop_rs model"):
        bp.load(path)


def test_load_flipped_weight_bytes_fail_the_crc(tmp_path):
    model, path = _saved(bp.Sequential, tmp_path)
    data = bytearray(path.read_bytes())
    w0 = model.get_weights()[0][0].tobytes()
    start = bytes(data).index(w0)
    data[start + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"not a valid backprop_rs model file"):
        bp.load(path)


class _Marker:
    """Unpickling this creates ``path``: the evidence that pickle ran."""

    def __init__(self, path) -> None:
        self.path = os.fspath(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("entry", ["W0", "b1", "model.json"])
def test_load_never_unpickles(cls, tmp_path, entry):
    _, path = _saved(cls, tmp_path)
    marker = tmp_path / "pwned"
    entries = _entries(path)
    evil = np.empty(2, dtype=object)
    evil[0] = _Marker(marker)
    evil[1] = _Marker(marker)
    entries[entry] = evil
    _write_npz(path, entries)
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"not a valid backprop_rs model file"):
        bp.load(path)
    assert not marker.exists()


def test_load_bare_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(_Marker(marker)))
    # Sanity: this pickle does create the marker when unpickled.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Marker(probe))).close()
    assert probe.exists()
    with pytest.raises(ValueError, match=r"model\.npz is not a backprop_rs model"):
        bp.load(path)
    assert not marker.exists()


def test_load_pickled_object_npy_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npy"
    evil = np.empty(1, dtype=object)
    evil[0] = _Marker(marker)
    np.save(path, evil, allow_pickle=True)
    with pytest.raises(ValueError):
        bp.load(path)
    assert not marker.exists()


# Layout variants give the same numbers -------------------------------------------


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _strided_rows(a):
    big = np.full((2 * a.shape[0],) + a.shape[1:], 99.0, dtype=a.dtype)
    big[::2] = a
    return big[::2]


def _strided_cols(a):
    big = np.full((a.shape[0], 3 * a.shape[1]), -7.0, dtype=a.dtype)
    big[:, 1::3] = a
    return big[:, 1::3]


def _column_slice(a):
    return np.hstack([a, np.ones((a.shape[0], 2))])[:, : a.shape[1]]


def _reversed(a):
    return a[::-1].copy()[::-1]


X_VARIANTS = [
    pytest.param(np.asfortranarray, id="fortran"),
    pytest.param(_strided_rows, id="strided-rows"),
    pytest.param(_strided_cols, id="strided-cols"),
    pytest.param(_column_slice, id="column-slice"),
    pytest.param(_reversed, id="negative-strides"),
    pytest.param(_readonly, id="read-only"),
    pytest.param(lambda a: _readonly(a.astype(np.float32)), id="read-only-float32"),
    pytest.param(lambda a: a.astype(">f8"), id="big-endian-f8"),
    pytest.param(lambda a: a.astype(">f4"), id="big-endian-f4"),
    pytest.param(lambda a: np.asfortranarray(a.astype(">f4")), id="big-fortran"),
    pytest.param(lambda a: a.astype(np.float32), id="float32"),
    pytest.param(lambda a: a.tolist(), id="list-of-lists"),
    pytest.param(lambda a: [tuple(r) for r in a.tolist()], id="list-of-tuples"),
]


def _numbers(cls, kind, dtype, X, t):
    """Everything a model computes from ``X`` and targets ``t``."""
    model = _model(cls, kind, dtype=dtype)
    pred = model.predict(X)
    ev = model.evaluate(X, t)
    lg = model.loss_and_gradients(X, t)
    hist = model.fit(
        X, t, epochs=2, batch_size=6, optimizer=_opt(), validation_data=(X, t)
    )
    return pred, ev, lg, hist.history, model.get_weights()


def _assert_same_numbers(a, b):
    assert _same_bits(a[0], b[0])
    assert a[1] == b[1]
    _assert_grads_equal(a[2], b[2])
    assert a[3] == b[3]
    _assert_weights_equal(a[4], b[4])


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("variant", X_VARIANTS)
def test_X_layout_gives_same_numbers(cls, dtype, kind, variant):
    t = _targets(kind)
    X = variant(D.X)
    assert np.array_equal(np.asarray(X, dtype=np.float64), D.X)
    plain = _numbers(cls, kind, dtype, D.X, t)
    _assert_same_numbers(_numbers(cls, kind, dtype, X, t), plain)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("label_dtype", INT_DTYPES)
def test_label_dtype_gives_same_numbers(cls, label_dtype):
    y = D.y.astype(label_dtype)
    plain = _numbers(cls, "clf", "float32", D.X, D.y)
    _assert_same_numbers(_numbers(cls, "clf", "float32", D.X, y), plain)


LABEL_VARIANTS = [
    pytest.param(_strided_rows, id="strided"),
    pytest.param(_reversed, id="negative-strides"),
    pytest.param(_readonly, id="read-only"),
    pytest.param(lambda y: _readonly(y.astype(np.uint32)), id="read-only-uint32"),
    pytest.param(lambda y: y.tolist(), id="list"),
    pytest.param(lambda y: y.astype(np.float64), id="integral-float64"),
    pytest.param(lambda y: y.astype(">f4"), id="integral-big-endian-float32"),
]


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("variant", LABEL_VARIANTS)
def test_label_layout_gives_same_numbers(cls, variant):
    y = variant(D.y)
    plain = _numbers(cls, "clf", "float32", D.X, D.y)
    _assert_same_numbers(_numbers(cls, "clf", "float32", D.X, y), plain)


TARGET_VARIANTS = X_VARIANTS + [
    pytest.param(lambda a: a.T.copy().T, id="transposed-copy"),
]


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["reg", "bce"])
@pytest.mark.parametrize("variant", TARGET_VARIANTS)
def test_target_layout_gives_same_numbers(cls, dtype, kind, variant):
    t = _targets(kind)
    plain = _numbers(cls, kind, dtype, D.X, t)
    _assert_same_numbers(_numbers(cls, kind, dtype, D.X, variant(t)), plain)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("onehot_dtype", ["int64", "uint8", ">i4", "float32", "bool"])
def test_onehot_targets_match_labels(cls, onehot_dtype):
    onehot = np.eye(3, dtype=onehot_dtype)[D.y]
    model = _model(cls)
    assert _same_bits(model.predict(D.X), _model(cls).predict(D.X))
    ev_l, ev_o = model.evaluate(D.X, D.y), model.evaluate(D.X, onehot)
    assert ev_l["accuracy"] == ev_o["accuracy"]
    np.testing.assert_allclose(ev_o["loss"], ev_l["loss"], rtol=1e-6)
    loss_l, grads_l = model.loss_and_gradients(D.X, D.y)
    loss_o, grads_o = model.loss_and_gradients(D.X, onehot)
    np.testing.assert_allclose(loss_o, loss_l, rtol=1e-6)
    for (wl, bl), (wo, bo) in zip(grads_l, grads_o):
        np.testing.assert_allclose(wo, wl, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(bo, bl, rtol=1e-5, atol=1e-7)
    m1, m2 = _model(cls), _model(cls)
    m1.fit(D.X, D.y, epochs=2, batch_size=6, optimizer=_opt())
    m2.fit(D.X, onehot, epochs=2, batch_size=6, optimizer=_opt())
    for (w1, b1), (w2, b2) in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(w2, w1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b2, b1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", ENGINES)
def test_integer_X_matches_float_X(cls):
    Xi = np.round(D.X * 3).astype(np.int16)
    plain = _numbers(cls, "reg", "float32", Xi.astype(np.float64), D.Y)
    _assert_same_numbers(_numbers(cls, "reg", "float32", Xi, D.Y), plain)


# The caller's arrays are never modified ----------------------------------------


def _snapshot(arrays):
    return [np.array(a, copy=True) for a in arrays]


def _assert_arrays_unchanged(arrays, copies):
    for a, c in zip(arrays, copies):
        assert _same_bits(a, c)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["clf", "reg", "bce"])
def test_callers_arrays_are_not_modified(cls, dtype, kind):
    # Already in the model's layout, so the package may hand them straight on.
    X = np.ascontiguousarray(D.X, dtype=dtype)
    Xv = np.ascontiguousarray(D.Xv, dtype=dtype)
    if kind == "clf":
        t, tv = D.y.astype(np.uint32), D.yv.astype(np.uint32)
    elif kind == "reg":
        t, tv = D.Y.astype(dtype), D.Yv.astype(dtype)
    else:
        t = D.B.astype(dtype)
        tv = t[:10].copy()
    arrays = [X, t, Xv, tv]
    copies = _snapshot(arrays)
    model = _model(cls, kind, dtype=dtype)
    opt = bp.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    model.fit(X, t, epochs=3, batch_size=7, optimizer=opt, validation_data=(Xv, tv))
    model.fit(X, t, epochs=1, batch_size=100, optimizer=opt, shuffle=False)
    model.predict(X)
    model.evaluate(X, t)
    model.loss_and_gradients(X, t)
    _assert_arrays_unchanged(arrays, copies)
    for a in arrays:
        assert a.flags.writeable


@pytest.mark.parametrize("cls", ENGINES)
def test_callers_arrays_unchanged_when_converted(cls):
    X = np.asfortranarray(D.X)
    y = D.y.astype(np.int8)
    arrays = [X, y]
    copies = _snapshot(arrays)
    model = _model(cls)
    model.fit(X, y, epochs=2, batch_size=4, validation_data=(X, y))
    model.predict(X)
    model.evaluate(X, y)
    model.loss_and_gradients(X, y)
    _assert_arrays_unchanged(arrays, copies)


@pytest.mark.parametrize("cls", ENGINES)
def test_callers_arrays_unchanged_by_a_failing_call(cls):
    X = _with(D.X, (1, 1), np.nan).astype(np.float32)
    y = D.y.astype(np.uint32)
    copies = _snapshot([X, y])
    model = _model(cls)
    with pytest.raises(ValueError):
        model.fit(X, y)
    _assert_arrays_unchanged([X, y], copies)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_set_weights_copies_and_leaves_the_arrays_alone(cls, dtype):
    source = _model(cls, dtype=dtype, seed=9).get_weights()
    weights = [(w.copy(), b.copy()) for w, b in source]
    copies = [(w.copy(), b.copy()) for w, b in weights]
    model = _model(cls, dtype=dtype)
    model.set_weights(weights)
    model.fit(D.X, D.y, epochs=2, optimizer=bp.SGD(lr=0.1, momentum=0.5))
    # Training moved the model, but not the arrays it was given.
    _assert_weights_equal(weights, copies)
    trained = model.get_weights()
    for w, b in weights:
        w += 1.0
        b[...] = np.nan
    _assert_weights_equal(model.get_weights(), trained)


@pytest.mark.parametrize("cls", ENGINES)
def test_set_weights_read_only_arrays(cls):
    weights = [(_readonly(w), _readonly(b)) for w, b in _GOOD]
    model = _model(cls)
    model.set_weights(weights)
    model.fit(D.X, D.y, epochs=1)
    _assert_weights_equal(weights, _GOOD)


@pytest.mark.parametrize("cls", ENGINES)
def test_get_weights_returns_copies(cls):
    model = _model(cls)
    before = model.get_weights()
    got = model.get_weights()
    for w, b in got:
        if w.flags.writeable:
            w[...] = 123.0
            b[...] = np.nan
    _assert_weights_equal(model.get_weights(), before)
    # And the copies are not updated by later training either.
    got = model.get_weights()
    model.fit(D.X, D.y, epochs=1, optimizer=bp.SGD(lr=0.5))
    _assert_weights_equal(got, before)


@pytest.mark.parametrize("cls", ENGINES)
def test_gradients_are_independent_arrays(cls):
    model = _model(cls)
    _, grads = model.loss_and_gradients(D.X, D.y)
    for dw, _ in grads:
        if dw.flags.writeable:
            dw[...] = 1e9
    _assert_grads_equal(
        model.loss_and_gradients(D.X, D.y), _model(cls).loss_and_gradients(D.X, D.y)
    )


# Non-finite training -----------------------------------------------------------


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_exploding_training_raises_non_finite_loss_error(cls, dtype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 4)) * 100
    Y = rng.normal(size=(64, 2)) * 100
    model = _model(cls, "reg", dtype=dtype)
    opt = bp.SGD(lr=1e6)
    with pytest.raises(bp.NonFiniteLossError) as info:
        model.fit(X, Y, epochs=50, batch_size=16, optimizer=opt)
    assert isinstance(info.value, FloatingPointError)
    message = str(info.value)
    assert "non-finite" in message
    assert "smaller learning rate" in message
    epoch = int(message.split("in epoch ")[1].split()[0])
    assert 1 <= epoch <= 50
    assert opt.epochs_done == epoch - 1
    for w, b in model.get_weights():
        assert np.isfinite(w).all()
        assert np.isfinite(b).all()


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_exploding_training_with_momentum_keeps_weights_finite(cls):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 4)) * 100
    Y = rng.normal(size=(40, 2)) * 1e3
    model = _model(cls, "reg", dtype="float32")
    with pytest.raises(bp.NonFiniteLossError, match=r"in epoch \d+ at step \d+"):
        model.fit(
            X, Y, epochs=100, batch_size=5, optimizer=bp.SGD(lr=1e4, momentum=0.99)
        )
    for w, b in model.get_weights():
        assert np.isfinite(w).all() and np.isfinite(b).all()


# Batch size larger than the data set ---------------------------------------------


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_size_larger_than_data_is_one_full_batch(cls, kind, shuffle):
    t = _targets(kind)
    n = D.X.shape[0]
    results = []
    for batch_size in (n, n + 1, 10 * n, 2**31):
        model = _model(cls, kind)
        h = model.fit(
            D.X, t, epochs=3, batch_size=batch_size, optimizer=_opt(), shuffle=shuffle
        )
        results.append((h.history, model.get_weights()))
    for history, weights in results[1:]:
        assert history == results[0][0]
        _assert_weights_equal(weights, results[0][1])
    # One step per epoch: the same as a hand-made full-batch gradient step.
    model = _model(cls, kind)
    w0 = model.get_weights()
    _, grads = model.loss_and_gradients(D.X, t)
    model.fit(
        D.X, t, epochs=1, batch_size=10 * n, optimizer=bp.SGD(lr=0.1), shuffle=shuffle
    )
    for (w, b), (dw, db), (nw, nb) in zip(w0, grads, model.get_weights()):
        np.testing.assert_allclose(nw, w - np.float32(0.1) * dw, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(nb, b - np.float32(0.1) * db, rtol=1e-5, atol=1e-6)


# Schedules ---------------------------------------------------------------------


def test_schedule_base_is_abstract_so_sgd_never_gets_one():
    with pytest.raises(TypeError, match=r"abstract"):
        bp.SGD(schedule=bp.Schedule())


def test_schedule_subclass_missing_a_method_is_refused():
    class NoDict(bp.Schedule):
        def lr_at(self, base_lr, epoch):
            return base_lr

    with pytest.raises(TypeError, match=r"abstract"):
        NoDict()


@pytest.mark.parametrize("cls", ENGINES)
def test_schedule_subclass_drives_the_learning_rate(cls):
    class Halving(bp.Schedule):
        def lr_at(self, base_lr, epoch):
            return base_lr / 2**epoch

        def to_dict(self):
            return {"name": "halving"}

    h = _model(cls).fit(D.X, D.y, epochs=3, optimizer=bp.SGD(0.1, schedule=Halving()))
    assert h.history["lr"] == [0.1, 0.05, 0.025]


# check_gradients ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(None, id="none"),
        pytest.param("model.npz", id="str"),
        pytest.param(bp.Dense(4, 3, "softmax"), id="layer"),
        pytest.param([bp.Dense(4, 3, "softmax")], id="list-of-layers"),
    ],
)
def test_check_gradients_names_model_when_it_is_not_a_sequential(model):
    with pytest.raises(TypeError, match=r"^model must be a backprop_rs Sequential"):
        bp.check_gradients(model, D.X[:4], D.y[:4])


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    ("eps", "got"),
    [
        pytest.param(-1.0, r"-1\.0", id="negative"),
        pytest.param(0.0, r"0\.0", id="zero"),
        pytest.param(-1, r"-1\.0", id="negative-int"),
    ],
)
def test_check_gradients_eps_must_be_positive_one_message(cls, eps, got):
    with pytest.raises(ValueError, match=rf"^eps must be positive; got {got}$"):
        bp.check_gradients(_model(cls), D.X[:4], D.y[:4], eps=eps)


@pytest.mark.parametrize("cls", ENGINES)
def test_check_gradients_still_accepts_both_engines(cls):
    assert bp.check_gradients(_model(cls), D.X[:4], D.y[:4]) < 1e-6


# Paths and files of another kind --------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(None, id="none"),
        pytest.param(3, id="int"),
        pytest.param(b"model.npz", id="bytes"),
        pytest.param(["model.npz"], id="list"),
    ],
)
def test_load_path_of_wrong_type_is_a_type_error_naming_path(path):
    with pytest.raises(TypeError, match=r"^path must be a str or os\.PathLike; got "):
        bp.load(path)


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize(
    "path",
    [pytest.param(None, id="none"), pytest.param(3, id="int")],
)
def test_save_path_of_wrong_type_is_a_type_error_naming_path(cls, path):
    with pytest.raises(TypeError, match=r"^path must be a str or os\.PathLike; got "):
        _model(cls).save(path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello, world\n", id="text"),
        pytest.param(b'{"format": "backprop_rs"}', id="json"),
        pytest.param(np.random.default_rng(0).bytes(256), id="random"),
        pytest.param(pickle.dumps({"W0": [1.0]}), id="pickle"),
    ],
)
def test_load_non_npz_file_says_so_without_numpys_pickle_advice(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        bp.load(path)
    assert str(info.value) == (
        f"{path} is not a backprop_rs model file (not an .npz archive)"
    )
    assert "pickle" not in str(info.value)


def test_load_pickled_object_npy_names_the_kind_of_file(tmp_path):
    path = tmp_path / "model.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"model\.npy is a single \.npy array, not "):
        bp.load(path)


# Soft targets for cross_entropy -------------------------------------------------


@pytest.mark.parametrize("cls", ENGINES)
def test_soft_validation_targets_name_validation_data_and_the_row(cls):
    bad = _with(np.eye(3)[D.yv], (2, slice(None)), [0.2, 0.2, 0.2])
    with pytest.raises(
        ValueError, match=r"^validation_data\[1\] row 2 sums to 0\.6; cross_entropy"
    ):
        _model(cls).fit(D.X, D.y, validation_data=(D.Xv, bad))


@pytest.mark.parametrize("cls", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_soft_targets_summing_to_one_up_to_rounding_are_accepted(cls, dtype):
    # float32 softmax rows over 3 classes, and rows off by less than 1e-3.
    logits = np.random.default_rng(5).normal(size=(20, 3)).astype(np.float32)
    soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    nearly = np.eye(3)[D.y] * (1 + 9e-4)
    model = _model(cls, dtype=dtype)
    for t in (soft, soft.astype(np.float64), nearly):
        assert np.isfinite(model.evaluate(D.X, t)["loss"])
