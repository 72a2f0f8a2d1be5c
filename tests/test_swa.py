"""SWALR in training: the averaged model it implies is kept, BN-updated, evaluated and saved."""
from __future__ import annotations

import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.errors import UsageError
from engine.trainer import inference_weights


def test_swa_averages_epoch_end_weights_and_predicts_with_them(run_train, tmp_path):
    run_train("--epochs", "3", "--scheduler", "SWALR", "--scheduler_swa_start", "1", "--save_every", "1",
              "--run_name", "swa")
    run = tmp_path / "ck" / "swa"
    e1, e2, last = (load_checkpoint(run / name) for name in ("epoch_001.pt", "epoch_002.pt", "last.pt"))
    assert int(e1["ema"]["n_averaged"]) == 0 and int(last["ema"]["n_averaged"]) == 2  # epochs 2 and 3
    # Before averaging starts the trained weights are the result; afterwards the average is.
    assert inference_weights(e1) is e1["model"]
    avg = inference_weights(last)
    for key, w in last["model"].items():
        if w.is_floating_point() and "running" not in key:  # parameters: the mean of epochs 2 and 3
            assert torch.allclose(avg[key], (e2["model"][key] + w) / 2, atol=1e-6), key
    bn = [k for k in avg if k.endswith("running_mean")]
    assert bn and not torch.equal(avg[bn[0]], last["model"][bn[0]])  # BN statistics recomputed (update_bn)
    # SWALR: base LR for the first epoch, then anneals towards swa_lr (half the LR) from epoch 2 on.
    lrs = [row["lr"] for row in last["history"]]
    assert lrs[0] == lrs[1] == pytest.approx(0.003) and lrs[2] < lrs[1]


def test_swa_and_ema_together_are_refused(run_train):
    with pytest.raises(UsageError, match="both average the weights"):
        run_train("--epochs", "2", "--scheduler", "swa", "--ema", "0.99")
