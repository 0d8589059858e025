"""Stochastic gradient descent and its learning-rate schedules.

The update follows ``torch.optim.SGD`` with ``dampening=0``::

    g = grad + weight_decay * w         # biases included, as in PyTorch
    v = momentum * v + g                # v = g on the first step
    step = g + momentum * v if nesterov else v
    w -= lr * step

Keras' SGD writes momentum as ``v = momentum * v - lr * g``, which differs from
this form as soon as the learning rate changes between steps; scikit-learn's
``MLPClassifier`` does the same. Schedules are stepped once per epoch, like
PyTorch's ``StepLR``, ``ExponentialLR`` and ``CosineAnnealingLR``.
"""

from __future__ import annotations

import abc
import math
import weakref
from typing import Any

from ._validation import check_int, check_real


class Schedule(abc.ABC):
    """A learning rate as a function of the number of completed epochs.

    An abstract base: subclass it and define ``lr_at`` and ``to_dict``.
    ``Schedule()`` itself raises ``TypeError``, so that an optimizer is never
    built around a schedule that would fail at its first epoch.
    """

    @abc.abstractmethod
    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate for epoch ``epoch`` (0-based) given ``base_lr``."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The schedule's name and settings, JSON-serialisable."""


class StepDecay(Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    step_size : int
        Epochs between decays, at least 1.
    gamma : float, default 0.1
        Factor applied at each decay, in (0, 1].

    Examples
    --------
    >>> StepDecay(2, gamma=0.5).lr_at(0.1, 5)
    0.025
    """

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check_int(step_size, "step_size", minimum=1)
        self.gamma = _check_gamma(gamma)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def to_dict(self) -> dict[str, Any]:
        return {"name": "step", "step_size": self.step_size, "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"StepDecay(step_size={self.step_size}, gamma={self.gamma})"


class ExponentialDecay(Schedule):
    """Multiply the learning rate by ``gamma`` after every epoch.

    Parameters
    ----------
    gamma : float
        Factor per epoch, in (0, 1].

    Examples
    --------
    >>> ExponentialDecay(0.5).lr_at(0.1, 2)
    0.025
    """

    def __init__(self, gamma: float) -> None:
        self.gamma = _check_gamma(gamma)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch

    def to_dict(self) -> dict[str, Any]:
        return {"name": "exponential", "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"ExponentialDecay(gamma={self.gamma})"


class CosineAnnealing(Schedule):
    """Cosine annealing from the base rate to ``lr_min`` over ``t_max`` epochs.

    ``lr = lr_min + (base_lr - lr_min) * (1 + cos(pi * epoch / t_max)) / 2``,
    PyTorch's closed form of ``CosineAnnealingLR``: past ``t_max`` the rate
    follows the cosine back up, as PyTorch's does.

    Parameters
    ----------
    t_max : int
        Epochs of one half period, at least 1.
    lr_min : float, default 0.0
        The smallest learning rate, non-negative.

    Examples
    --------
    >>> CosineAnnealing(4).lr_at(0.1, 2)
    0.05
    """

    def __init__(self, t_max: int, lr_min: float = 0.0) -> None:
        self.t_max = check_int(t_max, "t_max", minimum=1)
        self.lr_min = check_real(lr_min, "lr_min", low=0.0)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        cos = math.cos(math.pi * epoch / self.t_max)
        return self.lr_min + (base_lr - self.lr_min) * (1.0 + cos) / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": "cosine", "t_max": self.t_max, "lr_min": self.lr_min}

    def __repr__(self) -> str:
        return f"CosineAnnealing(t_max={self.t_max}, lr_min={self.lr_min})"


def _check_gamma(gamma: Any) -> float:
    g = check_real(gamma, "gamma", low=0.0, high=1.0)
    if g == 0.0:
        raise ValueError("gamma must be positive; got 0.0")
    return g


class SGD:
    """Stochastic gradient descent with optional momentum and weight decay.

    The optimizer keeps its state (velocities, ``steps_done`` and the count
    of completed epochs ``epochs_done``, which drives the schedule), so
    passing the same object to a second ``fit`` continues exactly where the
    first stopped. Its state belongs to the
    first model it trains; use a new ``SGD`` for another model.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, non-negative.
    momentum : float, default 0.0
        Momentum factor in [0, 1).
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 0.0
        L2 penalty added to the gradient of every parameter, biases included
        (as ``torch.optim.SGD`` does; scikit-learn's ``alpha`` skips biases).
    schedule : StepDecay, ExponentialDecay, CosineAnnealing or None
        Learning-rate schedule, stepped once per epoch.

    Raises
    ------
    ValueError
        For a negative learning rate or weight decay, momentum outside [0, 1),
        or Nesterov without momentum.

    Examples
    --------
    >>> opt = SGD(lr=0.1, momentum=0.9, schedule=StepDecay(10))
    >>> opt.lr_at(10)
    0.010000000000000002
    """

    def __init__(
        self,
        lr: float = 0.01,
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        schedule: Schedule | None = None,
    ) -> None:
        self.lr = check_real(lr, "lr", low=0.0)
        self.momentum = check_real(
            momentum, "momentum", low=0.0, high=1.0, high_open=True
        )
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool; got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0; got momentum=0.0")
        self.nesterov = nesterov
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(
                "schedule must be StepDecay, ExponentialDecay, CosineAnnealing "
                f"or None; got {schedule!r}"
            )
        self.schedule = schedule
        self.epochs_done = 0
        self._velocity: Any = None
        self._owner: weakref.ref[Any] | None = None

    @property
    def steps_done(self) -> int:
        """Optimizer steps taken so far, including those of an interrupted epoch."""
        return 0 if self._velocity is None else int(self._velocity.steps)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under the schedule."""
        if self.schedule is None:
            return self.lr
        return self.schedule.lr_at(self.lr, epoch)

    def _check_owner(self, model: Any) -> None:
        """``ValueError`` if this optimizer already trains another model."""
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner is not model:
            raise ValueError(
                "optimizer already holds the state of another model; "
                "pass a new SGD to train a second model"
            )

    def _state_for(self, model: Any, new_velocity: Any) -> Any:
        """The velocity buffers for ``model``, created on first use."""
        self._check_owner(model)
        if self._velocity is None or self._owner is None or self._owner() is None:
            self._velocity = new_velocity()
            self._owner = weakref.ref(model)
        return self._velocity

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay}, schedule={self.schedule!r})"
        )
