"""Non-finite losses: fp32 stops after ``--max_nonfinite`` in a row, naming epoch and step, and keeps
the last good checkpoint; float16 AMP counts the updates the scaler skipped and reports them.

The NaNs come from a model wrapper (no test hook in the product code); float16 AMP needs CUDA, so
its counting is checked through ``train_one_epoch`` with a GradScaler stand-in.
"""

from __future__ import annotations

import pytest
import torch
from conftest import nan_on_forwards, read_csv
from torch import nn

from artifacts.checkpoint import load_checkpoint
from engine.loop import NonFiniteGuard, NonFiniteLoss, Updater, train_one_epoch
from runtime.runtime import AmpPolicy

UPDATES_PER_EPOCH = 10  # 1257 digits training images, --batch_size 128 (conftest.FAST)


def nan_on_training_forwards(monkeypatch, calls: range) -> None:
    """Make the model output NaN on the given (1-based) training-mode forward calls."""
    nan_on_forwards(monkeypatch, calls, training=True)


def test_consecutive_nonfinite_losses_stop_and_keep_last_good_checkpoint(run_train, tmp_path, monkeypatch):
    nan_on_training_forwards(monkeypatch, range(UPDATES_PER_EPOCH + 1, 10_000))  # all of epoch 2 onwards
    with pytest.raises(NonFiniteLoss, match=r"3 consecutive non-finite losses \(last at epoch 2, step 11\)"):
        run_train("--epochs", "3", "--run_name", "nan", "--max_nonfinite", "3")
    run_dir = tmp_path / "ck" / "nan"
    last = load_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == 1 and last["nonfinite_consecutive"] == 0
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert load_checkpoint(run_dir / "best.pt")["epoch"] == 1
    assert len(read_csv(run_dir / "metrics.csv")) == 1


def test_fewer_than_the_limit_are_dropped_and_reported(run_train, tmp_path, monkeypatch):
    nan_on_training_forwards(monkeypatch, range(UPDATES_PER_EPOCH + 3, UPDATES_PER_EPOCH + 5))  # 2 in epoch 2
    out = run_train("--epochs", "2", "--run_name", "two", "--max_nonfinite", "3")
    assert "2 non-finite batches dropped" in out.splitlines()[-2]  # epoch 2's summary line
    assert "non-finite" not in out.splitlines()[-3]  # epoch 1 had none
    assert load_checkpoint(tmp_path / "ck" / "two" / "last.pt")["global_step"] == 2 * UPDATES_PER_EPOCH - 2


def test_guard_counts_only_consecutive_losses():
    guard = NonFiniteGuard(limit=2)
    assert not guard.check(float("nan"), 1, 1)
    assert guard.check(0.5, 1, 2) and guard.consecutive == 0  # a finite loss resets the count
    assert not guard.check(float("inf"), 1, 3)
    with pytest.raises(NonFiniteLoss, match="epoch 4, step 9"):
        guard.check(float("nan"), 4, 9)


class SkippingScaler:
    """Stands in for a float16 GradScaler: skips the updates listed, halving the scale as torch does."""

    def __init__(self, skip: set[int]):
        self.skip, self.calls, self.scale_value = skip, 0, 1024.0

    def is_enabled(self) -> bool:
        return True

    def scale(self, loss):
        return loss

    def unscale_(self, optimizer):
        pass

    def step(self, optimizer):
        self.calls += 1
        if self.calls not in self.skip:
            optimizer.step()

    def update(self):
        if self.calls in self.skip:
            self.scale_value /= 2

    def get_scale(self) -> float:
        return self.scale_value


class CountingScheduler:
    def __init__(self):
        self.updates = 0

    def step_update(self):
        self.updates += 1


def test_amp_skipped_updates_are_counted_not_scheduled_and_reported():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(6)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler, scaler = CountingScheduler(), SkippingScaler(skip={2, 4, 5})
    amp = AmpPolicy(enabled=False, dtype=torch.float16, device_type="cpu")  # autocast off; the scaler decides
    stats, step = train_one_epoch(
        Updater(model, nn.CrossEntropyLoss(), optimizer, scheduler, scaler, amp, guard=NonFiniteGuard(1)),
        batches,
        epoch=3,
        global_step=100,
        progress=False,
    )
    assert (stats.skipped_updates, stats.updates, step, scheduler.updates) == (3, 3, 103, 3)
    assert stats.nonfinite_batches == 0  # under float16 the scaler, not the guard, handles inf/nan
    from tracking.console import epoch_line

    line = epoch_line(stats.record(3, 1.0, 0.5, improved=False), 10)
    assert line.startswith("epoch   3/10") and line.endswith("| AMP skipped 3 updates")
