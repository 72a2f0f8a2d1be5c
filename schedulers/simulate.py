"""Run a schedule through a training-shaped event sequence without training anything.

The LRs come from the same ``build_scheduler`` and ``WarmupScheduler`` the trainer uses, driven
by the same two events, on a real optimizer over a dummy parameter -- so what this shows is
what training does. Used by ``plot_schedule.py`` and the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from schedulers import Plan, build_scheduler


@dataclass
class LRPoint:
    step: int  # optimizer update, 0-based
    epoch: float  # fractional epoch at which the update happens
    lr: float  # LR used for that update (first param group)


def make_optimizer(base_lrs: Sequence[float]) -> torch.optim.Optimizer:
    """SGD over one dummy parameter per group, with the given base LRs."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in base_lrs]
    return torch.optim.SGD(groups, lr=base_lrs[0])


def simulate(
    name: str,
    params: dict,
    epochs: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    base_lr: float = 0.1,
    val_losses: Sequence[float] | None = None,
    warmup_mode: str = "linear",
    warmup_start_factor: float = 0.01,
    base_lrs: Sequence[float] | None = None,
    group: int = 0,
    monitor: str = "val_loss",
) -> list[LRPoint]:
    """LR used for every update of ``epochs`` x ``steps_per_epoch``; ``val_losses`` (values of ``monitor``)
    feed metric schedules (missing epochs repeat the first value: no improvement)."""
    opt = make_optimizer(base_lrs or [base_lr])
    sched = build_scheduler(
        opt, name, params, Plan(epochs, steps_per_epoch, warmup_steps, monitor), warmup_mode, warmup_start_factor
    )
    losses = list(val_losses or [])
    points = []
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            points.append(LRPoint(step, epoch + i / steps_per_epoch, opt.param_groups[group]["lr"]))
            opt.step()
            sched.step_update()
        loss = losses[epoch] if epoch < len(losses) else (losses[0] if losses else 1.0)
        sched.step_epoch(loss)
    return points
