"""Learning-rate schedules: a registry of every schedule and the warmup wrapper around them.

>>> sched = build_scheduler(optimizer, "plateau", {"patience": 2}, Plan(10, 50, warmup_steps=50))
>>> sched.step_update()        # after each optimizer update
>>> sched.step_epoch(metric)   # at each epoch end, with the monitored metric (--monitor)

The catalog: torch_catalog.py (PyTorch's classes), transformers_catalog.py (transformers'
formulas), compose.py (SequentialLR, ChainedScheduler), swa.py (SWALR); schedule_free.py the
schedule-free optimizers' constant LR; formulas.py holds the
checkpointable callables behind LambdaLR-based entries; presets.py the 35 seed presets.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer

from schedulers import compose, schedule_free, swa, torch_catalog, transformers_catalog  # noqa: F401  (register entries)
from schedulers.presets import PRESETS, REFERENCE_EPOCHS
from schedulers.registry import (
    SCHEDULES,
    Param,
    Plan,
    ScheduleSpec,
    describe_schedule,
    get_spec,
    is_horizon_free,
    make_plan,
    names,
    preset_names,
    preset_of,
    register,
    resolve_params,
)
from schedulers.swa import uses_swa
from schedulers.warmup import WARMUP_MODES, WarmupScheduler, warmup_factor

__all__ = [
    "PRESETS",
    "REFERENCE_EPOCHS",
    "SCHEDULES",
    "Param",
    "Plan",
    "ScheduleSpec",
    "WARMUP_MODES",
    "WarmupScheduler",
    "build_scheduler",
    "describe_schedule",
    "get_spec",
    "is_horizon_free",
    "make_plan",
    "names",
    "preset_names",
    "preset_of",
    "register",
    "resolve_params",
    "uses_swa",
    "warmup_factor",
]


def build_scheduler(
    optimizer: Optimizer,
    name: str,
    params: dict[str, Any],
    plan: Plan,
    warmup_mode: str = "linear",
    warmup_start_factor: float = 0.01,
) -> WarmupScheduler:
    """Build schedule ``name`` (catalog name, alias or preset) on ``optimizer`` for ``plan``, wrapped with its
    warmup. The wrapper's ``schedule`` (also in its state_dict) records what ``name`` resolved to."""
    spec = get_spec(name)
    schedule = describe_schedule(name, params, plan.epochs, plan.monitor)
    inner = spec.build(optimizer, schedule["params"], plan)
    sched = WarmupScheduler(optimizer, inner, spec.granularity, plan.warmup_steps, warmup_mode, warmup_start_factor)
    sched.schedule = schedule
    return sched
