"""What makes a run folder finished: a ``summary.json`` that parses and holds a result.

``summary.json`` is the last file a run writes (atomically), after the final test: the sweep, the
results-database importer and the web page all ask :func:`run_is_finished` rather than whether the
file exists, so a 0-byte or cut file (a full disk, a kill) counts as unfinished, and
``train.py --resume auto`` completes the run (final test and summary) instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
# Written by every finished run (engine/trainer.py), besides "<split>_acc" / "<split>_loss".
SUMMARY_KEYS = ("run_dir", "best_epoch", "best_metric", "monitor", "stopped_early", "stop_reason")
SPLITS = ("test", "val")


def read_summary(folder: str | Path) -> dict[str, Any] | None:
    """The run's summary, or None when it is missing, unreadable, not JSON or lacks a key."""
    try:
        data = json.loads((Path(folder) / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or any(k not in data for k in SUMMARY_KEYS):
        return None
    split = next((s for s in SPLITS if f"{s}_acc" in data), None)
    if split is None:
        return None
    acc = data[f"{split}_acc"]
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
        return None
    return data


def run_is_finished(folder: str | Path) -> bool:
    """Whether the run in ``folder`` finished: its summary.json is complete (see :func:`read_summary`)."""
    return read_summary(folder) is not None
