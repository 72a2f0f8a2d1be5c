"""The run's per-epoch record: ``metrics.csv`` and ``curves.png`` (loss, accuracy, LR vs epoch)."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from common.figures import pyplot, save_figure
from common.fileio import write_atomic
from common.spelling import plural
from tracking.sink import RunInfo, Sink

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]


def write_metrics_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(buf.getvalue().encode(), path)


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Loss, accuracy and LR against the epoch (numbered from 1, whole-number ticks); the run's
    folder name on top. The loss axis turns logarithmic once it spans more than a factor of 20, so
    late epochs stay readable beside a large first one; so does the LR axis past a factor of 100."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    plt = pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        axes[0].plot(epochs, [r[key] for r in rows], style, marker="o", ms=3, label=key.split("_")[0])
    for key, style in (("train_acc", "-"), ("val_acc", "--")):
        axes[1].plot(epochs, [r[key] for r in rows], style, marker="o", ms=3, label=key.split("_")[0])
    axes[2].plot(epochs, [r["lr"] for r in rows], marker="o", ms=3, color="tab:green")
    losses = [r[k] for r in rows for k in ("train_loss", "val_loss") if math.isfinite(r[k]) and r[k] > 0]
    if losses and max(losses) > 20 * min(losses):
        axes[0].set_yscale("log")
    lrs = [r["lr"] for r in rows]
    if min(lrs) > 0 and max(lrs) > 100 * min(lrs):  # step decays: each level visible (a cosine's 0 is not)
        axes[2].set_yscale("log")
    axes[1].yaxis.set_major_formatter(PercentFormatter(1.0))
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate (last update of the epoch)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(f"{path.parent.name}: {plural(len(rows), 'epoch')}", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


class CurvesWriter:
    """Keeps ``curves.png`` current without drawing it after every epoch.

    Drawing the three panels costs ~0.3 s on a 2-core CPU: a run whose epochs take a fraction of a
    second (the bundled digits) would spend most of its time drawing. So the plot is redrawn after
    an epoch only when the last drawing -- or, before the first, the writer's creation at the start
    of training -- is ``interval_s`` old (a run shorter than that is drawn once, at its end), and
    whatever is not drawn yet is drawn when the training loop is left -- finished, stopped early,
    interrupted or failed. ``metrics.csv`` is still written every epoch.
    """

    interval_s = 10.0

    def __init__(self, path: Path):
        self.path = path
        self.drawn_at = time.monotonic()
        self.pending: list[dict[str, Any]] | None = None

    def update(self, rows: list[dict[str, Any]]) -> None:
        self.pending = list(rows)
        if time.monotonic() - self.drawn_at >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            plot_curves(self.pending, self.path)
            self.drawn_at = time.monotonic()
        self.pending = None

    def __enter__(self) -> CurvesWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.flush()
        except Exception:
            if exc_type is None:
                raise
            # leaving on an error or a signal already: that one is what the user must see


class CsvSink(Sink):
    """``metrics.csv`` rewritten every epoch (atomically: it is the run's record), ``curves.png`` kept current."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "metrics.csv"
        self.curves = CurvesWriter(run_dir / "curves.png")
        self.rows: list[dict[str, Any]] = []

    def start(self, run: RunInfo) -> None:
        self.rows = [{k: r[k] for k in COLUMNS} for r in run.history]

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        self.rows.append({k: row[k] for k in COLUMNS})
        write_metrics_csv(self.rows, self.path)
        self.curves.update(self.rows)

    def end(self, status: str) -> None:
        self.curves.flush()  # whatever is not drawn yet, whatever the status
