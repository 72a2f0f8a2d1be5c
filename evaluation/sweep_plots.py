"""A sweep's overlay plots: ``lr.png`` (LR per update, one line per schedule) and ``val_acc.png``.

metrics.csv holds one LR per epoch, which hides warmup and per-update schedules (OneCycle, cyclic,
restarts). The per-update curve is replayed instead with ``schedulers.simulate``: the trainer's own
scheduler and warmup wrapper, driven by the same events for the run's plan (its updates per epoch
come from ``last.pt``) and, for metric-driven schedules such as plateau, the run's recorded
validation losses -- so the line is the LR the run trained with.
"""
from __future__ import annotations

import contextlib
import io
import statistics
from pathlib import Path
from typing import Sequence

import torch

from settings import config as config_mod
from common.figures import pyplot, save_figure
from resultsdb.leaderboard import RunResult
from schedulers import make_plan
from schedulers.simulate import simulate


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
        points = simulate(cfg.scheduler, cfg.scheduler_params, cfg.epochs, spe, plan.warmup_steps, float(cfg.lr),
                          _monitored(folder, cfg.monitor), cfg.warmup_mode, cfg.warmup_start_factor,
                          monitor=cfg.monitor)
    return [p.epoch for p in points], [p.lr for p in points]


def plot_sweep(results: Sequence[RunResult], out_dir: Path) -> list[Path]:
    """Write lr.png (first seed of each schedule) and val_acc.png (mean over seeds) to ``out_dir``."""
    plt = pyplot()
    schedules = list(dict.fromkeys(r.schedule for r in results))
    colors = plt.get_cmap("tab10" if len(schedules) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    peaks = []
    for i, s in enumerate(schedules):
        first = min((r for r in results if r.schedule == s), key=lambda r: r.seed)
        if (first.folder / "last.pt").is_file():
            x, y = lr_curve(first.folder)
            peaks.append(max(y))
            ax.plot(x, y, label=s, color=colors(i % colors.N), linewidth=1.5)
    if peaks and max(peaks) > 10 * min(peaks):  # one schedule's peak would flatten the others to a line
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="learning rate", title="LR per update (as each schedule set it)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(schedules) > 6 else 1)
    fig.tight_layout()
    save_figure(fig, out_dir / "lr.png", dpi=90)

    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, s in enumerate(schedules):
        runs = [r for r in results if r.schedule == s]
        n = min(len(r.val_acc) for r in runs)
        mean = [statistics.fmean(r.val_acc[e] for r in runs) for e in range(n)]
        ax.plot(range(1, n + 1), mean, marker="o", ms=3, label=f"{s} ({len(runs)} seeds)" if len(runs) > 1 else s,
                color=colors(i % colors.N), linewidth=1.5)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(schedules) > 6 else 1)
    fig.tight_layout()
    save_figure(fig, out_dir / "val_acc.png", dpi=90)
    return [out_dir / "lr.png", out_dir / "val_acc.png"]
