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

Names: each entry has a canonical name (torch's class name) and short aliases; its hyperparameters
may also be given under torch's own argument names (``param_aliases``: ``T_max`` for ``t_max``).
The seed presets (presets.py: ``A0_001`` ... or their descriptive names) resolve here to an entry
plus values scaled to the run's length; what the user gives on top overrides them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.optim import Optimizer

from common.errors import UsageError
from common.monitors import mode_of
from common.spelling import did_you_mean, plural
from schedulers.presets import PRESET_IDS, PRESETS, REFERENCE_EPOCHS

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
            if isinstance(v, float) and not math.isfinite(v):  # "nan" passes every range comparison
                raise UsageError(f"{where} must be a finite number, got {v}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if self.low is not None and v < self.low or self.high is not None and v > self.high:
                    low = self.low if self.low is not None else "-inf"
                    high = self.high if self.high is not None else "inf"
                    rng = f"[{low}, {high}]"
                    raise UsageError(f"{where} = {v} is out of range {rng}")
        # A list in epochs is a list of moments (milestones): out of order it would silently misfire.
        if self.type is list and self.unit == "epochs" and any(b <= a for a, b in zip(value, value[1:])):
            raise UsageError(
                f"{where} must be strictly increasing epochs, got {value}; "
                f"write them in order, e.g. {sorted(set(value))}"
            )
        if self.choices is not None and value not in self.choices:
            hint = did_you_mean(value, map(str, self.choices)) if isinstance(value, str) else ""
            raise UsageError(f"{where} = {value!r}{hint}; valid: {', '.join(map(str, self.choices))}")
        return value


@dataclass(frozen=True)
class Plan:
    """The training horizon a schedule is laid out on (counted in optimizer updates)."""

    epochs: int
    steps_per_epoch: int
    warmup_steps: int = 0
    # What a metric-driven schedule hears at each epoch end (--monitor): ReduceLROnPlateau's mode
    # follows it (val_loss: min, val_acc: max).
    monitor: str = "val_loss"

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


def make_plan(
    epochs: int, steps_per_epoch: int, warmup_epochs: float = 0.0, warmup_steps: int = 0, monitor: str = "val_loss"
) -> Plan:
    """The plan of a run: ``--warmup_steps`` if given, else ``--warmup_epochs`` rounded to updates."""
    warmup = warmup_steps or round(warmup_epochs * steps_per_epoch)
    plan = Plan(epochs, steps_per_epoch, warmup, monitor)
    if warmup >= plan.total_steps:
        raise UsageError(
            f"warmup of {plural(warmup, 'update')} is not shorter than training ({plural(plan.total_steps, 'update')})"
        )
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
    # torch's argument name -> ours, where they differ (T_max -> t_max; plateau's gamma -> factor)
    param_aliases: dict[str, str] = field(default_factory=dict)
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
    """Every catalog name a user may type (canonical names and aliases); presets: :func:`preset_names`."""
    return sorted(_ALIASES)


def preset_of(name: str) -> str | None:
    """The preset id ``name`` stands for (an id or a descriptive name), else None.

    A catalog name wins over a preset's descriptive name (``exponential`` is ExponentialLR with
    its defaults, as it always was; the preset of that name is ``A0_012``).
    """
    if name in _ALIASES:
        return None
    return name if name in PRESETS else PRESET_IDS.get(name)


def preset_names() -> list[str]:
    """Every name that selects a preset: the ids and the descriptive names not taken by the catalog."""
    return sorted(n for n in (*PRESETS, *PRESET_IDS) if preset_of(n))


def get_spec(name: str) -> ScheduleSpec:
    """The catalog entry of ``name``: a catalog name or alias, or a preset (its entry)."""
    if name in _ALIASES:
        return SCHEDULES[_ALIASES[name]]
    pid = preset_of(name)
    if pid is not None:
        return SCHEDULES[_ALIASES[PRESETS[pid]["scheduler"]]]
    valid = names()
    hint = did_you_mean(name, valid + preset_names())
    raise UsageError(
        f"unknown scheduler '{name}'{hint}. Valid: {', '.join(valid)}; or a preset "
        f"A0_001 ... A0_035 / its name (python plot_schedule.py --list)"
    )


def _scale_value(param: Param, value: Any, factor: float) -> Any:
    """A value in epochs for a 100-epoch run, scaled to this run (whole numbers rounded half up, >= 1)."""
    if param.type is int:
        return max(1, math.floor(value * factor + 0.5))
    if param.type is list:  # milestones: whole epochs; two that round together become one
        return sorted({max(1, math.floor(v * factor + 0.5)) for v in value})
    return value * factor


def scale_preset(spec: ScheduleSpec, params: dict[str, Any], epochs: int) -> dict[str, Any]:
    """A preset's ``params`` (written for REFERENCE_EPOCHS) for a run of ``epochs``: every value declared
    in epochs scaled in proportion, children of a composition included; everything else as written."""
    factor = epochs / REFERENCE_EPOCHS
    out = {}
    for key, value in params.items():
        param = spec.params[key]
        if key == "schedulers":
            out[key] = [
                {
                    "name": c["name"],
                    **scale_preset(get_spec(c["name"]), {k: v for k, v in c.items() if k != "name"}, epochs),
                }
                for c in value
            ]
        elif param.unit == "epochs":
            out[key] = _scale_value(param, value, factor)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _scaled_keys(spec: ScheduleSpec, params: dict[str, Any]) -> set[str]:
    """Keys of a preset's params whose value depends on the run's length."""
    keys = {k for k in params if spec.params[k].unit == "epochs"}
    if any(
        _scaled_keys(get_spec(c["name"]), {k: v for k, v in c.items() if k != "name"})
        for c in params.get("schedulers", [])
    ):
        keys.add("schedulers")
    return keys


def canonical_params(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with torch's argument names (``T_max``) replaced by ours (``t_max``)."""
    spec = get_spec(name)
    out: dict[str, Any] = {}
    for key, value in given.items():
        ours = spec.param_aliases.get(key, key)
        if ours in out:
            raise UsageError(
                f"scheduler '{name}' hyperparameter '{ours}' is given twice (as "
                f"'{ours}' and '{[k for k, v in spec.param_aliases.items() if v == ours][0]}'); give one"
            )
        out[ours] = value
    return out


def valid_param_names(spec: ScheduleSpec) -> str:
    """Our names, then torch's aliases with what they stand for."""
    ours = sorted(spec.params) or ["none"]
    theirs = [f"{a} (= {o})" for a, o in sorted(spec.param_aliases.items())]
    return ", ".join(ours + theirs)


def resolve_params(
    name: str, given: dict[str, Any], epochs: int = REFERENCE_EPOCHS, monitor: str | None = None
) -> dict[str, Any]:
    """Check ``given`` against the schedule's declaration and fill in the defaults.

    For a preset, its values (scaled to ``epochs``) come first and ``given`` overrides them. With
    ``monitor``, a metric-driven schedule's ``mode`` is filled from it (and checked against it).
    """
    spec = get_spec(name)
    given = canonical_params(name, given)
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        hint = did_you_mean(unknown[0], [*spec.params, *spec.param_aliases])
        raise UsageError(
            f"scheduler '{name}' has no hyperparameter '{unknown[0]}'{hint}; valid: {valid_param_names(spec)}"
        )
    pid = preset_of(name)
    if pid is not None:
        given = {**scale_preset(spec, PRESETS[pid]["params"], epochs), **given}
    out = {}
    for pname, param in spec.params.items():
        if pname in given:
            out[pname] = param.check(name, pname, given[pname])
        else:
            out[pname] = copy.deepcopy(param.default)  # a list default must not be shared between builds
    if spec.check is not None:
        spec.check(out)
    if monitor is not None and spec.granularity == "metric" and "mode" in spec.params:
        want = mode_of(monitor)
        if out["mode"] is None:
            out["mode"] = want
        elif out["mode"] != want:
            raise UsageError(
                f"scheduler '{name}' mode '{out['mode']}' contradicts --monitor {monitor} (it is "
                f"stepped with {monitor}, where {'higher' if want == 'max' else 'lower'} is better); "
                f"leave mode out or give --scheduler_mode {want}"
            )
    return out


def is_horizon_free(name: str, given: dict[str, Any]) -> bool:
    """Whether schedule ``name`` with these params keeps its shape when --epochs changes."""
    spec = get_spec(name)
    pid = preset_of(name)
    if pid is not None and _scaled_keys(spec, PRESETS[pid]["params"]) - set(canonical_params(name, given)):
        return False  # a preset value scaled to the run's length is part of the shape
    flag = spec.horizon_free
    return flag(resolve_params(name, given)) if callable(flag) else flag


def describe_schedule(name: str, given: dict[str, Any], epochs: int, monitor: str = "val_loss") -> dict[str, Any]:
    """What a run's schedule resolves to: the catalog entry, the preset (or None), every parameter.
    Plain data (JSON-ready): for records such as checkpoints and a results database."""
    return {
        "scheduler": get_spec(name).name,
        "preset": preset_of(name),
        "params": resolve_params(name, given, epochs, monitor),
    }


# --- how each granularity hears the training loop's two events (used by the wrapper and compositions) ---
def deliver_update(granularity: str, sched: Any) -> None:
    """Pass "an optimizer update happened" to a schedule of this granularity."""
    if granularity == "update":
        sched.step()
    elif granularity == "events":
        sched.step_update()


def deliver_epoch(granularity: str, sched: Any, metric: float | None) -> None:
    """Pass "an epoch ended with this monitored metric (--monitor)" to a schedule of this granularity."""
    if granularity == "epoch":
        sched.step()
    elif granularity == "metric":
        if metric is None:
            raise ValueError("a metric-driven schedule needs the monitored metric each epoch")
        sched.step(metric)
    elif granularity == "events":
        sched.step_epoch(metric)
