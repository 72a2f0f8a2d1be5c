"""A sweep's overlay plots: ``lr.png`` (LR per update, one line per schedule) and ``val_acc.png`` (the
mean over seeds with a band across them).

metrics.csv holds one LR per epoch, which hides warmup and per-update schedules (OneCycle, cyclic,
restarts). The per-update curve is replayed instead with ``schedulers.simulate``: the trainer's own
scheduler and warmup wrapper, driven by the same events for the run's plan (its updates per epoch
come from ``last.pt``) and, for metric-driven schedules such as plateau, the run's recorded
validation losses -- so the line is the LR the run trained with.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from common.figures import pyplot, save_figure
from resultsdb.leaderboard import RunResult
from schedulers import make_plan
from schedulers.simulate import simulate
from settings import config as config_mod


def _monitored(folder: Path, monitor: str) -> list[float]:
    """The per-epoch values the trainer fed to ``step_epoch`` (plateau follows --monitor)."""
    import csv

    with open(folder / "metrics.csv", newline="") as f:
        return [float(r[monitor]) for r in csv.DictReader(f)]


def lr_curve(folder: Path) -> tuple[list[float], list[float]]:
    """(fractional epoch, LR) of every update of the run in ``folder``, as its scheduler set them."""
    ckpt = torch.load(folder / "last.pt", map_location="cpu", weights_only=True, mmap=True)
    cfg = config_mod.from_dict(ckpt["config"])
    epochs_done = max(int(ckpt["epoch"]), 1)
    spe = max(1, round(int(ckpt["global_step"]) / epochs_done))
    plan = make_plan(cfg.epochs, spe, cfg.warmup_epochs, cfg.warmup_steps, cfg.monitor)
    with contextlib.redirect_stdout(io.StringIO()):  # the run printed its schedule's notes already
        points = simulate(
            cfg.scheduler,
            cfg.scheduler_params,
            cfg.epochs,
            spe,
            plan.warmup_steps,
            float(cfg.lr),
            _monitored(folder, cfg.monitor),
            cfg.warmup_mode,
            cfg.warmup_start_factor,
            monitor=cfg.monitor,
        )
    return [p.epoch for p in points], [p.lr for p in points]


# Overlaid lines differ in dash, marker and width (the first drawn widest), so that schedules that
# coincide -- step and plateau hold the base LR alike until their first decay -- all stay visible.
DASHES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _style(i: int, n: int, points: int) -> dict:
    every = max(1, points // 10)
    return {
        "linestyle": DASHES[i % len(DASHES)],
        "linewidth": 3.0 - 1.8 * i / max(n - 1, 1),
        "marker": MARKERS[i % len(MARKERS)],
        "markersize": 5,
        "markevery": (i * every // n, every),
    }


def _legend(ax) -> None:
    if ax.get_lines():
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside, never on a line


def plot_sweep(results: Sequence[RunResult], out_dir: Path) -> list[Path]:
    """Write lr.png (first seed of each schedule) and val_acc.png (mean over seeds, with the band from the
    lowest to the highest seed) to ``out_dir``. Epochs are numbered from 1: in lr.png epoch k runs from
    k to k + 1, in val_acc.png the value of epoch k is measured at its end."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()

    schedules = list(dict.fromkeys(r.schedule for r in results))
    colors = plt.get_cmap("tab10" if len(schedules) <= 10 else "tab20")
    n = len(schedules)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    peaks, right = [], 2
    for i, s in enumerate(schedules):
        first = min((r for r in results if r.schedule == s), key=lambda r: r.seed)
        if (first.folder / "last.pt").is_file():
            x, y = lr_curve(first.folder)
            peaks.append(max(y))
            right = max(right, math.ceil(x[-1]) + 1)
            ax.plot([1 + e for e in x], y, label=s, color=colors(i % colors.N), **_style(i, n, len(x)))
    if peaks and max(peaks) > 10 * min(peaks):  # one schedule's peak would flatten the others to a line
        ax.set_yscale("log")
    ax.set_xlim(1, right)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="learning rate", title="LR per update (as each schedule set it; first seed)")
    ax.grid(alpha=0.3)
    _legend(ax)
    save_figure(fig, out_dir / "lr.png", dpi=90, tight=True)

    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, s in enumerate(schedules):
        runs = [r for r in results if r.schedule == s]
        epochs = min(len(r.val_acc) for r in runs)  # early stopping may end some seeds sooner
        per_epoch = [[100 * r.val_acc[e] for r in runs] for e in range(epochs)]
        x = list(range(1, epochs + 1))
        color = colors(i % colors.N)
        ax.plot(
            x,
            [statistics.fmean(v) for v in per_epoch],
            color=color,
            label=f"{s} (mean of {len(runs)} seeds)" if len(runs) > 1 else s,
            **_style(i, n, epochs),
        )
        if len(runs) > 1:
            ax.fill_between(
                x, [min(v) for v in per_epoch], [max(v) for v in per_epoch], color=color, alpha=0.15, linewidth=0
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="epoch",
        ylabel="validation accuracy (%)",
        title="Validation accuracy: mean over seeds, band from the lowest to the highest seed",
    )
    ax.grid(alpha=0.3)
    _legend(ax)
    save_figure(fig, out_dir / "val_acc.png", dpi=90, tight=True)
    return [out_dir / "lr.png", out_dir / "val_acc.png"]
