"""The metrics a run can monitor (``--monitor``) and which direction is better for each.

Early stopping, best.pt, ReduceLROnPlateau's ``mode`` and the checks of ``--monitor`` all read this
one table.
"""

from __future__ import annotations

MONITORS: dict[str, str] = {"val_loss": "min", "val_acc": "max"}


def mode_of(monitor: str) -> str:
    """``min`` or ``max``: the direction in which ``monitor`` improves."""
    return MONITORS[monitor]
