"""Learning-rate schedules: a registry of every schedule and the warmup wrapper around them.

>>> sched = build_scheduler(optimizer, "plateau", {"patience": 2}, Plan(10, 50, warmup_steps=50))
>>> sched.step_update()        # after each optimizer update
>>> sched.step_epoch(val_loss) # at each epoch end

The catalog: torch_catalog.py (PyTorch's classes), transformers_catalog.py (transformers'
formulas), compose.py (SequentialLR, ChainedScheduler), swa.py (SWALR); formulas.py holds the
checkpointable callables behind LambdaLR-based entries.
"""
from __future__ import annotations

from typing import Any

from torch.optim import Optimizer

from schedulers import compose, swa, torch_catalog, transformers_catalog  # noqa: F401  (register entries)
from schedulers.registry import (SCHEDULES, Param, Plan, ScheduleSpec, get_spec, is_horizon_free, make_plan, names,
                                 register, resolve_params)
from schedulers.swa import uses_swa
from schedulers.warmup import WARMUP_MODES, WarmupScheduler, warmup_factor

__all__ = ["SCHEDULES", "Param", "Plan", "ScheduleSpec", "WARMUP_MODES", "WarmupScheduler", "build_scheduler",
           "get_spec", "is_horizon_free", "make_plan", "names", "register", "resolve_params", "uses_swa",
           "warmup_factor"]


def build_scheduler(optimizer: Optimizer, name: str, params: dict[str, Any], plan: Plan,
                    warmup_mode: str = "linear", warmup_start_factor: float = 0.01) -> WarmupScheduler:
    """Build schedule ``name`` on ``optimizer`` for ``plan``, wrapped with its warmup."""
    spec = get_spec(name)
    inner = spec.build(optimizer, resolve_params(name, params), plan)
    return WarmupScheduler(optimizer, inner, spec.granularity, plan.warmup_steps, warmup_mode, warmup_start_factor)
