"""The training and evaluation loops: plain functions with explicit arguments.

One AMP path: forward and loss under ``amp.autocast()`` (a null context when AMP is off), the
backward through ``scaler`` (disabled unless float16), then unscale -> clip -> step -> update.
The scheduler hears about an update only when the scaler really applied it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from common import faults
from common.errors import AppError
from common.progress import bar as progress_bar
from models.optim import is_schedule_free
from runtime.distributed import BatchAgreement, all_sum, is_dist
from runtime.runtime import AmpPolicy


class NonFiniteLoss(AppError):
    """Too many consecutive non-finite losses: training stops, the last good checkpoint is kept."""


@dataclass
class EpochStats:
    loss: float
    acc: float
    lr: float  # LR used by the epoch's last update
    seconds: float
    images: int
    updates: int
    skipped_updates: int  # AMP: updates the scaler skipped for inf/nan gradients
    nonfinite_batches: int  # fp32/bf16: batches dropped for a non-finite loss
    batches: int = 0  # batches consumed; fewer than the loader has when the epoch was cut short
    loss_sum: float = 0.0  # exact accumulators, so a cut epoch can be continued bit for bit
    correct: int = 0

    def record(self, epoch: int, val_loss: float, val_acc: float, improved: bool) -> dict:
        """What the sinks hear at the epoch's end: metrics.csv's row plus what the console line shows."""
        return {
            "epoch": epoch,
            "lr": self.lr,
            "train_loss": self.loss,
            "train_acc": self.acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": round(self.seconds, 3),
            "images": self.images,
            "skipped_updates": self.skipped_updates,
            "nonfinite_batches": self.nonfinite_batches,
            "improved": improved,
        }

    def partial_state(self, epoch: int) -> dict:
        """What a mid-epoch checkpoint stores to continue this epoch (``resume_from``)."""
        return {
            "epoch": epoch,
            "batches": self.batches,
            "seen": self.images,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "updates": self.updates,
            "skipped": self.skipped_updates,
            "dropped": self.nonfinite_batches,
            "lr": self.lr,
            "seconds": self.seconds,
        }


@dataclass
class NonFiniteGuard:
    """Counts consecutive non-finite losses across epochs; raises past ``limit``."""

    limit: int
    consecutive: int = 0

    def check(self, loss_value: float, epoch: int, step: int) -> bool:
        if math.isfinite(loss_value):
            self.consecutive = 0
            return True
        self.consecutive += 1
        if self.consecutive >= self.limit:
            raise NonFiniteLoss(
                f"{self.consecutive} consecutive non-finite losses (last at epoch {epoch}, "
                f"step {step}); training stopped and the last good checkpoint is kept. "
                f"Lower --lr, set --grad_clip, or check the data"
            )
        return False


@dataclass
class Updater:
    """What one optimizer update needs: the model, its loss, optimizer, schedule and AMP policy."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # schedulers.warmup.WarmupScheduler: step_update() after each applied update
    scaler: torch.amp.GradScaler
    amp: AmpPolicy
    accum_steps: int = 1
    grad_clip: float = 0.0
    guard: NonFiniteGuard | None = None
    ema: nn.Module | None = None  # updated after every applied update (an EMA; SWA is per epoch)


def train_one_epoch(
    u: Updater,
    loader: Iterable,
    *,
    epoch: int,
    global_step: int,
    should_stop=lambda: False,
    progress: bool | None = None,
    resume_from: dict | None = None,
    on_update=None,
) -> tuple[EpochStats, int]:
    """Train one epoch; returns the stats and the new global step (optimizer updates so far).

    ``should_stop()`` is polled after every optimizer update; when it is true the epoch ends early
    (``stats.batches < len(loader)``). ``resume_from`` (a ``partial_state``) continues such an epoch:
    the loader must replay the same epoch, and its first ``batches`` batches are drawn and discarded,
    so every random draw of the data pipeline happens exactly as in the uninterrupted run.
    ``on_update(global_step, lr)`` is called after each applied update (e.g. TensorBoard's LR curve).
    """
    model, criterion, optimizer, scheduler, scaler, amp = (
        u.model,
        u.criterion,
        u.optimizer,
        u.scheduler,
        u.scaler,
        u.amp,
    )
    accum_steps, grad_clip, guard, ema = u.accum_steps, u.grad_clip, u.guard, u.ema
    model.train()
    if is_schedule_free(optimizer):  # train at y (the epoch end switched to the average x to evaluate)
        optimizer.train()
    acc = resume_from or {}
    start_batch = int(acc.get("batches", 0))
    device = next(model.parameters()).device
    # Sums stay on the device (float64: not on MPS) and are read every 10 batches, not every batch.
    sum_device = device if device.type in ("cpu", "cuda") else torch.device("cpu")
    total_loss = torch.tensor(float(acc.get("loss_sum", 0.0)), dtype=torch.float64, device=sum_device)
    correct = torch.tensor(int(acc.get("correct", 0)), dtype=torch.int64, device=device)
    seen, updates = int(acc.get("seen", 0)), int(acc.get("updates", 0))
    skipped, dropped = int(acc.get("skipped", 0)), int(acc.get("dropped", 0))
    lr = acc.get("lr", optimizer.param_groups[0]["lr"])
    n_batches = len(loader)
    done = start_batch
    start = time.perf_counter() - float(acc.get("seconds", 0.0))
    # A bar on a terminal; in a log file a plain line at most every 10 s (an epoch can take minutes).
    bar = progress_bar(loader, total=n_batches, desc=f"epoch {epoch}", enabled=progress, unit="batches")
    # Gradients are cleared just before the first backward of each update, as a hand-written loop
    # does. Freeing them right after the step was sometimes slower on CPU (in a profile of
    # bench/loop_overhead.py zero_grad took ~2.5 ms a call there, ~0.1 ms here); never faster.
    clear_grads = True
    # Under torchrun: one all-reduce per batch so all ranks drop, weigh and stop alike (no-op alone).
    agree = BatchAgreement(should_stop, getattr(criterion, "weight", None))
    # The guard must see each loss before its backward: one read per batch, unless a GradScaler
    # (float16) does the job on the device by skipping steps with inf/nan gradients.
    check_each_loss = guard is not None and not scaler.is_enabled()
    scale = scaler.get_scale() if scaler.is_enabled() else 0.0  # read once per update, not twice
    for i, (x, y) in enumerate(bar):
        if i < start_batch:
            continue  # consumed before the interruption: drawn (same augmentation draws), not trained on
        done = i + 1
        with amp.autocast():
            out = model(x)
            loss = criterion(out, y)
        # One read per batch only where needed: the fp32 guard, or the ranks' agreement under torchrun.
        loss_value, share = agree.loss_value(loss, y, need_value=check_each_loss)
        if check_each_loss and not guard.check(loss_value, epoch, global_step + 1):
            dropped += 1
            clear_grads = True  # this update's accumulated gradients go too
            continue
        if clear_grads:
            optimizer.zero_grad(set_to_none=True)
            clear_grads = False
        scaler.scale((loss * share if share != 1.0 else loss) / accum_steps).backward()
        if (i + 1) % accum_steps == 0 or i + 1 == n_batches:
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scale_before = scale
            lr = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            clear_grads = True
            scale = scaler.get_scale() if scaler.is_enabled() else 0.0
            if scale < scale_before:
                skipped += 1  # inf/nan gradients: the optimizer did not step, so neither does the LR
            else:
                updates += 1
                global_step += 1
                scheduler.step_update()
                if on_update is not None:
                    on_update(global_step, lr)
                if ema is not None:
                    ema.update_parameters(model)
                faults.point("step", release=should_stop)  # tests: pause here until signalled
        n = y.shape[0]
        seen += n
        total_loss += loss.detach().to(sum_device, torch.float64) * n  # == loss.item() * n, in float64
        correct += (out.argmax(1) == y).sum()
        if i % 10 == 0 or i + 1 == n_batches:
            rate = seen / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(
                loss=f"{total_loss.item() / max(seen, 1):.4f}",
                acc=f"{correct.item() / max(seen, 1):.3f}",
                lr=f"{lr:.3g}",
                img_s=f"{rate:.0f}",
                refresh=False,
            )
        # Stop only where an update just completed: a half-accumulated gradient is not saved.
        if agree.stop_requested() and (i + 1) % accum_steps == 0 and i + 1 < n_batches:
            break
    seconds = time.perf_counter() - start
    bar.close()
    stats = EpochStats(
        loss=total_loss.item() / max(seen, 1),
        acc=correct.item() / max(seen, 1),
        lr=lr,
        seconds=seconds,
        images=seen,
        updates=updates,
        skipped_updates=skipped,
        nonfinite_batches=dropped,
        batches=done,
        loss_sum=total_loss.item(),
        correct=int(correct.item()),
    )
    return stats, global_step


def global_stats(stats: EpochStats) -> EpochStats:
    """The epoch over all ranks: loss and accuracy from all-reduced sums and counts (as is, alone)."""
    if not is_dist():
        return stats
    loss_sum, correct, images = all_sum([stats.loss_sum, stats.correct, stats.images])
    return dataclasses.replace(
        stats,
        loss=loss_sum / max(images, 1),
        acc=correct / max(images, 1),
        images=int(images),
        loss_sum=loss_sum,
        correct=int(correct),
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module, loader: Iterable, amp: AmpPolicy, tta: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, CPU) and labels for every sample of ``loader``, in order."""
    model.eval()
    all_logits, all_labels = [], []
    for x, y in loader:
        with amp.autocast():
            logits = model(x)
            if tta:  # average with the mirror image: helps whenever flips are label-preserving
                logits = (logits + model(x.flip(3))) / 2
        all_logits.append(logits.float().cpu())
        all_labels.append(y.cpu())
    if not all_logits:  # under torchrun a rank can hold no image of a small split
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(model: nn.Module, loader: Iterable, amp: AmpPolicy, tta: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy over ``loader``.

    The loss is plain cross-entropy (no label smoothing or class weights) so that val_loss means
    the same thing whatever the training recipe: plateau and early stopping compare like with like.
    """
    return scores(*predict_logits(model, loader, amp, tta))


def scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Plain cross-entropy and accuracy of ``logits`` (see ``evaluate``); under torchrun, of every rank's."""
    if is_dist():  # each rank holds a shard: sum losses and hits, count images, all-reduce, then divide
        local = (
            [
                nn.functional.cross_entropy(logits, labels, reduction="sum").item(),
                (logits.argmax(1) == labels).sum().item(),
                len(labels),
            ]
            if len(labels)
            else [0.0, 0.0, 0.0]
        )
        loss_sum, hits, n = all_sum(local)
        return loss_sum / n, hits / n
    loss = nn.functional.cross_entropy(logits, labels)
    return loss.item(), (logits.argmax(1) == labels).float().mean().item()
