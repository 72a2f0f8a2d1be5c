"""SWALR and the averaged model it implies (stochastic weight averaging).

torch's recipe: train normally, then from ``swa_start`` on, at every epoch end, add the weights to
an equal-weight running average and step SWALR, which anneals the LR to ``swa_lr`` over
``anneal_epochs`` and holds it. The averaged weights are the result; their BatchNorm statistics
are recomputed for them (``update_bn``) because the averages of the running statistics are not
the statistics of the averaged weights.

Here the schedule holds the LR (whatever the wrapper handed over) for ``swa_start`` epochs, then
runs torch's SWALR, stepped once per epoch. It tells the trainer which epochs are averaged
(``swa_active``); the trainer keeps the :class:`torch.optim.swa_utils.AveragedModel`, updates its
BN statistics on the (un-augmented) training images, and evaluates, picks ``best.pt`` and predicts
with the averaged weights -- the same code path as ``--ema``, with the average taken per epoch
instead of per update. Warmup epochs are never averaged.
"""

from __future__ import annotations

from typing import Any

from torch.optim.swa_utils import SWALR

from schedulers.registry import Param, Plan, ScheduleSpec, get_spec, register, resolve_params


class SWAPhase:
    """The LR left alone for ``swa_start`` epochs, then torch's SWALR stepped per epoch."""

    def __init__(self, optimizer, swa_lr: list[float], anneal_epochs: int, anneal_strategy: str, swa_start: int):
        # Built now, like torch's recipe: building SWALR does not change the LR.
        self.swalr = SWALR(optimizer, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=anneal_strategy)
        self.swa_start = swa_start
        self.epochs = 0  # epoch ends seen

    @property
    def swa_active(self) -> bool:
        """Whether the epoch now ending (before ``step``) is averaged: those after ``swa_start``."""
        return self.epochs >= self.swa_start

    def step(self) -> None:
        # Averaging and SWALR start together, from 1-based epoch swa_start + 1: exactly ``swa_start``
        # epochs are trained before. (torch's example tests `epoch > swa_start` on a 0-based counter,
        # which trains swa_start + 1 epochs first; the count here is the one the help text states.)
        self.epochs += 1
        if self.epochs > self.swa_start:
            self.swalr.step()

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "swa_start": self.swa_start, "swalr": self.swalr.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.swa_start = state["epochs"], state["swa_start"]
        self.swalr.load_state_dict(state["swalr"])


def swa_start_epochs(p: dict, plan: Plan) -> int:
    """Epochs before averaging starts: the given ``swa_start``, else the first 3/4 of the rest."""
    return p["swa_start"] if p["swa_start"] is not None else (plan.horizon_epochs * 3) // 4


def _build(optimizer, p: dict, plan: Plan) -> SWAPhase:
    swa_lr = [p["swa_lr"] if p["swa_lr"] is not None else 0.5 * g["lr"] for g in optimizer.param_groups]
    return SWAPhase(optimizer, swa_lr, p["anneal_epochs"], p["anneal_strategy"], swa_start_epochs(p, plan))


def uses_swa(name: str, params: dict) -> bool:
    """Whether schedule ``name`` (or any entry of a composition, presets included) is SWALR, so weights
    are averaged. ``params`` must be valid (resolve_params has checked them)."""
    if get_spec(name).name == "SWALR":
        return True
    children = resolve_params(name, params).get("schedulers") or []
    return any(uses_swa(c["name"], {k: v for k, v in c.items() if k != "name"}) for c in children)


register(
    ScheduleSpec(
        name="SWALR",
        aliases=("swa",),
        granularity="epoch",
        horizon_free=lambda p: p["swa_start"] is not None,
        summary="stochastic weight averaging: hold the LR, then anneal to swa_lr and average the weights",
        params={
            "swa_start": Param(
                int, None, low=0, unit="epochs", help="epochs before averaging (default: 3/4 of the rest)"
            ),
            "swa_lr": Param(float, None, low=0.0, help="LR held while averaging (default: half each group's LR)"),
            "anneal_epochs": Param(int, 2, low=0, unit="epochs", help="epochs to anneal to swa_lr"),
            "anneal_strategy": Param(str, "cos", choices=("cos", "linear"), help="shape of the anneal"),
        },
        build=_build,
    )
)
