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

from . import datasets, reference
from ._core import __version__
from ._gradcheck import check_gradients
from ._io import load
from ._model import Dense, History, NonFiniteLossError, Sequential
from ._optim import SGD, CosineAnnealing, ExponentialDecay, Schedule, StepDecay

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
    "load",
    "reference",
]
