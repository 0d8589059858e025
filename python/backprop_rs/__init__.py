"""Multilayer perceptrons trained by exact backpropagation.

The forward pass, the backward pass, the losses and the SGD loop run in Rust
(``backprop_rs._core``); this package validates arguments, keeps the history
and offers the numpy reference implementation ``backprop_rs.reference``.

Examples
--------
>>> import backprop_rs as bp
>>> X, y = bp.datasets.load_digits()
>>> model = bp.Sequential([bp.Dense(64, 32, activation="relu"),
...                        bp.Dense(32, 10, activation="softmax")],
...                       loss="cross_entropy", seed=0)
>>> _ = model.fit(X, y, epochs=5, optimizer=bp.SGD(lr=0.1, momentum=0.9))
>>> model.evaluate(X, y)["accuracy"] > 0.9
True
"""

import warnings as _warnings

from . import datasets, reference
from ._core import MAX_THREADS as _MAX_THREADS
from ._core import __version__, get_num_threads
from ._core import invalid_thread_variable as _invalid_thread_variable
from ._core import set_num_threads as _set_num_threads
from ._gradcheck import check_gradients
from ._io import load
from ._model import Dense, History, NonFiniteLossError, Sequential
from ._optim import SGD, CosineAnnealing, ExponentialDecay, Schedule, StepDecay


def set_num_threads(threads: int) -> None:
    """Set the number of threads the Rust core uses, from the next call on.

    The default is ``BACKPROP_RS_NUM_THREADS`` when set, else the number of
    cores. Work is divided by shape alone, so results are bitwise the same on
    any thread count.

    Parameters
    ----------
    threads : int
        From 1 to 1024.

    Raises
    ------
    TypeError, ValueError
        For a non-integer or a count outside that range.
    """
    from ._validation import check_int

    threads = check_int(threads, "threads", minimum=1)
    if threads > _MAX_THREADS:
        raise ValueError(f"threads must be at most {_MAX_THREADS}; got {threads}")
    _set_num_threads(threads)


def _check_thread_variable() -> None:
    """Warn when ``BACKPROP_RS_NUM_THREADS`` is set but the core cannot use it
    (it then falls back to one thread per core); the core decides."""
    value = _invalid_thread_variable()
    if value is not None:
        _warnings.warn(
            f"BACKPROP_RS_NUM_THREADS is {value!r}; expected an integer from 1 to "
            f"{_MAX_THREADS}. Using one thread per core instead.",
            RuntimeWarning,
            # Past this function and the package's own import: at the caller's
            # import statement (the import machinery's frames are skipped).
            stacklevel=3,
        )


_check_thread_variable()

__all__ = [
    "SGD",
    "CosineAnnealing",
    "Dense",
    "ExponentialDecay",
    "History",
    "NonFiniteLossError",
    "Schedule",
    "Sequential",
    "StepDecay",
    "__version__",
    "check_gradients",
    "datasets",
    "get_num_threads",
    "load",
    "reference",
    "set_num_threads",
]
