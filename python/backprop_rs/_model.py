"""The model: layers, losses, training, prediction, gradients.

Shapes: ``X`` is ``(n_samples, n_features)``; layer ``l`` has ``W`` of shape
``(fan_in, fan_out)`` (as scikit-learn's ``coefs_``) and ``b`` of shape
``(fan_out,)``; the output is ``(n_samples, n_outputs)``. Targets are class
labels ``(n_samples,)`` for ``cross_entropy`` or dense ``(n_samples,
n_outputs)``.

``Sequential`` holds the words (validation, names, history, progress); the
numbers come from an engine: the Rust core here, numpy in
``backprop_rs.reference``. Both engines have the same small interface.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
from typing import Any, Callable, TypeVar

import numpy as np

from . import _core, _validation
from ._optim import SGD
from ._progress import Progress
from ._validation import (
    ACTIVATIONS,
    CLASSIFICATION_LOSSES,
    LOSSES,
    check_features,
    check_int,
    check_targets,
)

_RELU_FAMILY = ("relu", "leaky_relu", "elu")
_INITS = ("auto", "he", "glorot")


_F = TypeVar("_F", bound=Callable[..., Any])


def _exclusive(method: _F) -> _F:
    """Refuse a call while another thread is inside a call on the same model."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                f"{type(self).__name__}.{method.__name__} was called while another "
                "thread is using this model; a model runs one call at a time"
            )
        try:
            return method(self, *args, **kwargs)
        finally:
            self._lock.release()

    return wrapper  # type: ignore[return-value]


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss or a gradient stopped being finite."""


class Dense:
    """A fully connected layer ``a = activation(x @ W + b)``.

    Parameters
    ----------
    in_features : int
        Inputs per sample.
    out_features : int
        Units of the layer.
    activation : str, default "identity"
        One of ``identity``, ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu``
        (slope 0.01), ``elu`` (alpha 1), ``gelu`` (exact, with erf),
        ``softplus``, ``softmax``.
    init : str, default "auto"
        ``he`` (normal, std ``sqrt(2 / in_features)``), ``glorot`` (uniform in
        ``±sqrt(6 / (in_features + out_features))``), or ``auto``: He for the
        ReLU family, Glorot otherwise. Biases start at zero.

    Raises
    ------
    ValueError
        For a non-positive width or an unknown activation or init.

    Examples
    --------
    >>> Dense(784, 256, activation="relu")
    Dense(784, 256, activation='relu', init='auto')
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "identity",
        init: str = "auto",
    ) -> None:
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation is {activation!r}; expected one of "
                f"{', '.join(ACTIVATIONS)}"
            )
        if init not in _INITS:
            raise ValueError(f"init is {init!r}; expected one of {', '.join(_INITS)}")
        self.activation = activation
        self.init = init

    def initial_weights(
        self, rng: np.random.Generator, dtype: np.dtype
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fresh ``(W, b)`` drawn from ``rng``."""
        fan_in, fan_out = self.in_features, self.out_features
        scheme = self.init
        if scheme == "auto":
            scheme = "he" if self.activation in _RELU_FAMILY else "glorot"
        if scheme == "he":
            w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        return w.astype(dtype), np.zeros(fan_out, dtype=dtype)

    def to_dict(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation,
            "init": self.init,
        }

    def __repr__(self) -> str:
        return (
            f"Dense({self.in_features}, {self.out_features}, "
            f"activation={self.activation!r}, init={self.init!r})"
        )


class History:
    """What ``fit`` measured, per epoch.

    Attributes
    ----------
    history : dict of str to list of float
        ``loss`` and ``lr``; ``val_loss`` with validation data; ``accuracy``
        and ``val_accuracy`` for classification losses.
    epoch : list of int
        The optimizer's epoch number (0-based) of each entry.
    """

    def __init__(self, keys: list[str]) -> None:
        self.history: dict[str, list[float]] = {k: [] for k in keys}
        self.epoch: list[int] = []

    def __repr__(self) -> str:
        return f"History({self.history!r})"


class Sequential:
    """A multilayer perceptron trained by backpropagation.

    Parameters
    ----------
    layers : list of Dense
        The layers, input to output; consecutive widths must chain.
    loss : str
        ``mse``, ``mae``, ``huber`` (delta 1), ``binary_cross_entropy`` (needs
        a sigmoid output) or ``cross_entropy`` (needs a softmax output; takes
        integer labels or one-hot/soft targets). Every loss is the mean over
        the batch, and over outputs for the element-wise ones, as PyTorch's
        ``reduction="mean"``.
    dtype : {"float32", "float64"}, default "float32"
        The precision of every parameter and computation.
    seed : int or None
        Seeds the model's own generator, which draws the initial weights and
        the seed of every epoch's shuffle. The same seed gives the same
        weights, bit for bit; numpy's and ``random``'s global generators are
        not touched.

    Raises
    ------
    ValueError
        For widths that do not chain, an unknown loss or dtype, or a loss and
        output activation that do not go together.

    Examples
    --------
    >>> import backprop_rs as bp
    >>> X, y = bp.datasets.load_digits()
    >>> model = bp.Sequential(
    ...     [bp.Dense(64, 32, activation="relu"),
    ...      bp.Dense(32, 10, activation="softmax")],
    ...     loss="cross_entropy", seed=0)
    >>> history = model.fit(X, y, epochs=3, batch_size=32,
    ...                     optimizer=bp.SGD(lr=0.1, momentum=0.9))
    >>> history.history["accuracy"][-1] > 0.8
    True
    """

    _engine = _core.Network

    def __init__(
        self,
        layers: list[Dense],
        loss: str,
        *,
        dtype: Any = "float32",
        seed: int | None = None,
    ) -> None:
        layers = list(layers) if isinstance(layers, (list, tuple)) else layers
        if not isinstance(layers, list) or not layers:
            raise ValueError(
                f"layers must be a non-empty list of Dense; got {layers!r}"
            )
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] is {layer!r}; expected a Dense layer")
        for i in range(1, len(layers)):
            if layers[i].in_features != layers[i - 1].out_features:
                raise ValueError(
                    f"layers[{i}] expects {layers[i].in_features} inputs, but "
                    f"layers[{i - 1}] has {layers[i - 1].out_features} outputs"
                )
        if loss not in LOSSES:
            raise ValueError(f"loss is {loss!r}; expected one of {', '.join(LOSSES)}")
        required = CLASSIFICATION_LOSSES.get(loss)
        if required is not None and layers[-1].activation != required:
            raise ValueError(
                f"loss {loss!r} needs a {required!r} output layer; the last layer "
                f"has activation {layers[-1].activation!r}"
            )
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.dtype = _validation.check_dtype(dtype)
        self.layers = [Dense(**layer.to_dict()) for layer in layers]
        self.loss = loss
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._net = self._engine(
            [(d.in_features, d.out_features, d.activation) for d in self.layers],
            loss,
            self.dtype.name,
        )
        self._net.set_weights(
            [d.initial_weights(self._rng, self.dtype) for d in self.layers]
        )

    # Shapes and arguments ---------------------------------------------------

    @property
    def n_inputs(self) -> int:
        return self.layers[0].in_features

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].out_features

    @property
    def is_classifier(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    def _check_data(
        self, X: Any, y: Any, x_name: str = "X", y_name: str = "y"
    ) -> tuple[np.ndarray, Any, Any]:
        x = check_features(X, x_name, self.n_inputs, self.dtype)
        labels, dense = check_targets(
            y, y_name, self.loss, self.n_outputs, x.shape[0], self.dtype, x_name
        )
        return x, labels, dense

    def _accuracy(self, correct: int, samples: int) -> float:
        per_sample = self.n_outputs if self.loss == "binary_cross_entropy" else 1
        return correct / (samples * per_sample)

    # Training ---------------------------------------------------------------

    @_exclusive
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        optimizer: SGD | None = None,
        validation_data: Any = None,
        shuffle: bool = True,
        verbose: int = 0,
    ) -> History:
        """Train by mini-batch SGD, continuing from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)
        y : array-like
            Class labels of shape (n_samples,) for ``cross_entropy``, or
            targets of shape (n_samples, n_outputs) (or (n_samples,) for one
            output).
        epochs : int, default 1
        batch_size : int, default 32
            Samples per step; the last, smaller batch is kept. A batch size
            larger than the data set gives one full batch per epoch.
        optimizer : SGD or None
            ``SGD(lr=0.01)`` when None. Its state carries over between calls.
        validation_data : tuple (X_val, y_val) or None
            Measured after every epoch into ``val_loss`` (and
            ``val_accuracy``).
        shuffle : bool, default True
            Reshuffle the samples every epoch with the model's generator.
        verbose : {0, 1, 2} or bool, default 0
            Silent; a progress bar per epoch followed by that epoch's metrics,
            both on stderr where tqdm draws; or one line of metrics per epoch
            on stdout, as Keras prints it.

        Returns
        -------
        History
            Per-epoch ``loss`` (the mean of the epoch's step losses weighted
            by batch size, as Keras reports it), ``lr`` and the others.

        Raises
        ------
        ValueError, TypeError
            For any bad argument, before anything changes.
        NonFiniteLossError
            If the loss or a gradient becomes non-finite; the weights are
            those after the last finite step.
        KeyboardInterrupt
            On Ctrl-C, within a fraction of a second; the weights are those
            after the last completed step.
        """
        x, labels, dense = self._check_data(X, y)
        epochs = check_int(epochs, "epochs", minimum=1)
        batch_size = min(check_int(batch_size, "batch_size", minimum=1), x.shape[0])
        if optimizer is None:
            optimizer = SGD()
        elif not isinstance(optimizer, SGD):
            raise TypeError(f"optimizer must be a backprop_rs SGD; got {optimizer!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool; got {shuffle!r}")
        if isinstance(verbose, (bool, np.bool_)):
            # As in Keras and scikit-learn: False is silent, True shows progress.
            verbose = int(verbose)
        if type(verbose) is not int and not isinstance(verbose, numbers.Integral):
            raise TypeError(f"verbose must be 0, 1 or 2; got {verbose!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
        val = None
        if validation_data is not None:
            if (
                not isinstance(validation_data, (tuple, list))
                or len(validation_data) != 2
            ):
                got = type(validation_data).__name__
                if isinstance(validation_data, (tuple, list)):
                    got = f"a {got} of length {len(validation_data)}"
                raise ValueError(
                    f"validation_data must be a tuple (X_val, y_val); got {got}"
                )
            val = self._check_data(
                validation_data[0],
                validation_data[1],
                x_name="validation_data[0]",
                y_name="validation_data[1]",
            )
        optimizer._check_owner(self)

        keys = ["loss"] + (["accuracy"] if self.is_classifier else [])
        if val is not None:
            keys += ["val_loss"] + (["val_accuracy"] if self.is_classifier else [])
        history = History(keys + ["lr"])
        velocity = optimizer._state_for(self, self._net.new_velocity)
        n = x.shape[0]
        steps_per_epoch = -(-n // batch_size)

        for i in range(epochs):
            epoch = optimizer.epochs_done
            lr = optimizer.lr_at(epoch)
            if shuffle:
                # The model's generator draws the seed, the core the order:
                # numpy's permutation took a fifth of a small epoch's Python time.
                order = _core.shuffled_order(n, int(self._rng.integers(1 << 63)))
            else:
                order = np.arange(n, dtype=np.uint32)
            progress = Progress(verbose, i, epochs, steps_per_epoch)
            try:
                loss_sum, correct, samples, steps, non_finite = self._net.train_epoch(
                    x,
                    labels,
                    dense,
                    order,
                    batch_size,
                    lr,
                    optimizer.momentum,
                    optimizer.nesterov,
                    optimizer.weight_decay,
                    velocity,
                    callback=progress.update if progress.active else None,
                )
            finally:
                progress.close()
            if non_finite:
                raise NonFiniteLossError(
                    f"the training loss became non-finite in epoch {i + 1} at step "
                    f"{steps + 1} with lr={lr:g}; the weights are those after the "
                    "last finite step. Try a smaller learning rate."
                )
            optimizer.epochs_done += 1

            history.epoch.append(epoch)
            history.history["loss"].append(loss_sum / samples)
            if self.is_classifier:
                history.history["accuracy"].append(self._accuracy(correct, samples))
            if val is not None:
                v_loss, v_correct = self._net.evaluate(*val)
                v_n = val[0].shape[0]
                history.history["val_loss"].append(v_loss / v_n)
                if self.is_classifier:
                    history.history["val_accuracy"].append(
                        self._accuracy(v_correct, v_n)
                    )
            history.history["lr"].append(lr)
            if progress.reports:
                progress.epoch_end({k: v[-1] for k, v in history.history.items()})
        return history

    # Inference and gradients -------------------------------------------------

    @_exclusive
    def predict(self, X: Any) -> np.ndarray:
        """Output activations, shape (n_samples, n_outputs), in the model dtype.

        For ``cross_entropy`` these are softmax probabilities; for
        ``binary_cross_entropy`` sigmoid probabilities.
        """
        return self._net.predict(check_features(X, "X", self.n_inputs, self.dtype))

    @_exclusive
    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """``{"loss": ...}`` over all of ``X``, plus ``"accuracy"`` for
        classification losses (argmax for ``cross_entropy``, threshold 0.5 per
        output for ``binary_cross_entropy``)."""
        x, labels, dense = self._check_data(X, y)
        loss_sum, correct = self._net.evaluate(x, labels, dense)
        out = {"loss": loss_sum / x.shape[0]}
        if self.is_classifier:
            out["accuracy"] = self._accuracy(correct, x.shape[0])
        return out

    @_exclusive
    def loss_and_gradients(
        self, X: Any, y: Any
    ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        """The mean loss over ``X`` and ``[(dW, db), ...]``, one per layer.

        One forward and one backward pass over all of ``X`` as a single batch;
        the weights are not updated.
        """
        x, labels, dense = self._check_data(X, y)
        return self._net.loss_and_gradients(x, labels, dense)

    # Parameters ---------------------------------------------------------------

    @_exclusive
    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copies of every layer's ``(W, b)``: ``W`` is ``(fan_in, fan_out)``."""
        return [(w, b) for w, b in self._net.get_weights()]

    @_exclusive
    def set_weights(self, weights: Any) -> None:
        """Replace every layer's ``(W, b)`` with copies of ``weights``.

        Raises
        ------
        ValueError, TypeError
            For a wrong number of layers, a wrong shape, a non-numeric dtype or
            a non-finite value; nothing changes then.
        """
        if not isinstance(weights, (list, tuple)) or len(weights) != len(self.layers):
            hint = ""
            if isinstance(weights, (list, tuple)) and len(weights) == 2 * len(
                self.layers
            ):
                hint = "; pair them as [(W0, b0), (W1, b1), ...], as get_weights does"
            raise ValueError(
                f"weights must be a list of {len(self.layers)} (W, b) pairs; "
                f"got {_validation.kind(weights)}{hint}"
            )
        checked = []
        for i, (pair, layer) in enumerate(zip(weights, self.layers)):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(
                    f"weights[{i}] must be a (W, b) pair; got {_validation.kind(pair)}"
                )
            w = _validation.as_numeric_array(pair[0], f"weights[{i}][0]")
            b = _validation.as_numeric_array(pair[1], f"weights[{i}][1]")
            expected_w = (layer.in_features, layer.out_features)
            if w.shape != expected_w or b.shape != (layer.out_features,):
                raise ValueError(
                    f"weights[{i}] has shapes {w.shape} and {b.shape}; expected "
                    f"{expected_w} and ({layer.out_features},)"
                )
            # A value that overflows on conversion is named as such; the core
            # copies the weights, so a view of the caller's array is fine here.
            w = _validation.converted(w, f"weights[{i}][0]", self.dtype)
            b = _validation.converted(b, f"weights[{i}][1]", self.dtype)
            checked.append((w, b))
        self._net.set_weights(checked)

    # Files --------------------------------------------------------------------

    @_exclusive
    def save(self, path: Any) -> None:
        """Write the model to ``path`` (``.npz``; see ``backprop_rs.load``)."""
        from ._io import save

        save(self, path)

    def __repr__(self) -> str:
        layers = ",\n ".join(repr(d) for d in self.layers)
        return (
            f"{type(self).__name__}([\n {layers}],\n loss={self.loss!r}, "
            f"dtype={self.dtype.name!r}, seed={self.seed!r})"
        )
