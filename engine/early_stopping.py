"""Early stopping and best-metric tracking, with counters that survive a resume."""

from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """Track the monitored metric; ``should_stop`` after ``patience`` epochs without improvement.

    ``patience=0`` only tracks the best value (for ``best.pt``). An improvement must beat the best
    by more than ``min_delta``. Epochs that don't count (inside warmup) can still set a new best
    but never use up patience. A non-finite value (NaN/inf from a diverged model) is never a best
    and counts as an epoch without improvement.
    """

    def __init__(self, patience: int = 0, min_delta: float = 0.0, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0
        self.bad_epochs = 0

    def is_better(self, value: float) -> bool:
        if not math.isfinite(value):  # NaN compares False, but -inf would beat any loss
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int, counts: bool = True) -> bool:
        """Record ``value`` for ``epoch``; returns True when it is a new best."""
        if self.is_better(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        if counts or not math.isfinite(value):  # a diverged epoch uses up patience even in warmup
            self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "mode": self.mode,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Patience and min_delta come from the current config (they may be changed on resume);
        # what was observed is restored.
        self.mode = state["mode"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
