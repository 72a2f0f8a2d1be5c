"""Train on the bundled digits end to end: outputs, exact resume, early stopping, errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from catalogue_util import snapshot
from conftest import read_csv

from artifacts.checkpoint import load_checkpoint
from common.errors import UsageError

CHECKPOINT_KEYS = {
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "early_stopping",
    "epoch",
    "global_step",
    "best_metric",
    "rng",
    "config",
    "class_names",
    "preprocessing",
    "version",
}


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "scheduler", [pytest.param("plateau", marks=pytest.mark.slow), "cosine"]
)  # cosine in the quick tier
def test_resume_from_epoch_2_is_bit_identical(run_train, tmp_path, scheduler):
    common = ["--epochs", "4", "--scheduler", scheduler, "--warmup_epochs", "1", "--save_every", "1", "--seed", "3"]
    run_train(*common, "--run_name", "full")
    full = tmp_path / "ck" / "full"
    assert {
        "last.pt",
        "best.pt",
        "epoch_001.pt",
        "epoch_004.pt",
        "metrics.csv",
        "curves.png",
        "config.yaml",
        "summary.json",
    } <= {p.name for p in full.iterdir()}
    ck = load_checkpoint(full / "last.pt")
    assert CHECKPOINT_KEYS <= set(ck)
    assert set(ck["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert ck["preprocessing"]["input_size"] == [8, 8] and ck["preprocessing"]["channels"] == 1
    assert ck["class_names"] == [str(i) for i in range(10)]

    # Continue epoch_002.pt into a new folder; the original run is left untouched.
    before = {p.name: p.stat().st_mtime_ns for p in full.iterdir()}
    out = run_train("--resume", str(full / "epoch_002.pt"), "--run_name", "resumed")
    assert "resuming" in out
    assert {p.name: p.stat().st_mtime_ns for p in full.iterdir()} == before
    resumed = tmp_path / "ck" / "resumed"
    assert_same_weights(load_checkpoint(full / "last.pt")["model"], load_checkpoint(resumed / "last.pt")["model"])
    full_rows, resumed_rows = read_csv(full / "metrics.csv"), read_csv(resumed / "metrics.csv")
    assert list(full_rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    assert without_seconds(resumed_rows) == without_seconds(full_rows)  # wall time is the only difference


@pytest.mark.slow  # three runs
def test_resume_in_own_folder_and_resume_auto(run_train, tmp_path):
    run_train("--epochs", "3", "--run_name", "r", "--save_every", "1")
    run_dir = tmp_path / "ck" / "r"
    reference = load_checkpoint(run_dir / "last.pt")["model"]
    before = snapshot(run_dir)
    # An earlier epoch into its own folder would replace epochs 2-3 (and could leave best.pt of the old
    # epoch 3 beside a new last.pt): refused, the run untouched; a branch (--run_name) is the way.
    with pytest.raises(UsageError, match="already holds epochs up to 3"):
        run_train("--resume", str(run_dir / "epoch_001.pt"))
    assert snapshot(run_dir) == before
    out = run_train("--resume", str(run_dir / "epoch_003.pt"))  # the run's newest epoch: continues in place
    assert f"into {run_dir}" in out
    assert_same_weights(reference, load_checkpoint(run_dir / "last.pt")["model"])
    assert len(read_csv(run_dir / "metrics.csv")) == 3
    out = run_train("--run_name", "r", "--resume", "auto")  # finished run: nothing left to do
    assert "resuming" in out and "epoch   " not in out


def test_resume_auto_without_checkpoint_starts_fresh(run_train, tmp_path):
    (tmp_path / "ck" / "fresh").mkdir(parents=True)  # left by a run killed before its first checkpoint
    out = run_train("--epochs", "1", "--run_name", "fresh", "--resume", "auto")
    assert "starting the run fresh" in out
    assert (tmp_path / "ck" / "fresh" / "last.pt").is_file()


def test_existing_default_run_is_never_overwritten(run_train, tmp_path):
    run_train("--epochs", "1")
    run_train("--epochs", "1")
    assert {p.name for p in (tmp_path / "ck").iterdir() if p.is_dir()} == {"custom_digits", "custom_digits_2"}


def test_resume_with_other_model_or_classes_is_refused(run_train, tmp_path):
    run_train("--epochs", "1", "--run_name", "m")
    with pytest.raises(UsageError, match="trained with model='custom'"):
        run_train("--resume", str(tmp_path / "ck" / "m" / "last.pt"), "--model", "efficientnet_b0")
    with pytest.raises(UsageError, match="bend its curve"):
        run_train("--resume", str(tmp_path / "ck" / "m" / "last.pt"), "--epochs", "5")


def test_early_stopping_says_why_and_keeps_best(run_train, tmp_path):
    # lr so small nothing improves by min_delta: stops after `patience` counted epochs (warmup excluded).
    out = run_train(
        "--epochs",
        "12",
        "--lr",
        "1e-6",
        "--early_stopping",
        "2",
        "--min_delta",
        "0.5",
        "--warmup_epochs",
        "1",
        "--scheduler",
        "plateau",
        "--run_name",
        "es",
    )
    run_dir = tmp_path / "ck" / "es"
    assert "early stopping: val_loss has not improved by more than 0.5 for 2 epochs" in out
    rows = read_csv(run_dir / "metrics.csv")
    assert len(rows) == 3  # epoch 1 (warmup, sets best), epochs 2 and 3 use up patience
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_early"] and summary["best_epoch"] == 1
    best = load_checkpoint(run_dir / "best.pt")
    assert best["epoch"] == 1 and best["early_stopping"]["bad_epochs"] == 0


@pytest.mark.slow
def test_default_run_reaches_97_percent(run_train, tmp_path):
    """The documented default: `python train.py` -> >= 97 % test accuracy on digits."""
    import train as train_script

    train_script.main(["--checkpoint_dir", str(tmp_path / "default"), "--run_name", "d"])
    summary = json.loads((tmp_path / "default" / "d" / "summary.json").read_text())
    assert summary["test_acc"] >= 0.97


def test_ema_decay_warms_up_and_tracks_integer_buffers():
    from engine.ema import make_ema

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = make_ema(model, decay=0.99)
    ema.update_parameters(model)  # first update copies
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()(torch.randn(4, 2))  # bumps num_batches_tracked (an int64 buffer)
    ema.update_parameters(model)
    d = 2 / 11  # min(0.99, (1 + 1) / (10 + 1)): early updates average over few steps
    assert torch.allclose(ema.module[0].weight, before * d + model[0].weight * (1 - d))
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked


def test_keep_last_and_best_shared_with_last(run_train, tmp_path):
    """--keep_last 2 leaves the two newest epoch files; a best epoch's files are one file on disk."""
    run_train("--epochs", "4", "--save_every", "1", "--keep_last", "2", "--run_name", "k")
    run_dir = tmp_path / "ck" / "k"
    assert sorted(p.name for p in run_dir.glob("epoch_*.pt")) == ["epoch_003.pt", "epoch_004.pt"]
    assert os.path.samefile(run_dir / "epoch_004.pt", run_dir / "last.pt")
    best_epoch = load_checkpoint(run_dir / "best.pt")["epoch"]
    assert os.path.samefile(run_dir / "best.pt", run_dir / "last.pt") == (best_epoch == 4)


def test_curves_png_is_redrawn_at_most_every_interval_and_always_at_the_end(run_train, tmp_path, monkeypatch):
    import tracking.history as history

    drawn = []
    real = history.plot_curves
    monkeypatch.setattr(history, "plot_curves", lambda rows, path: (drawn.append(len(rows)), real(rows, path)))
    monkeypatch.setattr(history.CurvesWriter, "interval_s", 1e9)  # every epoch inside one interval, however slow
    run_train("--epochs", "5", "--run_name", "quick")
    assert drawn == [5]  # every epoch inside one interval from the start: drawn once, when training ends
    assert (tmp_path / "ck" / "quick" / "curves.png").stat().st_size > 0
    drawn.clear()
    monkeypatch.setattr(history.CurvesWriter, "interval_s", 0.0)
    run_train("--epochs", "3", "--run_name", "every")
    assert drawn == [1, 2, 3]  # slow epochs (interval passed): every epoch is drawn


def test_curves_left_by_an_error_show_every_finished_epoch_and_the_error_stays(tmp_path, monkeypatch):
    import tracking.history as history
    from tracking.history import CurvesWriter

    drawn = []
    monkeypatch.setattr(history, "plot_curves", lambda rows, path: drawn.append(len(rows)))
    with pytest.raises(KeyboardInterrupt):
        with CurvesWriter(tmp_path / "c.png") as curves:
            for n in (1, 2, 3):
                curves.update([{}] * n)
            raise KeyboardInterrupt
    assert drawn == [3]  # all within the interval from the start: drawn once, on the way out

    def broken(rows, path):
        raise OSError("No space left on device")

    with pytest.raises(RuntimeError, match="the real failure"):  # not masked by the drawing's own error
        with CurvesWriter(tmp_path / "c.png") as curves:
            monkeypatch.setattr(history, "plot_curves", broken)
            curves.update([{}, {}])  # within the interval: left for the exit, where drawing fails
            raise RuntimeError("the real failure")
    assert drawn == [3]
