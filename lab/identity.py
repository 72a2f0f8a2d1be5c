"""A sweep's identity: its resolved train.py settings in ``<sweep>/sweep.yaml``, and each run folder's state.

Every run of a sweep shares these settings; only the searched ones (and the seed) differ. Re-running
a ``--name`` with other settings would mix incomparable runs under one leaderboard, so it is refused
naming the first differing setting. A run folder is reused only when its own config.yaml agrees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from common.errors import UsageError
from common.fileio import write_atomic
from common.run_files import run_is_finished
from settings import config as config_mod

SWEEP_FILE = "sweep.yaml"
# Decided by the machine at start, not by the experiment: threads, AMP and memory format are
# measured per run (engine/autotune.py) and the sweep splits the cores between its jobs.
RUNTIME_KEYS = (
    "threads",
    "amp",
    "amp_dtype",
    "channels_last",
    "num_workers",
    "data_mode",
    "device",
    "run_name",
    "resume",
    "checkpoint_dir",
    "results_db",
    "tensorboard",
)


def settings_of(cfg: config_mod.Config, swept: list[str]) -> dict[str, Any]:
    """The sweep's settings: every train.py setting but the swept ones, the seed and runtime choices."""
    values = config_mod.to_dict(cfg)
    params = values.pop("scheduler_params")
    values.update({f"scheduler_{k}": v for k, v in params.items()})
    return {k: v for k, v in values.items() if k not in swept and k != "seed" and k not in RUNTIME_KEYS}


def first_difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first setting that differs, as ``key=old -> new``, or None."""
    for key in [*saved, *[k for k in now if k not in saved]]:
        if _norm(saved.get(key)) != _norm(now.get(key)):
            return f"{key}={saved.get(key)!r} there, {now.get(key)!r} now"
    return None


def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_or_write(sweep_dir: Path, name: str, settings: dict[str, Any], write: bool) -> None:
    """Refuse a sweep folder made with other settings (exit 2); record the settings of a new one."""
    path = sweep_dir / SWEEP_FILE
    if path.is_file():
        saved = (yaml.safe_load(path.read_text()) or {}).get("settings", {})
        diff = first_difference(saved, settings)
        if diff:
            raise UsageError(
                f"sweep '{name}' was run with other settings ({path}): {diff}. Its runs would not "
                f"be comparable: choose a new --name (e.g. --name {name}_2)"
            )
    elif write:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(yaml.safe_dump({"settings": settings}, sort_keys=False).encode(), path)


def run_config(folder: Path) -> dict[str, Any] | None:
    """A run folder's config.yaml as flat settings (``scheduler_<param>`` keys), or None."""
    path = folder / "config.yaml"
    if not path.is_file():
        return None
    values = yaml.safe_load(path.read_text()) or {}
    block = values.pop("scheduler", None)
    if isinstance(block, dict):
        block = dict(block)
        values["scheduler"] = block.pop("name", "")
        values.update({f"scheduler_{k}": v for k, v in block.items()})
    else:
        values["scheduler"] = block
    return values


def run_mismatch(folder: Path, expected: dict[str, Any]) -> str | None:
    """How the run in ``folder`` differs from ``expected`` (None: it agrees, or has no config yet)."""
    saved = run_config(folder)
    if saved is None:
        return None
    for key, want in expected.items():
        if key in RUNTIME_KEYS or (key == "lr" and want == config_mod.LR_AUTO) or want == "auto":
            continue
        if key.startswith("scheduler_") and key not in saved:
            continue  # a preset's or a default value: config.yaml keeps only what was given
        if _norm(saved.get(key)) != _norm(want):
            return f"{key}={saved.get(key)!r} in its config.yaml, {want!r} for this sweep"
    return None


def run_state(folder: Path, expected: dict[str, Any]) -> str:
    """``run``, ``resume`` or ``skip (finished)``; a folder with other settings is refused (exit 2)."""
    diff = run_mismatch(folder, expected)
    if diff:
        raise UsageError(f"run folder {folder} was trained with other settings ({diff}); choose a new --name")
    if run_is_finished(folder):  # a cut or empty summary.json is not: --resume auto completes the run
        return "skip (finished)"
    return "resume" if (folder / "last.pt").is_file() else "run"
