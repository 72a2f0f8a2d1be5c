"""The LR range test (Smith 2017, "Cyclical Learning Rates", section 3.3; fastai's ``lr_find``).

Train for ``num_iter`` updates while the LR grows exponentially from ``start_lr`` to ``end_lr``,
recording the loss of every batch and an exponential moving average of it (bias-corrected, as in
Adam, so the first points are not pulled towards 0). Stop early once the smoothed loss exceeds
``diverge`` times its best: past that the LR is useless and the weights may overflow.

The suggestion is the LR where the smoothed loss falls fastest against log(LR) -- the steepest
descent; the LR of the minimum divided by 10 is the other common rule, reported beside it.
The caller owns the model and optimizer it passes in: they are trained on, so it passes copies
(``engine/trainer.py: choose_lr`` and ``lr_find.py`` build throw-away ones).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from common.fileio import write_atomic
from common.errors import AppError
from common.progress import bar as progress_bar
from common.spelling import plural

SMOOTHING = 0.95  # weight of the past in the moving average: ~20 batches (torch-lr-finder's default)
SKIP_START = 10  # the first averages rest on a few batches: their slope is noise, not the LR's effect
DIVERGE = 4.0


@dataclass
class LRFind:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""  # why the sweep ended before num_iter, if it did

    @property
    def steepest(self) -> float:
        """LR of the steepest descent of the smoothed loss against log10(LR)."""
        if len(self.lrs) < SKIP_START + 3:
            raise AppError(f"the LR range test stopped after {plural(len(self.lrs), 'update')} ({self.stopped}); "
                           f"too few to suggest an LR: lower --start_lr or raise --num_iter")
        # Only up to the minimum: after it the curve rises, and its edge is no place to train.
        end = max(int(np.argmin(self.smoothed)) + 1, SKIP_START + 3)
        lrs, smoothed = self.lrs[SKIP_START:end], self.smoothed[SKIP_START:end]
        grads = np.gradient(np.asarray(smoothed), np.log10(lrs))
        return float(lrs[int(np.argmin(grads))])

    @property
    def min_over_10(self) -> float:
        return float(self.lrs[int(np.argmin(self.smoothed))]) / 10


def _batches(loader) -> Iterable:
    """The training loader, epoch after epoch, for as many batches as the test needs."""
    epoch = 0
    while True:
        epoch += 1
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        n = 0
        for batch in loader:
            n += 1
            yield batch
        if n == 0:
            raise AppError("the training split is empty: nothing to run the LR range test on")


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, loader, criterion: nn.Module, amp,
               start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100, diverge: float = DIVERGE,
               progress: bool | None = None) -> LRFind:
    """Run the exponential LR sweep on ``model``/``optimizer`` (trained on: pass copies)."""
    scaler = amp.make_scaler()
    ratio = end_lr / start_lr
    out = LRFind()
    avg, best = 0.0, math.inf
    model.train()
    bar = progress_bar(total=num_iter, desc="LR range test", enabled=progress, unit="updates")
    for i, (x, y) in zip(range(num_iter), _batches(loader)):
        lr = start_lr * ratio ** (i / max(num_iter - 1, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            loss = criterion(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            out.stopped = f"non-finite loss at lr {lr:.3g}"
            break
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        smooth = avg / (1 - SMOOTHING ** (i + 1))
        out.lrs.append(lr)
        out.losses.append(value)
        out.smoothed.append(smooth)
        bar.set_postfix(lr=f"{lr:.3g}", smoothed_loss=f"{smooth:.4f}", refresh=False)
        bar.update()
        best = min(best, smooth)
        if smooth > diverge * best:
            out.stopped = f"smoothed loss {smooth:.3g} passed {diverge:g}x its best ({best:.3g}) at lr {lr:.3g}"
            break
    bar.close()
    return out


def write_outputs(result: LRFind, out_dir: Path) -> list[Path]:
    """``lr_find.csv`` (lr,loss,smoothed_loss) and ``lr_find.png`` with the suggestion marked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["lr", "loss", "smoothed_loss"])
    for row in zip(result.lrs, result.losses, result.smoothed):
        w.writerow([f"{v:.6g}" for v in row])
    write_atomic(buf.getvalue().encode(), out_dir / "lr_find.csv")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss per batch")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
    title = "LR range test"
    if len(result.lrs) >= SKIP_START + 3:
        steep = result.steepest
        ax.axvline(steep, color="tab:red", linestyle="--", label=f"steepest descent: {steep:.2g} (suggested)")
        ax.plot([steep], [float(np.interp(np.log(steep), np.log(result.lrs), result.smoothed))], "o",
                color="tab:red", markersize=7)
        ax.axvline(result.min_over_10, color="tab:green", linestyle=":", label=f"minimum / 10: {result.min_over_10:.2g}")
        title += f": suggested lr {steep:.2g}"
    ax.set_xscale("log")
    top = min(max(result.losses), 2 * max(result.smoothed)) if result.losses else 1
    ax.set_ylim(min(result.losses, default=0) * 0.95, top)
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title=f"{title} ({plural(len(result.lrs), 'update')}, one batch each)")
    ax.grid(alpha=0.3)  # decades only: a minor grid at every 2x..9x hides the curves
    ax.legend(loc="upper left")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    write_atomic(png.getvalue(), out_dir / "lr_find.png")
    return [out_dir / "lr_find.csv", out_dir / "lr_find.png"]


def report(result: LRFind) -> str:
    """The lines a user reads: the suggestion first, then the alternative and why the sweep ended."""
    why = result.stopped or f"ran all {plural(len(result.lrs), 'update')}"
    return (f"suggested lr: {result.steepest:.3g}\n"
            f"(steepest descent of the smoothed loss; minimum/10: {result.min_over_10:.3g}; "
            f"{plural(len(result.lrs), 'update')} from {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}: {why})")
