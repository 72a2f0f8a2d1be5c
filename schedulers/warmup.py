"""The warmup wrapper: the single place that knows how and when a schedule is stepped.

The training loop only reports events -- ``step_update()`` after every optimizer update that
really happened, ``step_epoch(metric)`` at every epoch end, with the monitored metric (``--monitor``: val_loss or
val_acc) -- and this wrapper turns them into warmup, ``step()`` for per-update or per-epoch
schedules, or ``step(metric)`` for ReduceLROnPlateau, according to the schedule's declared granularity.

Warmup multiplies each param group's *handover* LR (the LR the wrapped schedule starts at) by a
factor rising from ``start_factor`` to 1 over ``warmup_steps`` updates, so the LR is continuous
where the wrapped schedule takes over. ``start_factor`` is the first update's LR as a fraction of
the handover LR; its default, 0.01, starts two orders of magnitude low -- small enough to tame the
first updates of a fresh model, and not 0, which would waste the first update (transformers' recipe
is 0: give ``--warmup_start_factor 0`` to reproduce it).

The wrapped schedule is laid out on the *rest* of training: its plan's horizon is total updates
minus warmup updates (``Plan.horizon_steps``), so e.g. ``cosine`` reaches its minimum on the last
update. Any entry can be wrapped, ReduceLROnPlateau and compositions included: warmup only touches
the LRs, and the wrapped schedule hears nothing until the handover.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer

from common.errors import UsageError
from schedulers.registry import deliver_epoch, deliver_update

WARMUP_MODES = ("linear", "exponential", "cosine", "constant")


def warmup_factor(mode: str, t: int, warmup_steps: int, start: float) -> float:
    """LR factor for update ``t`` (0-based) of a warmup lasting ``warmup_steps`` updates.

    ``t == 0`` gives ``start`` (the first update's LR as a fraction of the base); ``t >=
    warmup_steps`` gives 1. Linear, cosine and exponential rise smoothly; constant stays at
    ``start`` then jumps (the classic "constant warmup", by design).
    """
    if t >= warmup_steps:
        return 1.0
    x = t / warmup_steps
    if mode == "linear":
        return start + (1.0 - start) * x
    if mode == "cosine":
        return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * x))
    if mode == "exponential":
        return start ** (1.0 - x)  # geometric rise: equal ratios between consecutive updates
    if mode == "constant":
        return start
    raise ValueError(f"unknown warmup mode {mode!r}")


class WarmupScheduler:
    """Warmup in front of any schedule, dispatching events by the schedule's granularity."""

    def __init__(
        self,
        optimizer: Optimizer,
        inner: Any,
        granularity: str,
        warmup_steps: int = 0,
        mode: str = "linear",
        start_factor: float = 0.01,
    ):
        self.optimizer = optimizer
        self.inner = inner
        self.granularity = granularity
        self.warmup_steps = int(warmup_steps)
        self.mode = mode
        self.start_factor = float(start_factor)
        self.t = 0  # optimizer updates seen
        self.epoch_start_t = 0  # value of t when the current epoch began
        # Building the inner schedule set each group's LR to the schedule's starting value;
        # that is where warmup has to arrive.
        self.handover_lrs = [g["lr"] for g in optimizer.param_groups]
        self.schedule: dict[str, Any] | None = None  # what the name resolved to (build_scheduler sets it)
        if self.warmup_steps > 0:
            self._set_warmup_lr()

    # --- the two events the training loop reports ---
    def step_update(self) -> None:
        """Call after every optimizer update that was applied (not after a skipped one)."""
        if self.t < self.warmup_steps:
            self.t += 1
            self._set_warmup_lr()  # at t == warmup_steps this is the handover LR exactly
            return
        self.t += 1
        deliver_update(self.granularity, self.inner)

    def step_epoch(self, metric: float | None = None) -> None:
        """Call at every epoch end, after validation, with the monitored metric."""
        # The epoch in which warmup ends belongs to warmup: the wrapped schedule counts
        # epochs from the first one that starts after the handover.
        if self.epoch_start_t >= self.warmup_steps:
            deliver_epoch(self.granularity, self.inner, metric)
        self.epoch_start_t = self.t

    # --- queries ---
    @property
    def in_warmup(self) -> bool:
        return self.t < self.warmup_steps

    @property
    def swa_active(self) -> bool:
        """True when the epoch now ending is one whose weights SWA averages (never a warmup epoch)."""
        return self.epoch_start_t >= self.warmup_steps and bool(getattr(self.inner, "swa_active", False))

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def _set_warmup_lr(self) -> None:
        f = warmup_factor(self.mode, self.t, self.warmup_steps, self.start_factor)
        for g, lr in zip(self.optimizer.param_groups, self.handover_lrs):
            g["lr"] = lr * f

    # --- state: counters here, the LRs themselves live in the optimizer's state ---
    def state_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "epoch_start_t": self.epoch_start_t,
            "warmup_steps": self.warmup_steps,
            "mode": self.mode,
            "start_factor": self.start_factor,
            "handover_lrs": list(self.handover_lrs),
            "inner": self.inner.state_dict(),
            # For the record (a preset's scaled values, torch aliases mapped): resume rebuilds the
            # schedule from the run's config, which may change hyperparameters on purpose.
            "schedule": self.schedule,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = state["t"]
        self.epoch_start_t = state["epoch_start_t"]
        self.warmup_steps = state["warmup_steps"]
        self.mode = state["mode"]
        self.start_factor = state["start_factor"]
        self.handover_lrs = list(state["handover_lrs"])
        self.inner.load_state_dict(state["inner"])
        # ReduceLROnPlateau restores its saved mode: stepped now with another metric, it would compare
        # accuracies as if they were losses (or the reverse) and silently misfire.
        saved_mode = state["inner"].get("mode") if self.granularity == "metric" else None
        mode = (self.schedule or {}).get("params", {}).get("mode")
        if saved_mode and mode and saved_mode != mode:
            metric = "val_loss" if saved_mode == "min" else "val_acc"
            raise UsageError(
                f"this run's plateau schedule was stepped with {metric} (mode {saved_mode}); resume it "
                f"with --monitor {metric}"
            )
