"""What a sweep searches: the grid ``--schedulers`` x ``--seeds``, or a ``--search FILE.yaml``.

A search file maps train.py settings to a list of choices or a range::

    scheduler: [cosine, onecycle, step]
    lr: {low: 1.0e-4, high: 1.0e-1, log: true}
    batch_size: [32, 64, 128]
    scheduler_gamma: {low: 0.1, high: 0.9}   # applied only to schedules that take it

Every value reaches train.py as its own flag, so train.py's own checks judge it; they run on each
choice and each end of each range before the first trial.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UsageError
from settings.config import (
    FIELD_TYPES,
    TRI_STATE,
    Config,
    apply_overrides,
    load_yaml,
    parse_args,
)

SET_BY_SWEEP = ("seed", "run_name", "resume", "checkpoint_dir")  # train.py settings the sweep sets per run
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dim:
    """One searched setting: ``choices`` (categorical), or a ``low``..``high`` range."""

    name: str
    choices: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def ends(self) -> list[Any]:
        """The values train.py's checks are run on: every choice, or both ends of the range."""
        return list(self.choices) if self.choices else [self.low, self.high]


@dataclass(frozen=True)
class Space:
    dims: tuple[Dim, ...]
    source: str  # where it came from, for messages: "--schedulers" or "--search FILE"

    @property
    def is_grid(self) -> bool:
        return all(d.choices for d in self.dims)

    def grid(self) -> dict[str, list]:
        return {d.name: list(d.choices) for d in self.dims}

    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def size(self) -> int | None:
        """Configurations in a grid; None for a space with ranges."""
        if not self.is_grid:
            return None
        n = 1
        for d in self.dims:
            n *= len(d.choices)
        return n

    def suggest(self, trial, default_scheduler: str) -> dict[str, Any]:
        """The trial's values; a schedule's hyperparameter only where the trial's schedule takes it."""
        params: dict[str, Any] = {}
        for d in self.dims:  # the scheduler is first (see from_grid/load_space)
            if d.name.startswith("scheduler_") and not takes(params.get("scheduler", default_scheduler), d.name):
                continue
            if d.choices:
                params[d.name] = trial.suggest_categorical(d.name, list(d.choices))
            elif isinstance(d.low, int) and isinstance(d.high, int) and FIELD_TYPES.get(d.name) is not float:
                params[d.name] = trial.suggest_int(d.name, d.low, d.high, log=d.log, step=int(d.step or 1))
            else:
                params[d.name] = trial.suggest_float(d.name, float(d.low), float(d.high), log=d.log, step=d.step)
        return params


def takes(scheduler: str, key: str) -> bool:
    """Whether ``scheduler`` has the hyperparameter of flag ``scheduler_<param>``."""
    from schedulers.registry import get_spec

    spec = get_spec(scheduler)
    param = key[len("scheduler_") :]
    return param in spec.params or param in spec.param_aliases


def from_grid(schedules: Sequence[str]) -> Space:
    return Space((Dim("scheduler", tuple(schedules)),), "--schedulers")


def load_space(path: Path) -> Space:
    """Read a search file; its shape is checked here, its values by :func:`check_space`."""
    where = f"--search {path}"
    data = load_yaml(path)
    if not data:
        raise UsageError(f"{where} is empty; give settings with a list of choices or a {{low, high}} range")
    dims = []
    for key, value in data.items():
        if isinstance(value, list):
            if not value:
                raise UsageError(f"{where}: '{key}' has an empty list of choices")
            dims.append(Dim(key, tuple(value)))
        elif isinstance(value, dict):
            extra = set(value) - RANGE_KEYS
            if extra or not {"low", "high"} <= set(value):
                raise UsageError(
                    f"{where}: '{key}' must be a list of choices or {{low: A, high: B}} (optionally "
                    f"log: true, step: S); got keys {sorted(value)}"
                )
            low, high = value["low"], value["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
                raise UsageError(f"{where}: '{key}' needs numbers low <= high, got low={low!r} high={high!r}")
            if value.get("log") and low <= 0:
                raise UsageError(f"{where}: '{key}' has log: true, so low must be > 0 (got {low})")
            dims.append(Dim(key, (), low, high, bool(value.get("log", False)), value.get("step")))
        else:
            raise UsageError(
                f"{where}: '{key}' must be a list of choices or {{low: A, high: B}}, got {value!r} "
                f"(a fixed value goes into the train.py flags after `--`)"
            )
    dims.sort(key=lambda d: d.name != "scheduler")  # the schedule first: its hyperparameters depend on it
    return Space(tuple(dims), where)


def to_flags(params: dict[str, Any]) -> list[str]:
    """train.py flags setting ``params`` (typed the way the flags parse them)."""
    out = []
    for key, value in params.items():
        if isinstance(value, bool) and key not in TRI_STATE:
            out.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, bool):
            out += [f"--{key}", "on" if value else "off"]
        elif isinstance(value, (list, dict)):
            out += [f"--{key}", json.dumps(value)]
        else:
            out += [f"--{key}", repr(value) if isinstance(value, float) else str(value)]
    return out


def check_space(space: Space, train_args: Sequence[str], cli_keys: Sequence[str], default_scheduler: str) -> None:
    """Run train.py's own checks on every choice and range end, before the first trial: one line
    naming the bad key."""
    from settings.validate import check_config

    schedules = next((list(d.choices) for d in space.dims if d.name == "scheduler"), [default_scheduler])
    for d in space.dims:
        if d.name in SET_BY_SWEEP:
            raise UsageError(f"{space.source}: '{d.name}' is set by the sweep for each run; leave it out")
        if d.name in cli_keys:
            raise UsageError(f"{space.source}: '{d.name}' is searched, so leave --{d.name} out of the train.py flags")
        if d.name not in FIELD_TYPES and not d.name.startswith("scheduler_"):
            apply_overrides(Config(), {d.name: d.ends()[0]}, source=space.source)  # unknown: names the nearest
        hosts = [s for s in schedules if takes(s, d.name)] if d.name.startswith("scheduler_") else schedules
        if not hosts:
            raise UsageError(f"{space.source}: '{d.name}': no schedule in this sweep ({', '.join(schedules)}) takes it")
        for value in d.ends():
            if d.name == "scheduler":
                combos = [{"scheduler": value}]
            elif d.name.startswith("scheduler_"):
                combos = [{"scheduler": s, d.name: value} for s in hosts]
            else:
                combos = [{d.name: value}]
            for params in combos:
                try:
                    check_config(parse_args([*train_args, *to_flags(params)])[0])
                except UsageError as e:
                    raise UsageError(f"{space.source}: '{d.name}' = {value!r}: {e}") from None


def config_key(params: dict[str, Any]) -> str:
    """A configuration's identity: its values as sorted JSON."""
    return json.dumps(params, sort_keys=True, default=str)


def run_label(params: dict[str, Any], default_scheduler: str) -> str:
    """A configuration's folder name (before ``_s<seed>``): the schedule, plus a digest of the other values."""
    schedule = str(params.get("scheduler", default_scheduler))
    rest = {k: v for k, v in params.items() if k != "scheduler"}
    if not rest:
        return schedule
    return f"{schedule}-{hashlib.sha1(config_key(rest).encode()).hexdigest()[:6]}"
