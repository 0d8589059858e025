"""Gradient checking by central finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_real


def check_gradients(model: Any, X: Any, y: Any, eps: float = 1e-6) -> float:
    """The largest relative error between analytic and numerical gradients.

    The model is copied to float64; every weight and bias is moved by
    ``±eps`` in turn and the mean loss over all of ``X`` measured, giving the
    central difference ``(L(w + eps) - L(w - eps)) / (2 eps)``. The relative
    error of one parameter is ``max(|g - fd| - tol, 0) / (|g| + |fd|)``, where
    ``tol = 10 * 2**-52 * max(1, |L|) / eps`` is the rounding error of the
    central difference itself, so that a gradient that is exactly zero does
    not read as a large relative error. The model itself is not changed.

    Parameters
    ----------
    model : Sequential
    X, y : array-like
        As for ``model.evaluate``; keep them small, since this costs two
        forward passes per parameter.
    eps : float, default 1e-6
        The step, positive.

    Returns
    -------
    float
        The largest relative error; below about 1e-6 means the gradients agree.

    Raises
    ------
    TypeError
        If ``model`` is not a ``Sequential`` (of either engine) or ``eps`` is
        not a real number.
    ValueError
        If ``eps`` is not positive and finite, or ``X`` and ``y`` do not suit
        the model.

    Examples
    --------
    >>> import backprop_rs as bp
    >>> X, y = bp.datasets.load_digits()
    >>> model = bp.Sequential([bp.Dense(64, 5, activation="tanh"),
    ...                        bp.Dense(5, 10, activation="softmax")],
    ...                       loss="cross_entropy", seed=0)
    >>> bp.check_gradients(model, X[:20], y[:20]) < 1e-6
    True
    """
    # Imported here: _model imports this package's modules at import time.
    from ._model import Sequential

    if not isinstance(model, Sequential):
        got = repr(model)
        got = got if len(got) <= 60 else got[:57] + "..."
        raise TypeError(
            "model must be a backprop_rs Sequential (or "
            f"backprop_rs.reference.Sequential); got {got}"
        )
    eps = check_real(eps, "eps")
    if eps <= 0.0:
        raise ValueError(f"eps must be positive; got {eps}")
    cls = type(model)
    copy = cls(model.layers, model.loss, dtype="float64", seed=0)
    weights = [
        (w.astype(np.float64), b.astype(np.float64)) for w, b in model.get_weights()
    ]
    copy.set_weights(weights)
    x, labels, dense = copy._check_data(X, y)
    n = x.shape[0]

    def loss_at(params: list[tuple[np.ndarray, np.ndarray]]) -> float:
        copy._net.set_weights(params)
        return copy._net.evaluate(x, labels, dense)[0] / n

    loss, analytic = copy._net.loss_and_gradients(x, labels, dense)
    tol = 10.0 * np.finfo(np.float64).eps * max(1.0, abs(loss)) / eps
    worst = 0.0
    for layer, grads in enumerate(analytic):
        for kind in (0, 1):
            param = weights[layer][kind]
            grad = grads[kind]
            flat = param.reshape(-1)
            for i in range(flat.size):
                original = flat[i]
                flat[i] = original + eps
                plus = loss_at(weights)
                flat[i] = original - eps
                minus = loss_at(weights)
                flat[i] = original
                fd = (plus - minus) / (2.0 * eps)
                g = grad.reshape(-1)[i]
                excess = abs(g - fd) - tol
                if excess > 0.0:
                    worst = max(worst, excess / (abs(g) + abs(fd)))
    return float(worst)
