"""Schedules in real training runs: the averaged model SWALR implies (kept, BN-updated, evaluated,
saved), and a composition with plateau resumed with a new --epochs (allowed: its shape does not
depend on the length)."""

from __future__ import annotations

import pytest
import torch

from artifacts.checkpoint import load_checkpoint
from artifacts.model_io import inference_weights
from common.errors import UsageError


def test_swa_averages_epoch_end_weights_and_predicts_with_them(run_train, tmp_path):
    run_train(
        "--epochs", "2", "--scheduler", "SWALR", "--scheduler_swa_start", "0", "--save_every", "1", "--run_name", "swa"
    )
    run = tmp_path / "ck" / "swa"
    e1, last = load_checkpoint(run / "epoch_001.pt"), load_checkpoint(run / "last.pt")
    assert int(e1["ema"]["n_averaged"]) == 1 and int(last["ema"]["n_averaged"]) == 2
    avg = inference_weights(last)
    for key, w in last["model"].items():
        if w.is_floating_point() and "running" not in key:  # parameters: the mean of epochs 1 and 2
            assert torch.allclose(avg[key], (e1["model"][key] + w) / 2, atol=1e-6), key
    bn = [k for k in avg if k.endswith("running_mean")]
    assert bn and not torch.equal(avg[bn[0]], last["model"][bn[0]])  # BN statistics recomputed (update_bn)
    # SWALR: the base LR for the first averaged epoch, then annealing towards swa_lr (half the LR).
    lrs = [row["lr"] for row in last["history"]]
    assert lrs[0] == pytest.approx(0.003) and 0.0015 < lrs[1] < lrs[0]


def test_before_the_first_averaged_epoch_the_trained_weights_are_used():
    model = {"w": torch.ones(2)}
    ckpt = {"model": model, "ema": {"n_averaged": torch.tensor(0), "module.w": torch.zeros(2)}}
    assert inference_weights(ckpt) is model
    ckpt["ema"]["n_averaged"] = torch.tensor(3)
    assert torch.equal(inference_weights(ckpt)["w"], torch.zeros(2))


def test_swa_and_ema_together_are_refused(run_train):
    with pytest.raises(UsageError, match="both average the weights"):
        run_train("--epochs", "2", "--scheduler", "swa", "--ema", "0.99")


def test_horizon_free_composition_resumes_with_more_epochs(run_train, tmp_path):
    sched = [
        "--scheduler",
        "SequentialLR",
        "--scheduler_milestones",
        "[1]",
        "--scheduler_schedulers",
        "[{name: step, step_size: 1, gamma: 0.5}, {name: plateau, patience: 0}]",
    ]
    run_train("--epochs", "1", *sched, "--run_name", "h")
    run_train("--resume", str(tmp_path / "ck" / "h" / "last.pt"), "--epochs", "2")
    last = load_checkpoint(tmp_path / "ck" / "h" / "last.pt")
    assert [row["epoch"] for row in last["history"]] == [1, 2] and last["scheduler"]["inner"]["phase"] == 1
    assert last["history"][1]["lr"] == pytest.approx(0.003)  # the plateau phase starts from the base LR
