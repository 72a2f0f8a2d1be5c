"""--tensorboard: the event files hold every scalar once per step, also across a resume."""

from __future__ import annotations

import shutil

import pytest
from conftest import FAST


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()  # applies the purge a resumed writer asks for, as TensorBoard's UI does
    return acc


def test_events_per_epoch_and_update_and_a_clean_resume(tmp_path, capsys):
    import train as train_script

    args = ["--checkpoint_dir", str(tmp_path), "--run_name", "r", *FAST, "--threads", "1"]
    train_script.main([*args, "--epochs", "3", "--tensorboard", "--save_every", "1"])
    run = tmp_path / "r"
    first = scalars(run / "tb")
    updates = len(first.Scalars("lr/update"))
    per_epoch = updates // 3
    assert updates == 3 * per_epoch and per_epoch >= 2
    # A crash after epoch 3 began (last.pt still at epoch 2, no summary): --resume auto redoes epoch 3.
    shutil.copy(run / "epoch_002.pt", run / "last.pt")
    (run / "summary.json").unlink()
    train_script.main(["--checkpoint_dir", str(tmp_path), "--run_name", "r", "--resume", "auto", "--threads", "1"])
    acc = scalars(run / "tb")
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2  # the resumed run appended a file
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "epoch"):
        steps = [e.step for e in acc.Scalars(tag)]
        assert steps == [per_epoch, 2 * per_epoch, 3 * per_epoch], tag
    assert [e.value for e in acc.Scalars("epoch")] == [1, 2, 3]
    lr_steps = [e.step for e in acc.Scalars("lr/update")]
    assert lr_steps == list(range(1, updates + 1))  # every update once, none twice
    history = [float(v) for v in (run / "metrics.csv").read_text().splitlines()[3].split(",")[4:6]]
    assert acc.Scalars("val/loss")[2].value == pytest.approx(history[0], rel=1e-4)
    assert [e.step for e in acc.Images("confusion_matrix")] == [3 * per_epoch]
    assert acc.Scalars("hparam/test_acc")[0].value > 0
    hp = acc.summary_metadata["_hparams_/session_start_info"].plugin_data.content
    assert b"custom" in hp and b"batch_size" in hp


def test_tensorboard_is_off_by_default_and_a_yaml_key(tmp_path):
    from settings import config as config_mod

    (tmp_path / "c.yaml").write_text("tensorboard: true\n")
    cfg, _ = config_mod.parse_args(["--config", str(tmp_path / "c.yaml")])
    assert cfg.tensorboard is True and config_mod.Config().tensorboard is False
