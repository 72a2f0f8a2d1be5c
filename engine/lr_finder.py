"""The LR range test (Smith 2017, "Cyclical Learning Rates", section 3.3; fastai's ``lr_find``).

Train for ``num_iter`` updates while the LR grows exponentially from ``start_lr`` to ``end_lr``,
recording the loss of every batch and an exponential moving average of it (bias-corrected, as in
Adam, so the first points are not pulled towards 0). Stop early once the smoothed loss exceeds
``diverge`` times its best: past that the LR is useless and the weights may overflow.

The suggestion is the LR where the smoothed loss falls fastest against log(LR) -- the steepest
descent; the LR of the minimum divided by 10 is the other common rule, reported beside it.
``range_test`` trains the model and optimizer it is given; :func:`lr_range_test` runs it on
throw-away copies of a run's (``lr_find.py`` and ``--lr auto`` through :func:`choose_lr`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.errors import AppError
from common.figures import pyplot, save_figure
from common.fileio import write_atomic
from common.progress import bar as progress_bar
from common.spelling import plural
from data import DataBundle, preprocessing_of
from data.loader import Feed, make_loader
from engine.setup import build_components
from runtime import distributed as ddp
from runtime.runtime import rng_state, set_rng_state
from settings.config import Config

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
            raise AppError(
                f"the LR range test stopped after {plural(len(self.lrs), 'update')} ({self.stopped}); "
                f"too few to suggest an LR: lower --start_lr or raise --num_iter"
            )
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


def range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader,
    criterion: nn.Module,
    amp,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    diverge: float = DIVERGE,
    progress: bool | None = None,
) -> LRFind:
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

    fig, ax = pyplot().subplots(figsize=(7, 4))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss per batch")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
    title = "LR range test"
    if len(result.lrs) >= SKIP_START + 3:
        steep = result.steepest
        ax.axvline(steep, color="tab:red", linestyle="--", label=f"steepest descent: {steep:.2g} (suggested)")
        ax.plot(
            [steep],
            [float(np.interp(np.log(steep), np.log(result.lrs), result.smoothed))],
            "o",
            color="tab:red",
            markersize=7,
        )
        ax.axvline(
            result.min_over_10, color="tab:green", linestyle=":", label=f"minimum / 10: {result.min_over_10:.2g}"
        )
        title += f": suggested lr {steep:.2g}"
    ax.set_xscale("log")
    top = min(max(result.losses), 2 * max(result.smoothed)) if result.losses else 1
    ax.set_ylim(min(result.losses, default=0) * 0.95, top)
    ax.set(
        xlabel="learning rate (log scale)",
        ylabel="training loss",
        title=f"{title} ({plural(len(result.lrs), 'update')}, one batch each)",
    )
    ax.grid(alpha=0.3)  # decades only: a minor grid at every 2x..9x hides the curves
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, out_dir / "lr_find.png", dpi=90)
    return [out_dir / "lr_find.csv", out_dir / "lr_find.png"]


def report(result: LRFind) -> str:
    """The lines a user reads: the suggestion first, then the alternative and why the sweep ended."""
    why = result.stopped or f"ran all {plural(len(result.lrs), 'update')}"
    return (
        f"suggested lr: {result.steepest:.3g}\n"
        f"(steepest descent of the smoothed loss; minimum/10: {result.min_over_10:.3g}; "
        f"{plural(len(result.lrs), 'update')} from {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}: {why})"
    )


def lr_range_test(
    cfg: Config,
    bundle: DataBundle,
    device: torch.device,
    amp,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
) -> LRFind:
    """The LR range test on throw-away copies of the run's model and optimizer; RNG state restored."""
    state = rng_state()  # a run after it must start exactly as it would without it
    c = build_components(
        dataclasses.replace(
            cfg, lr=start_lr, scheduler="constant", scheduler_params={}, ema=0.0, warmup_epochs=0.0, warmup_steps=0
        ),
        bundle,
        device,
        amp,
    )
    feed = Feed(
        preprocessing_of(bundle),
        device,
        channels_last=cfg.channels_last == "on",
        num_workers=ddp.workers_per_rank(cfg.num_workers),  # as training: cores shared by ranks
        strict=cfg.strict_data,
    )
    loader = make_loader(bundle.train, cfg.batch_size, feed, augment_preset=cfg.augment, shuffle=True, seed=cfg.seed)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    result = range_test(c.model, c.optimizer, loader, criterion, amp, start_lr, end_lr, num_iter)
    set_rng_state(state)
    return result


def choose_lr(cfg: Config, bundle: DataBundle, device: torch.device, amp, out_dir: Path) -> Config:
    """``--lr auto``: the LR range test's suggestion becomes the run's LR (and so its config.yaml's)."""
    result = lr_range_test(cfg, bundle, device, amp)  # every rank: the same images, so the same suggestion
    if ddp.is_main():
        write_outputs(result, out_dir)
        print(f"--lr auto: {report(result)}; plot in {out_dir / 'lr_find.png'}")
    return dataclasses.replace(cfg, lr=float(f"{result.steepest:.3g}"))
