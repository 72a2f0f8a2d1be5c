"""The schedule registry: what each schedule is called, what it takes and how often it steps.

A schedule is declared once, as a :class:`ScheduleSpec`: its names, its hyperparameters (type,
default, valid range, unit) and its granularity. Adding a schedule is one ``register`` call in
one file; config validation, ``--scheduler_<param>`` flags, ``plot_schedule.py --list`` and the
tests all read this table.

Granularity says when the training loop's events reach the schedule:

* ``update`` -- after every optimizer update (continuous schedules);
* ``epoch``  -- at every epoch end (piecewise schedules);
* ``metric`` -- at every epoch end, with the validation loss (ReduceLROnPlateau);
* ``events`` -- the schedule takes both events itself (compositions).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from torch.optim import Optimizer

from common.errors import UsageError, unknown_name

GRANULARITIES = ("update", "epoch", "metric", "events")


@dataclass(frozen=True)
class Param:
    """One hyperparameter. ``default=None`` means "derived from the training plan"."""

    type: type
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    unit: str = ""  # "epochs": given in epochs, converted to updates by per-update schedules
    help: str = ""

    def check(self, schedule: str, name: str, value: Any) -> Any:
        where = f"scheduler '{schedule}' hyperparameter '{name}'"
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is float and isinstance(value, str):
            try:  # YAML 1.1 reads "1e-7" (no dot) as a string
                value = float(value)
            except ValueError:
                pass
        if self.type is list:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value]
            if isinstance(value, tuple):
                value = list(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise UsageError(f"{where} must be {self.type.__name__}, got {value!r}")
        numbers = value if isinstance(value, list) else [value]
        for v in numbers:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if self.low is not None and v < self.low or self.high is not None and v > self.high:
                    rng = f"[{self.low if self.low is not None else '-inf'}, {self.high if self.high is not None else 'inf'}]"
                    raise UsageError(f"{where} = {v} is out of range {rng}")
        # A list in epochs is a list of moments (milestones): out of order it would silently misfire.
        if self.type is list and self.unit == "epochs" and any(b <= a for a, b in zip(value, value[1:])):
            raise UsageError(f"{where} must be strictly increasing epochs, got {value}; "
                             f"write them in order, e.g. {sorted(set(value))}")
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"{where} = {value!r}; valid: {', '.join(map(str, self.choices))}")
        return value


@dataclass(frozen=True)
class Plan:
    """The training horizon a schedule is laid out on (counted in optimizer updates)."""

    epochs: int
    steps_per_epoch: int
    warmup_steps: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def horizon_steps(self) -> int:
        """Updates left for the wrapped schedule once warmup has handed over."""
        return max(1, self.total_steps - self.warmup_steps)

    @property
    def horizon_epochs(self) -> int:
        """Epoch ends left for a per-epoch schedule: those after the epoch where warmup ends."""
        return max(1, self.epochs - math.ceil(self.warmup_steps / self.steps_per_epoch))

    def updates(self, epochs: float) -> int:
        """An epoch count as updates (at least one)."""
        return max(1, round(epochs * self.steps_per_epoch))


def make_plan(epochs: int, steps_per_epoch: int, warmup_epochs: float = 0.0, warmup_steps: int = 0) -> Plan:
    """The plan of a run: ``--warmup_steps`` if given, else ``--warmup_epochs`` rounded to updates."""
    warmup = warmup_steps or round(warmup_epochs * steps_per_epoch)
    plan = Plan(epochs, steps_per_epoch, warmup)
    if warmup >= plan.total_steps:
        raise UsageError(f"warmup of {warmup} updates is not shorter than training ({plan.total_steps} updates)")
    return plan


Builder = Callable[[Optimizer, dict, Plan], Any]


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    granularity: str
    summary: str
    build: Builder  # (optimizer, resolved params, plan) -> object with step()/state_dict()
    params: dict[str, Param] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # True when the shape does not depend on the number of epochs, so --epochs may change on resume;
    # a function of the resolved params when that depends on them (e.g. a t_max left to the plan).
    horizon_free: bool | Callable[[dict], bool] = False
    family: str = "torch"
    # Extra checks across params (e.g. a composition's children), run by resolve_params.
    check: Callable[[dict], None] | None = None


SCHEDULES: dict[str, ScheduleSpec] = {}
_ALIASES: dict[str, str] = {}


def register(spec: ScheduleSpec) -> ScheduleSpec:
    assert spec.granularity in GRANULARITIES, spec.granularity
    for name in (spec.name, *spec.aliases):
        assert name not in _ALIASES, f"schedule name '{name}' registered twice"
        _ALIASES[name] = spec.name
    SCHEDULES[spec.name] = spec
    return spec


def names() -> list[str]:
    """Every name a user may type (canonical names and aliases)."""
    return sorted(_ALIASES)


def get_spec(name: str) -> ScheduleSpec:
    if name not in _ALIASES:
        raise unknown_name("scheduler", name, names())
    return SCHEDULES[_ALIASES[name]]


def resolve_params(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the schedule's declaration and fill in the defaults."""
    spec = get_spec(name)
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        valid = ", ".join(sorted(spec.params)) or "none"
        raise UsageError(f"scheduler '{name}' has no hyperparameter '{unknown[0]}'; valid: {valid}")
    out = {}
    for pname, param in spec.params.items():
        if pname in given:
            out[pname] = param.check(name, pname, given[pname])
        else:
            out[pname] = copy.deepcopy(param.default)  # a list default must not be shared between builds
    if spec.check is not None:
        spec.check(out)
    return out


def is_horizon_free(name: str, given: dict[str, Any]) -> bool:
    """Whether schedule ``name`` with these params keeps its shape when --epochs changes."""
    flag = get_spec(name).horizon_free
    return flag(resolve_params(name, given)) if callable(flag) else flag


# --- how each granularity hears the training loop's two events (used by the wrapper and compositions) ---
def deliver_update(granularity: str, sched: Any) -> None:
    """Pass "an optimizer update happened" to a schedule of this granularity."""
    if granularity == "update":
        sched.step()
    elif granularity == "events":
        sched.step_update()


def deliver_epoch(granularity: str, sched: Any, val_loss: float | None) -> None:
    """Pass "an epoch ended with this validation loss" to a schedule of this granularity."""
    if granularity == "epoch":
        sched.step()
    elif granularity == "metric":
        if val_loss is None:
            raise ValueError("a metric-driven schedule needs the validation loss each epoch")
        sched.step(val_loss)
    elif granularity == "events":
        sched.step_epoch(val_loss)
