"""PyTorch's own schedulers, as thin adapters: declared hyperparameters -> torch's class.

Hyperparameters with unit "epochs" are given in epochs; per-update schedules convert them to
optimizer updates with the plan. ``None`` defaults are derived from the plan (the horizon left
after warmup), so a schedule fits the run without the user counting steps.
"""
from __future__ import annotations

from torch.optim import lr_scheduler as tls

from schedulers.registry import Param, Plan, ScheduleSpec, register


def _cosine(opt, p: dict, plan: Plan):
    # Horizon - 1 so the last update of training runs at eta_min.
    t_max = plan.updates(p["t_max"]) if p["t_max"] is not None else max(1, plan.horizon_steps - 1)
    return tls.CosineAnnealingLR(opt, T_max=t_max, eta_min=p["eta_min"])


register(ScheduleSpec(
    name="StepLR", aliases=("step",), granularity="epoch", horizon_free=True,
    summary="multiply the LR by gamma every step_size epochs",
    params={
        "step_size": Param(int, 5, low=1, unit="epochs", help="epochs between decays"),
        "gamma": Param(float, 0.1, low=0.0, high=1.0, help="decay factor"),
    },
    build=lambda opt, p, plan: tls.StepLR(opt, step_size=p["step_size"], gamma=p["gamma"]),
))

register(ScheduleSpec(
    name="ReduceLROnPlateau", aliases=("plateau",), granularity="metric", horizon_free=True,
    summary="multiply the LR by factor when the validation loss stops improving",
    params={
        "patience": Param(int, 2, low=0, help="epochs without improvement before a decay"),
        "factor": Param(float, 0.1, low=0.0, high=1.0, help="decay factor"),
        "threshold": Param(float, 1e-4, low=0.0, help="relative improvement that counts"),
        "cooldown": Param(int, 0, low=0, help="epochs to wait after a decay"),
        "min_lr": Param(float, 0.0, low=0.0, help="LR floor"),
    },
    build=lambda opt, p, plan: tls.ReduceLROnPlateau(
        opt, mode="min", factor=p["factor"], patience=p["patience"], threshold=p["threshold"],
        cooldown=p["cooldown"], min_lr=p["min_lr"]),
))

register(ScheduleSpec(
    name="CosineAnnealingLR", aliases=("cosine",), granularity="update",
    summary="half-cosine from the base LR to eta_min over the rest of training",
    params={
        "t_max": Param(float, None, low=0.0, unit="epochs",
                       help="epochs of the half-cosine (default: the rest of training after warmup)"),
        "eta_min": Param(float, 0.0, low=0.0, help="LR at the end"),
    },
    build=_cosine,
))
