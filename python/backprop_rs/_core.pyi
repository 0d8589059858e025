"""Type stubs of the compiled core (private; use ``backprop_rs``)."""

from typing import Callable, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_THREADS",
    "Network",
    "Velocity",
    "__version__",
    "all_finite",
    "class_labels",
    "get_num_threads",
    "invalid_thread_variable",
    "set_num_threads",
    "shuffled_order",
]

__version__: str
MAX_THREADS: int

def set_num_threads(threads: int) -> None: ...
def get_num_threads() -> int: ...
def invalid_thread_variable() -> str | None: ...
def all_finite(a: object) -> bool | None: ...
def shuffled_order(n: int, seed: int) -> np.ndarray: ...
def class_labels(
    a: object, n_classes: int
) -> tuple[np.ndarray | None, int, int] | None: ...

@final
class Velocity:
    @property
    def steps(self) -> int: ...

@final
class Network:
    def __new__(
        cls, layers: list[tuple[int, int, str]], loss: str, dtype: str
    ) -> Network: ...
    @property
    def dtype(self) -> str: ...
    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]: ...
    def set_weights(self, weights: list[tuple[np.ndarray, np.ndarray]]) -> None: ...
    def predict(self, x: npt.NDArray[np.floating]) -> np.ndarray: ...
    def evaluate(
        self,
        x: npt.NDArray[np.floating],
        labels: npt.NDArray[np.uint32] | None = None,
        targets: npt.NDArray[np.floating] | None = None,
    ) -> tuple[float, int]: ...
    def loss_and_gradients(
        self,
        x: npt.NDArray[np.floating],
        labels: npt.NDArray[np.uint32] | None = None,
        targets: npt.NDArray[np.floating] | None = None,
    ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]: ...
    def new_velocity(self) -> Velocity: ...
    def train_epoch(
        self,
        x: npt.NDArray[np.floating],
        labels: npt.NDArray[np.uint32] | None,
        targets: npt.NDArray[np.floating] | None,
        order: npt.NDArray[np.uint32],
        batch_size: int,
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
        velocity: Velocity,
        callback: Callable[[int, int, float], object] | None = None,
        interval: float = 0.1,
    ) -> tuple[float, int, int, int, bool]: ...
