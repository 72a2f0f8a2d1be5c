"""Which runs may be compared: the comparability key of a run's resolved config.

Two runs are comparable when they differ only in what a sweep varies -- the schedule and the seed
-- and in settings that do not change what is learned. Their key is equal exactly then. The key
reads ``digits custom 5ep 3f2a9c1b``: dataset, model and epochs for people, and a short hash of
every other setting that counts (a SHA-256 of their canonical JSON, 8 hex digits).

Left out of the key (``EXCLUDED``):

* the schedule and the seed: ``scheduler``, its ``scheduler_params``, ``warmup_epochs``,
  ``warmup_steps``, ``warmup_mode``, ``warmup_start_factor`` (a warmup is part of the schedule being
  compared), ``seed``; and the schedule-free optimizers' suffix (``adamw_schedulefree`` counts as
  ``adamw``: ``--scheduler schedule_free`` is the schedule that runs them);
* bookkeeping: ``run_name``, ``checkpoint_dir``, ``resume``, ``results_db``, ``save_every``,
  ``keep_last``, ``tensorboard``, and ``data_dir`` for the built-in datasets (only a cache folder
  there; for ``folder`` and ``csv`` it names the data, so it counts);
* how the same computation runs: ``device``, ``threads``, ``num_workers``, ``data_mode``, ``amp``,
  ``amp_dtype``, ``channels_last``, ``compile``, ``deterministic``, ``max_nonfinite``,
  ``strict_data`` (rounding may differ, the experiment does not).

A run trained with ``--lr auto`` counts as ``lr: auto`` (see :func:`comparability_key`).

Everything else counts (data splits, augmentation, model shape, epochs, batch size, LR, optimizer,
regularisation, early stopping and ``monitor``, ...), as the run resolved and saved it. A run saved
before a setting existed lacks it, so its key differs from a newer run's: ``first_difference`` names
such a setting, and the listings say how many runs were left out and why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SCHEDULE_SETTINGS = (
    "scheduler",
    "scheduler_params",
    "warmup_epochs",
    "warmup_steps",
    "warmup_mode",
    "warmup_start_factor",
    "seed",
)
BOOKKEEPING = ("run_name", "checkpoint_dir", "resume", "results_db", "save_every", "keep_last", "tensorboard")
EXECUTION = (
    "device",
    "threads",
    "num_workers",
    "data_mode",
    "amp",
    "amp_dtype",
    "channels_last",
    "compile",
    "deterministic",
    "max_nonfinite",
    "strict_data",
)
EXCLUDED = frozenset(SCHEDULE_SETTINGS + BOOKKEEPING + EXECUTION)
FILE_DATASETS = ("folder", "csv")  # datasets whose data_dir is the data itself
SCHEDULE_FREE_SUFFIX = "_schedulefree"


def compared_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``config`` (a resolved config as saved) that the key covers."""
    out = {}
    for key, value in config.items():
        if key in EXCLUDED or (key == "data_dir" and config.get("dataset") not in FILE_DATASETS):
            continue
        if key == "optimizer" and isinstance(value, str):
            value = value.removesuffix(SCHEDULE_FREE_SUFFIX)
        out[key] = value
    return out


def comparability_key(config: dict[str, Any], run_dir: str | Path | None = None) -> str:
    """``<dataset> <model> <epochs>ep <hash8>``: equal for runs that differ only in schedule and seed.

    ``run_dir``: the run's folder. A run trained with ``--lr auto`` saves the LR its range test chose
    (and its plots in ``<run>/lr_find/``); that choice differs from seed to seed, so such a run counts
    with ``lr: auto``, the setting it was given -- else no two seeds of an ``--lr auto`` sweep would pair.
    """
    settings = compared_settings(config)
    if run_dir is not None and (Path(run_dir) / "lr_find").is_dir():
        settings["lr"] = "auto"
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{config.get('dataset', '?')} {config.get('model', '?')} {config.get('epochs', '?')}ep {digest}"


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first compared setting (alphabetically) in which configs ``a`` and ``b`` differ, as
    ``name: A vs B``; None when their keys are equal."""
    sa, sb = compared_settings(a), compared_settings(b)
    missing = "(not recorded)"
    for key in sorted(set(sa) | set(sb)):
        va, vb = sa.get(key, missing), sb.get(key, missing)
        if va != vb:
            return f"{key}: {va!r} vs {vb!r}"
    return None
