"""Argument checks shared by the Rust-backed model and the numpy reference.

Every public entry point runs these before it touches any state, so a bad
argument raises and leaves the model as it was. Each check returns a new array
(or the caller's own, unmodified, when it already has the required layout): the
caller's arrays are never written to.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import _core

LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy")
ACTIVATIONS = (
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "softplus",
    "softmax",
)
CLASSIFICATION_LOSSES = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
DTYPES = ("float32", "float64")


def describe(a: np.ndarray) -> str:
    """``'float64 array of shape (3, 4)'``, for error messages."""
    return f"{a.dtype} array of shape {a.shape}"


def kind(value: Any) -> str:
    """What ``value`` is, for an error message, without printing its contents."""
    if isinstance(value, np.ndarray):
        return f"a {describe(value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


def as_numeric_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a numpy array of a real numeric dtype, or ``TypeError``."""
    if value is None:
        raise TypeError(f"{name} is None; expected an array-like of numbers")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be array-like of numbers; {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {a.dtype}; expected a real numeric dtype "
            "(float or integer)"
        )
    return a


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """An integer argument no smaller than ``minimum`` (booleans are refused)."""
    # A plain int skips the slower abstract-class check (bool is not `int` here).
    if type(value) is not int and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral)
    ):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return int(value)


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """A finite real argument in ``[low, high]`` (``[low, high)`` with high_open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    if low is not None and v < low:
        raise ValueError(f"{name} must be at least {low}; got {v}")
    if high is not None and (v >= high if high_open else v > high):
        bound = f"below {high}" if high_open else f"at most {high}"
        raise ValueError(f"{name} must be {bound}; got {v}")
    return v


# Rows per chunk of the finite check: its boolean temporary stays small instead
# of growing to a byte per element of the whole data set.
_FINITE_CHUNK_ROWS = 4096


def _first_non_finite(a: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first non-finite entry of a float array, or None."""
    if a.dtype.kind != "f":
        return None
    if a.ndim == 0:
        return None if np.isfinite(a) else ()
    # The core scans a C-contiguous float32 or float64 array in one pass without
    # a temporary; numpy then only has to find where a non-finite value is.
    if _core.all_finite(a):
        return None
    for start in range(0, a.shape[0], _FINITE_CHUNK_ROWS):
        part = a[start : start + _FINITE_CHUNK_ROWS]
        if not np.isfinite(part).all():
            bad = np.argwhere(~np.isfinite(part))[0]
            bad[0] += start
            return tuple(int(i) for i in bad)
    return None


def check_finite(a: np.ndarray, name: str) -> None:
    """``ValueError`` naming the first non-finite entry of a float array."""
    index = _first_non_finite(a)
    if index is None:
        return
    if a.ndim == 0:
        raise ValueError(f"{name} is {a}; expected a finite value")
    raise ValueError(
        f"{name} contains {a[index]} at index {index if a.ndim > 1 else index[0]}; "
        "expected only finite values"
    )


def check_features(X: Any, name: str, n_features: int, dtype: np.dtype) -> np.ndarray:
    """``X`` as a C-contiguous ``(n, n_features)`` array of ``dtype``."""
    a = as_numeric_array(X, name)
    if a.ndim != 2:
        hint = ""
        if a.ndim == 1:
            hint = (
                f"; reshape a single sample with {name}.reshape(1, -1) "
                f"or a single feature with {name}.reshape(-1, 1)"
            )
        raise ValueError(
            f"{name} must be 2-D (samples, features); got {describe(a)}{hint}"
        )
    if a.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; expected at least 1")
    if a.shape[1] != n_features:
        raise ValueError(
            f"{name} has {a.shape[1]} features, but the first layer expects "
            f"{n_features}"
        )
    return converted(a, name, dtype)


def check_targets(
    y: Any,
    name: str,
    loss: str,
    n_outputs: int,
    n_samples: int,
    dtype: np.dtype,
    x_name: str = "X",
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Targets for ``loss``: ``(labels, None)`` or ``(None, dense)``.

    Class labels (cross-entropy only) come back as C-contiguous ``uint32``;
    dense targets as C-contiguous ``(n, n_outputs)`` of ``dtype``.
    """
    a = as_numeric_array(y, name)
    if a.ndim == 0 or a.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got {describe(a)}")
    if a.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {a.shape[0]} samples, but {x_name} has {n_samples}"
        )
    check_finite(a, name)

    if loss == "cross_entropy" and a.ndim == 1:
        if a.dtype.kind == "f":
            if not np.array_equal(a, np.floor(a)):
                raise ValueError(
                    f"{name} is a 1-D float array with non-integer values; "
                    "cross_entropy expects integer class labels of shape (n,) "
                    f"or targets of shape (n, {n_outputs})"
                )
        # The core checks and converts int64 and int32 labels in one pass.
        found = _core.class_labels(a, n_outputs)
        if found is None:
            low, high = a.min().item(), a.max().item()
        else:
            as_u32, low, high = found
            if as_u32 is not None:
                return as_u32, None
        if low < 0 or high >= n_outputs:
            at = int(np.flatnonzero((a < 0) | (a >= n_outputs))[0])
            raise ValueError(
                f"{name} holds label {a[at].item()} at index {at}; expected class "
                f"labels in [0, {n_outputs}) for an output layer of "
                f"{_units(n_outputs)}"
            )
        return _c_aligned(a, np.dtype(np.uint32)), None

    one_d = a.ndim == 1
    if one_d:
        if n_outputs != 1:
            raise ValueError(
                f"{name} has shape {a.shape}, but the output layer has "
                f"{_units(n_outputs)}; expected shape ({n_samples}, {n_outputs})"
            )
        a = a.reshape(-1, 1)
    if a.shape[1] != n_outputs:
        labels = ""
        if loss == "cross_entropy":
            labels = f" or class labels of shape ({n_samples},)"
        raise ValueError(
            f"{name} has shape {a.shape}; expected ({n_samples}, {n_outputs}){labels} "
            f"for an output layer of {_units(n_outputs)}"
        )
    if loss == "binary_cross_entropy" and (a.min() < 0 or a.max() > 1):
        pos = tuple(int(i) for i in np.argwhere((a < 0) | (a > 1))[0])
        where = pos[0] if one_d else pos
        raise ValueError(
            f"{name} holds {a[pos].item()} at index {where}; binary_cross_entropy "
            "expects targets in [0, 1]"
        )
    if loss == "cross_entropy":
        _check_distributions(a, name)
    if one_d:
        # Converted as given, so that a bad value is named at its 1-D index.
        return None, converted(a[:, 0], name, dtype).reshape(-1, 1)
    return None, converted(a, name, dtype)


# Rows summing to 1 within this are taken as probabilities: far above float32
# rounding over any realistic number of classes, far below a real mistake.
ROW_SUM_TOLERANCE = 1e-3


def _check_distributions(a: np.ndarray, name: str) -> None:
    """``ValueError`` naming the first row of ``a`` that is not a distribution.

    Cross-entropy against a row that is negative somewhere or does not sum to 1
    is not a loss whose minimum is the target, so such rows are refused rather
    than trained on.
    """
    negative = (a < 0).any(axis=1)
    if negative.any():
        row = int(np.argmax(negative))
        value = a[row].min().item()
        raise ValueError(
            f"{name} row {row} holds {value}; cross_entropy expects one-hot or "
            "probability targets, non-negative with rows that sum to 1"
        )
    sums = a.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(
            f"{name} row {row} sums to {sums[row]:.6g}; cross_entropy expects "
            "one-hot or probability targets whose rows sum to 1 (within "
            f"{ROW_SUM_TOLERANCE:g})"
        )


def _c_aligned(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` itself when it is C-contiguous, aligned ``dtype``, else a copy that
    is: the core reads arrays as slices, which must be aligned (a memory map at
    an odd offset is C-contiguous but not)."""
    out = np.ascontiguousarray(a, dtype=dtype)
    # A copy is always aligned (np.require does the same, ten times slower).
    return out if out.flags.aligned else out.copy()


def converted(a: np.ndarray, name: str, dtype: np.dtype) -> np.ndarray:
    """``a`` as C-contiguous, aligned ``dtype``, refusing a non-finite value.

    The converted array is checked once; only when that fails is ``a`` checked
    too, so that a non-finite input is named as given, and a float64 value that
    overflowed float32 on conversion as such.
    """
    if a.dtype == dtype:
        out = _c_aligned(a, dtype)
    else:
        with np.errstate(over="ignore"):
            out = _c_aligned(a, dtype)
    if _first_non_finite(out) is not None:
        check_finite(a, name)
        check_finite(out, f"{name} converted to {dtype}")
    return out


def check_dtype(dtype: Any) -> np.dtype:
    """``float32`` or ``float64`` as a native-byte-order numpy dtype."""
    d = None
    if dtype is not None:
        try:
            d = np.dtype(dtype)
        except TypeError:
            d = None
    if d is None or d.name not in DTYPES:
        raise ValueError(f"dtype is {dtype!r}; expected 'float32' or 'float64'")
    # A big-endian spelling such as '>f4' names the same precision.
    return np.dtype(d.name)
