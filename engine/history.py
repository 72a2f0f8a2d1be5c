"""The run's per-epoch record: ``metrics.csv`` and ``curves.png`` (loss, accuracy, LR vs epoch)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from common.fileio import write_atomic

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]


def write_metrics_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(buf.getvalue().encode(), path)


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        axes[0].plot(epochs, [r[key] for r in rows], style, marker="o", ms=3, label=key)
    for key, style in (("train_acc", "-"), ("val_acc", "--")):
        axes[1].plot(epochs, [r[key] for r in rows], style, marker="o", ms=3, label=key)
    axes[2].plot(epochs, [r["lr"] for r in rows], marker="o", ms=3, color="tab:green")
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate (last update of the epoch)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_atomic(buf.getvalue(), path)
