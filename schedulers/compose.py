"""SequentialLR and ChainedScheduler over any catalog entries, ReduceLROnPlateau included.

torch's own SequentialLR/ChainedScheduler refuse ReduceLROnPlateau (its ``step`` needs the metric)
and step every child on the same call, so children of different granularity cannot be mixed.
These compositions take both training events themselves (granularity ``events``) and pass each
child the events its own granularity asks for -- per update, per epoch, or per epoch with the
monitored metric. Where every child shares torch's semantics they match torch's classes step for
step (tests/test_scheduler_catalog.py checks it).

Config (YAML)::

    scheduler: {name: SequentialLR, milestones: [3],
                schedulers: [{name: LinearLR, start_factor: 0.5, end_factor: 1.0, total_iters: 3},
                             {name: plateau, patience: 1}]}

Milestones are in epochs, counted from the first epoch after warmup. A phase starts the way
torch's SequentialLR starts it (``step(0)``): from the base LR, in its freshly built state. Each
phase is laid out on its own span (the last one on the rest of training), so ``cosine`` as the
last phase still reaches its minimum on the last update.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from common.errors import UsageError
from schedulers.registry import (
    Param,
    Plan,
    ScheduleSpec,
    deliver_epoch,
    deliver_update,
    get_spec,
    is_horizon_free,
    register,
    resolve_params,
)


def child_configs(p: dict) -> list[tuple[str, dict]]:
    """The ``schedulers`` list of a composition as (name, params) pairs."""
    out = []
    for i, child in enumerate(p["schedulers"]):
        if not isinstance(child, dict) or "name" not in child:
            raise UsageError(f"schedulers[{i}] must be a mapping with a 'name' (e.g. {{name: cosine}}), got {child!r}")
        out.append((child["name"], {k: v for k, v in child.items() if k != "name"}))
    return out


def _check(kind: str):
    def check(p: dict) -> None:
        children = child_configs(p)
        if not children:
            raise UsageError(f"{kind} needs at least one entry in 'schedulers'")
        for i, (name, params) in enumerate(children):
            try:
                resolve_params(name, params)
            except UsageError as e:
                raise UsageError(f"{kind} schedulers[{i}]: {e}") from None
        milestones = p.get("milestones")
        if milestones is not None:
            if len(milestones) != len(children) - 1:
                raise UsageError(
                    f"{kind} needs one milestone fewer than schedulers ({len(children)} schedulers, "
                    f"{len(milestones)} milestones)"
                )
            if any(not isinstance(m, int) for m in milestones) or any(
                b <= a for a, b in zip(milestones, milestones[1:])
            ):
                raise UsageError(f"{kind} milestones must be increasing whole epochs, got {milestones}")

    return check


def build_child(optimizer, name: str, params: dict, plan: Plan) -> tuple[str, Any]:
    """(granularity, scheduler) of catalog entry ``name`` built on ``optimizer`` for ``plan``."""
    spec = get_spec(name)
    return spec.granularity, spec.build(optimizer, resolve_params(name, params, plan.epochs, plan.monitor), plan)


def _lrs(optimizer) -> list[float]:
    return [g["lr"] for g in optimizer.param_groups]


def _set_lrs(optimizer, lrs: list[float]) -> None:
    for g, lr in zip(optimizer.param_groups, lrs):
        g["lr"] = lr


class _Composition:
    """What both compositions share: children, their state, and SWA pass-through."""

    def __init__(self, optimizer, children: list[tuple[str, Any]]):
        self.optimizer = optimizer
        self.children = children

    def _state(self) -> dict[str, Any]:
        return {"children": [s.state_dict() for _, s in self.children]}

    def _load(self, state: dict[str, Any]) -> None:
        for (_, s), child_state in zip(self.children, state["children"]):
            s.load_state_dict(child_state)


class Sequential(_Composition):
    """One child at a time; the next takes over at each milestone epoch, restarted from the base LR."""

    def __init__(
        self, optimizer, children: list[tuple[str, Any]], milestones: list[int], initial: list[tuple[dict, list[float]]]
    ):
        super().__init__(optimizer, children)
        self.milestones = list(milestones)
        self.initial = initial  # each child's freshly built state and LRs: where a phase starts
        self.epochs = 0  # epoch ends seen
        self.phase = 0
        _set_lrs(optimizer, initial[0][1])

    def step_update(self) -> None:
        deliver_update(*self.children[self.phase])

    def step_epoch(self, metric: float | None = None) -> None:
        self.epochs += 1
        if self.phase < len(self.milestones) and self.epochs >= self.milestones[self.phase]:
            # torch's SequentialLR: the epoch that reaches a milestone starts the next child
            # (step(0)) instead of stepping the old one.
            self.phase += 1
            state, lrs = self.initial[self.phase]
            self.children[self.phase][1].load_state_dict(copy.deepcopy(state))
            _set_lrs(self.optimizer, lrs)
        else:
            deliver_epoch(*self.children[self.phase], metric)

    @property
    def swa_active(self) -> bool:
        return bool(getattr(self.children[self.phase][1], "swa_active", False))

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "phase": self.phase, **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.phase = state["epochs"], state["phase"]
        self._load(state)


class Chained(_Composition):
    """Every child on every event it listens to, in order: their factors multiply (as torch's)."""

    def step_update(self) -> None:
        for child in self.children:
            deliver_update(*child)

    def step_epoch(self, metric: float | None = None) -> None:
        for child in self.children:
            deliver_epoch(*child, metric)

    @property
    def swa_active(self) -> bool:
        return any(getattr(s, "swa_active", False) for _, s in self.children)

    def state_dict(self) -> dict[str, Any]:
        return self._state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load(state)


def _phase_plans(plan: Plan, milestones: list[int]) -> list[Plan]:
    """Each phase's own plan: its span of epochs (the first also holds the warmup, the last the rest)."""
    if not milestones:
        return [plan]
    spe, warm_epochs = plan.steps_per_epoch, math.ceil(plan.warmup_steps / plan.steps_per_epoch)
    plans = [Plan(milestones[0] + warm_epochs, spe, plan.warmup_steps, plan.monitor)]
    plans += [Plan(b - a, spe, 0, plan.monitor) for a, b in zip(milestones, milestones[1:])]
    return plans + [Plan(max(1, plan.horizon_epochs - milestones[-1]), spe, 0, plan.monitor)]


def _sequential(optimizer, p: dict, plan: Plan) -> Sequential:
    configs = child_configs(p)
    n, he = len(configs), plan.horizon_epochs
    milestones = (
        p["milestones"] if p["milestones"] is not None else [max(i, math.floor(i * he / n + 0.5)) for i in range(1, n)]
    )  # the rest split evenly
    base = _lrs(optimizer)
    children, initial = [], []
    for (name, params), sub in zip(configs, _phase_plans(plan, milestones)):
        _set_lrs(optimizer, base)  # every phase is built (and later restarted) from the base LR
        child = build_child(optimizer, name, params, sub)
        children.append(child)
        initial.append((copy.deepcopy(child[1].state_dict()), _lrs(optimizer)))
    return Sequential(optimizer, children, milestones, initial)


def _chained(optimizer, p: dict, plan: Plan) -> Chained:
    # Built in order on the same optimizer, as torch's ChainedScheduler expects: each child's
    # first step scales what the previous ones left.
    return Chained(optimizer, [build_child(optimizer, name, params, plan) for name, params in child_configs(p)])


def _children_free(p: dict) -> list[bool]:
    return [is_horizon_free(name, params) for name, params in child_configs(p)]


register(
    ScheduleSpec(
        name="SequentialLR",
        aliases=("sequential",),
        granularity="events",
        horizon_free=lambda p: p["milestones"] is not None and _children_free(p)[-1],
        summary="catalog entries one after another, switching at milestone epochs (plateau allowed)",
        params={
            "schedulers": Param(
                list, [{"name": "hf_constant"}, {"name": "cosine"}], help="list of {name: ENTRY, param: value...}"
            ),
            "milestones": Param(
                list,
                None,
                low=1,
                unit="epochs",
                help="epochs where the next entry starts (default: the rest split evenly)",
            ),
        },
        build=_sequential,
        check=_check("SequentialLR"),
    )
)

register(
    ScheduleSpec(
        name="ChainedScheduler",
        aliases=("chained",),
        granularity="events",
        horizon_free=lambda p: all(_children_free(p)),
        summary="catalog entries stepped together, their factors multiplying (plateau allowed)",
        params={
            "schedulers": Param(
                list,
                [{"name": "ConstantLR", "factor": 0.5, "total_iters": 2}, {"name": "ExponentialLR", "gamma": 0.9}],
                help="list of {name: ENTRY, param: value...}",
            ),
        },
        build=_chained,
        check=_check("ChainedScheduler"),
    )
)
