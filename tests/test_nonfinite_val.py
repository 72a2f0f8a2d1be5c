"""A non-finite validation metric is never "best": shown in the epoch line, counted by early stopping
as no improvement, and a run whose every epoch was non-finite ends with a clear error, not a missing
best.pt. NaNs come from a forward hook on evaluation-mode calls (the validation passes)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import nan_on_forwards

from artifacts.checkpoint import load_checkpoint
from common.errors import AppError
from engine.early_stopping import EarlyStopping


def nan_on_eval_forwards(monkeypatch, calls) -> None:
    """Make the trained model output NaN on the given (1-based) evaluation-mode forward calls
    (the model rebuilt from best.pt for the final test stays clean)."""
    nan_on_forwards(monkeypatch, calls, training=False, first_model_only=True)


@pytest.mark.parametrize("mode,bad", [("min", math.nan), ("min", -math.inf), ("max", math.nan), ("max", math.inf)])
def test_non_finite_is_never_best_and_uses_patience(mode, bad):
    stopper = EarlyStopping(patience=2, mode=mode)
    assert stopper.update(0.5, 1)
    assert not stopper.update(bad, 2) and stopper.best == 0.5 and stopper.bad_epochs == 1
    assert not stopper.update(bad, 3, counts=False) and stopper.should_stop  # even inside warmup


def test_nan_validation_epoch_is_shown_and_stops_early(run_train, tmp_path, monkeypatch):
    nan_on_eval_forwards(monkeypatch, {2})  # digits val (180 images) is one batch: call 2 = epoch 2
    out = run_train("--epochs", "3", "--run_name", "nanval", "--early_stopping", "1")
    epoch2 = next(line for line in out.splitlines() if line.startswith("epoch   2/3"))
    assert "val loss nan" in epoch2 and "non-finite validation: not a best" in epoch2 and " *" not in epoch2
    assert "early stopping: val_loss has not improved" in out
    summary = json.loads((tmp_path / "ck" / "nanval" / "summary.json").read_text())
    assert summary["best_epoch"] == 1 and math.isfinite(summary["test_loss"])
    assert math.isfinite(load_checkpoint(tmp_path / "ck" / "nanval" / "best.pt")["best_metric"])


def test_every_epoch_non_finite_ends_with_a_clear_error(run_train, tmp_path, monkeypatch):
    nan_on_eval_forwards(monkeypatch, range(1, 100))
    with pytest.raises(AppError, match="val_loss was non-finite in every epoch.*no best.pt.*last.pt"):
        run_train("--epochs", "2", "--run_name", "allnan")
    assert load_checkpoint(tmp_path / "ck" / "allnan" / "last.pt")["epoch"] == 2
