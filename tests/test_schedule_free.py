"""Schedule-free optimizers (``--scheduler schedule_free``): evaluation at the average, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import read_csv

from artifacts.checkpoint import load_checkpoint
from common.errors import UsageError
from models.optim import build_optimizer, is_schedule_free, optimizer_name
from settings.config import Config
from settings.validate import check_config

COMMON = ["--scheduler", "schedule_free", "--warmup_steps", "5", "--epochs", "2", "--save_every", "1", "--seed", "4"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_schedule_free_resume_is_bit_identical_and_evaluation_reads_the_average(run_train, tmp_path, capsys):
    run_train(*COMMON, "--run_name", "full")
    full = tmp_path / "ck" / "full"
    last = load_checkpoint(full / "last.pt")
    # Saved in eval mode: ``model`` is the average x; nothing of y is needed at an epoch end.
    assert last["optimizer"]["param_groups"][0]["train_mode"] is False and last["train_weights"] is None
    assert "z" in next(iter(last["optimizer"]["state"].values()))  # it really ran schedule-free
    run_train("--resume", str(full / "epoch_001.pt"), "--run_name", "resumed")
    resumed = tmp_path / "ck" / "resumed"
    assert same(last["model"], load_checkpoint(resumed / "last.pt")["model"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(full / "metrics.csv")) == strip(read_csv(resumed / "metrics.csv"))
    # evaluate.py scores best.pt as the run did: the checkpoint's weights are the average x
    summary = json.loads((full / "summary.json").read_text())
    import evaluate

    evaluate.main(["--checkpoint", str(full / "best.pt"), "--device", "cpu"])
    assert f"accuracy        {summary['test_acc']:.4f}" in capsys.readouterr().out


def test_mid_epoch_checkpoint_saves_x_as_model_and_y_beside_it(tmp_path):
    """An interrupt inside an epoch: ``model`` is x (what evaluate.py reads), ``train_weights`` y; restoring
    gives back y itself, not y recomputed from x (which would differ in the last bits)."""
    from engine.setup import restore, train_weights_at_eval_point

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = build_optimizer("adamw_schedulefree", model, 0.1, 0.0, 0.9)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        opt.step()
    y = {k: v.clone() for k, v in model.state_dict().items()}

    class C:  # the few Components fields restore() and the helper touch
        pass

    c = C()
    c.model, c.optimizer = model, opt
    saved_y = train_weights_at_eval_point(c)
    x = {k: v.clone() for k, v in model.state_dict().items()}
    assert same(saved_y, y) and not same(x, y)
    assert opt.param_groups[0]["train_mode"] is False

    model2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model2.load_state_dict(x)
    opt2 = build_optimizer("adamw_schedulefree", model2, 0.1, 0.0, 0.9)
    opt2.load_state_dict(opt.state_dict())
    opt2.train()
    model2.load_state_dict(saved_y)  # what restore() does with ckpt["train_weights"]
    assert same(model2.state_dict(), y) and opt2.param_groups[0]["train_mode"] is True
    assert callable(restore)


def test_schedule_free_name_implies_the_optimizer_and_bad_pairings_are_refused():
    assert optimizer_name("adamw", "schedule_free") == "adamw_schedulefree"
    assert optimizer_name("sgd", "schedule_free") == "sgd_schedulefree"
    assert optimizer_name("adamw", "cosine") == "adamw"
    assert is_schedule_free(build_optimizer("sgd_schedulefree", torch.nn.Linear(2, 2), 0.1, 0.0, 0.9))
    assert not is_schedule_free(build_optimizer("adamw", torch.nn.Linear(2, 2), 0.1, 0.0, 0.9))
    check_config(Config(scheduler="schedule_free", optimizer="adamw_schedulefree"))
    for cfg, words in [
        (Config(optimizer="adamw_schedulefree", scheduler="cosine"), "use --scheduler schedule_free"),
        (Config(optimizer="adam", scheduler="schedule_free"), "needs --optimizer adamw or sgd"),
        (Config(scheduler="schedule_free", ema=0.99), "both average the weights"),
    ]:
        with pytest.raises(UsageError, match=words):
            check_config(cfg)


def test_seed_k_of_every_schedule_starts_from_the_same_weights_and_data_order(run_train, tmp_path, monkeypatch):
    """What makes a sweep's seeds pairable: the schedule (schedule-free included, whose BatchNorm
    re-estimation draws dropout noise at every epoch end) changes neither the initial weights nor
    the order and augmentation of the batches."""
    import data.loader
    from resultsdb.db import ResultsDB

    orders: dict[str, list] = {}
    real = data.loader.epoch_order
    current = {"name": ""}

    def spy(n, gen, shuffle, weights):
        order = real(n, gen, shuffle, weights)
        if shuffle:  # the training loader's (its augmentation draws continue from the same generator)
            orders.setdefault(current["name"], []).append(order.tolist())
        return order

    monkeypatch.setattr(data.loader, "epoch_order", spy)
    for name in ("step", "schedule_free"):
        current["name"] = name
        run_train("--epochs", "2", "--scheduler", name, "--seed", "3", "--run_name", name)
    assert orders["step"] == orders["schedule_free"] and len(orders["step"]) == 2
    with ResultsDB(tmp_path / "ck" / "results.db") as db:
        hashes = {r["init_weights"] for r in db.query("SELECT init_weights FROM runs")}
    assert len(hashes) == 1


@pytest.mark.slow  # three train.py processes (~20 s on an idle 2-core machine)
@pytest.mark.skipif(__import__("sys").platform == "win32", reason="POSIX signals")
def test_sigint_inside_an_epoch_resumes_schedule_free_to_the_last_bit(tmp_path):
    """Ctrl-C at update 30 (the middle of epoch 2): last.pt holds x as its model and y beside it; the
    printed resume command finishes the run with the weights and metrics of an uninterrupted one."""
    import shlex
    import signal

    from conftest import Started, cli, cli_env, signal_when_held

    args = [
        "--scheduler",
        "schedule_free",
        "--warmup_steps",
        "5",
        "--epochs",
        "3",
        "--seed",
        "2",
        "--width",
        "8",
        "--depth",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--amp",
        "off",
        "--channels_last",
        "off",
    ]
    ref = cli("train.py", *args, "--checkpoint_dir", tmp_path / "ref", "--run_name", "r", timeout=300)
    assert ref.returncode == 0, ref.stderr
    marker = tmp_path / "held"
    proc = Started(
        "train.py", *args, "--checkpoint_dir", tmp_path / "ck", "--run_name", "r", env=cli_env(f"step#30=hold:{marker}")
    )
    done = signal_when_held(proc, marker, signal.SIGINT, timeout=300)
    assert done.returncode == 130, done.stderr
    saved = load_checkpoint(tmp_path / "ck" / "r" / "last.pt")
    assert saved["partial_epoch"]["batches"] == 10 and saved["train_weights"] is not None
    assert not same(saved["model"], saved["train_weights"])  # x saved as the model, y beside it
    command = shlex.split(done.stderr.strip().splitlines()[-1].split("Resume with: ", 1)[1])[2:]
    resumed = cli("train.py", *command, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("last.pt", "best.pt"):
        assert same(
            load_checkpoint(tmp_path / "ref" / "r" / name)["model"],
            load_checkpoint(tmp_path / "ck" / "r" / name)["model"],
        ), name
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(tmp_path / "ck" / "r" / "metrics.csv")) == strip(
        read_csv(tmp_path / "ref" / "r" / "metrics.csv")
    )
