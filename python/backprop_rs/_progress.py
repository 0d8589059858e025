"""Progress reporting for ``fit``: a tqdm bar, one line per epoch, or nothing."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Reports one epoch. ``update`` is called from Rust between batches."""

    def __init__(self, verbose: int, epoch: int, epochs: int, steps: int) -> None:
        self.verbose = verbose
        self.label = f"Epoch {epoch + 1}/{epochs}"
        self.bar: Any = None
        self.done = 0
        if verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=steps,
                desc=self.label,
                unit="step",
                leave=True,
                dynamic_ncols=True,
            )

    @property
    def active(self) -> bool:
        return self.bar is not None

    @property
    def reports(self) -> bool:
        """Whether ``epoch_end`` prints anything."""
        return self.verbose in (1, 2)

    def update(self, steps: int, samples: int, loss_sum: float) -> None:
        if self.bar is not None:
            self.bar.update(steps - self.done)
            self.done = steps
            self.bar.set_postfix(loss=f"{loss_sum / samples:.4f}", refresh=False)

    def epoch_end(self, metrics: dict[str, float]) -> None:
        text = " - ".join(f"{k}: {v:.4g}" for k, v in metrics.items())
        if self.verbose == 1:
            # Under the epoch's (closed) bar, on the stream tqdm draws on.
            from tqdm.auto import tqdm

            tqdm.write(f"{self.label} - {text}", file=sys.stderr)
        elif self.verbose == 2:
            print(f"{self.label} - {text}", file=sys.stdout, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.bar.total - self.done)
            self.bar.close()
            self.bar = None
