"""The console sink: one line per epoch, and the final test's line. Rank 0 alone holds one."""

from __future__ import annotations

import math
from typing import Any

from common.spelling import plural
from tracking.sink import RunInfo, RunResult, Sink


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The one line printed per epoch; updates AMP skipped and batches dropped are never silent.

    ``row``: the metrics.csv columns plus ``images``, ``skipped_updates``, ``nonfinite_batches``
    and ``improved`` (a new best).
    """
    extra = ""
    if row.get("skipped_updates"):
        extra += f" | AMP skipped {plural(row['skipped_updates'], 'update')}"
    if row.get("nonfinite_batches"):
        extra += f" | {plural(row['nonfinite_batches'], 'non-finite batch')} dropped"
    if not (math.isfinite(row["val_loss"]) and math.isfinite(row["val_acc"])):
        extra += " | non-finite validation: not a best, counts as no improvement"
    rate = row.get("images", 0) / max(row["seconds"], 1e-9)
    return (
        f"epoch {row['epoch']:3d}/{epochs} | lr {row['lr']:.3g} | train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.4f} | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | "
        f"{row['seconds']:.1f}s ({rate:.0f} img/s){' *' if row.get('improved') else ''}{extra}"
    )


class ConsoleSink(Sink):
    def __init__(self) -> None:
        self.epochs = 0
        self.run_dir = None

    def start(self, run: RunInfo) -> None:
        self.epochs, self.run_dir = run.cfg.epochs, run.run_dir

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        print(epoch_line(row, self.epochs), flush=True)

    def finish(self, result: RunResult) -> None:
        s = result.summary
        print(
            f"{result.split} accuracy of best.pt (epoch {s['best_epoch']}): {s[f'{result.split}_acc']:.4f}  |  "
            f"run folder: {self.run_dir}",
            flush=True,
        )
