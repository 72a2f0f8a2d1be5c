"""Bad-input catalogue: every mistake a user makes ends in one line that names it and its fix.

Each case runs the real command (``python train.py ...``) as a subprocess and asserts: the exit
status (2: fix the command line or config, 1: fix a file or the machine), stderr is exactly one
line starting ``error:``, no traceback (only with ``--debug``), and every file of an earlier
finished run -- aimed at by the failing command wherever that makes sense -- unchanged in bytes and
modification time.

Value mistakes are refused before torch is imported (a fraction of a second); names need the
registries and checkpoints need torch, so those cases cost one interpreter start each.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml

from conftest import FAST, cli
from engine.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A finished earlier run, ``<root>/earlier``; the failing commands use ``--checkpoint_dir <root>``."""
    import train as train_script
    root = tmp_path_factory.mktemp("runs")
    train_script.main(["--checkpoint_dir", str(root), *FAST, "--epochs", "1", "--run_name", "earlier"])
    return root / "earlier"


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def refused(earlier):
    """Run train.py (or another script) and check the one-line refusal; returns the error line."""
    before = snapshot(earlier)

    def run(*args, code: int = 2, script: str = "train.py", faults: str = "", contains: tuple = ()) -> str:
        done = cli(script, "--checkpoint_dir", earlier.parent, *args, faults=faults) if script == "train.py" \
            else cli(script, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        for fragment in contains:
            assert fragment in lines[0]
        assert snapshot(earlier) == before  # the earlier run is untouched
        return lines[0]
    return run


def write_yaml(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- the config itself ------------------------------------------------------------------------
def test_unknown_config_key(refused, tmp_path):
    refused("--config", write_yaml(tmp_path, {"batchsize": 32}),
            contains=("unknown config key 'batchsize'", "did you mean 'batch_size'"))


def test_unknown_flag(refused):
    refused("--learning_rate", "0.1", contains=("unrecognized argument '--learning_rate'",))


def test_wrong_type_in_config_file(refused, tmp_path):
    refused("--config", write_yaml(tmp_path, {"lr": "fast"}), contains=("'lr' must be float", "'fast'"))


def test_wrong_type_on_command_line(refused):
    refused("--epochs", "three", contains=("--epochs", "invalid int value: 'three'"))


@pytest.mark.parametrize("args, fragment", [
    (["--lr", "0"], "--lr must be > 0 (got 0.0)"),
    (["--lr", "-0.1"], "--lr must be > 0 (got -0.1)"),
    (["--early_stopping", "-1"], "--early_stopping PATIENCE must be >= 0 (got -1); 0 disables it"),
    (["--warmup_epochs", "5", "--epochs", "4"], "--warmup_epochs 5 must be shorter than training (--epochs 4)"),
    (["--batch_size", "0"], "--batch_size must be >= 1 (got 0)"),
], ids=["lr_zero", "lr_negative", "negative_patience", "warmup_longer_than_training", "batch_size_zero"])
def test_invalid_value_fails_before_torch_loads(refused, args, fragment):
    refused("--run_name", "earlier", "--resume", "auto", *args, contains=(fragment,))


def test_negative_scheduler_patience(refused):
    refused("--scheduler", "plateau", "--scheduler_patience", "-2",
            contains=("'patience' = -2 is out of range [0",))


def test_unsorted_milestones(refused):
    refused("--scheduler", "multistep", "--scheduler_milestones", "[5,2]",
            contains=("'milestones' must be strictly increasing", "[2, 5]"))


def test_warmup_steps_longer_than_training(refused):
    refused("--epochs", "1", "--warmup_steps", "1000", contains=("warmup of 1000 updates is not shorter",))


@pytest.mark.parametrize("flag, name, fragment", [
    ("--model", "resnet_9000", "unknown model 'resnet_9000'"),
    ("--scheduler", "cosin", "unknown scheduler 'cosin'. Did you mean 'cosine'?"),
    ("--dataset", "imagenet-1k", "unknown dataset 'imagenet-1k'"),
])
def test_unknown_name_lists_the_valid_ones(refused, flag, name, fragment):
    assert "Valid: " in refused(flag, name, contains=(fragment,))


# --- data ---------------------------------------------------------------------------------------
def test_missing_data_folder(refused, tmp_path):
    refused("--dataset", "folder", "--data_dir", tmp_path / "nonexistent",
            contains=("is not an existing folder", "point --data_dir at it"))


def test_empty_data_folder(refused, tmp_path):
    (tmp_path / "empty").mkdir()
    refused("--dataset", "folder", "--data_dir", tmp_path / "empty", code=1, contains=("no readable images",))


# --- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_of_another_model(refused, earlier):
    refused("--resume", earlier / "last.pt", "--run_name", "other", "--model", "efficientnet_b0",
            contains=("trained with model='custom'", "Start a new run without --resume"))


def test_checkpoint_with_another_class_count(refused, earlier, tmp_path):
    ckpt = load_checkpoint(earlier / "last.pt")
    ckpt["class_names"] = ["cat", "dog", "bird"]
    torch.save(ckpt, tmp_path / "three_classes.pt")
    refused("--resume", tmp_path / "three_classes.pt", "--run_name", "other",
            contains=("has 3 classes but dataset 'digits' has 10", "start a new run without --resume"))


def test_truncated_checkpoint(refused, earlier, tmp_path):
    (tmp_path / "cut.pt").write_bytes((earlier / "last.pt").read_bytes()[:5000])
    refused("--resume", tmp_path / "cut.pt", code=1, contains=("corrupt or truncated", "use another checkpoint"))


def test_missing_checkpoint(refused, tmp_path):
    refused("--resume", tmp_path / "nope.pt", contains=("checkpoint not found", "check the path"))


class RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_checkpoint_that_would_run_code_is_refused(refused, earlier, tmp_path, script):
    ckpt = load_checkpoint(earlier / "last.pt")
    marker = tmp_path / "code_ran"
    torch.save({**ckpt, "payload": RunsCode(str(marker))}, tmp_path / "evil.pt")
    flag = "--resume" if script == "train.py" else "--checkpoint"
    refused(flag, tmp_path / "evil.pt", code=1, script=script, contains=("could run code", "checkpoints you trust"))
    assert not marker.exists()


def test_every_torch_load_is_weights_only():
    root = Path(__file__).resolve().parents[1]
    files = [p for p in root.rglob("*.py") if ".venv" not in p.parts and p.name != Path(__file__).name]
    calls = [(p, line) for p in files for line in p.read_text().splitlines() if "torch.load(" in line]
    assert calls, "expected to find the checkpoint loader"
    assert [c for c in calls if "weights_only=True" not in c[1]] == []


# --- the disk -------------------------------------------------------------------------------------
def test_unwritable_checkpoint_folder(refused, earlier):
    # A path below a regular file cannot be created even by root (chmod would not stop root).
    refused("--checkpoint_dir", earlier / "config.yaml" / "sub", "--epochs", "1",
            contains=("cannot write the run folder", "choose a writable --checkpoint_dir"))


def test_full_disk_while_saving_keeps_previous_last_pt(refused, earlier):
    run_dir = earlier.parent / "full"
    refused("--run_name", "full", "--epochs", "2", faults="write:last.pt#2=enospc", code=1,
            contains=("could not write", "No space left on device", "previous file is intact", "--resume auto"))
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert not list(run_dir.glob(".*.tmp-*"))


def test_debug_shows_the_traceback(earlier):
    done = cli("train.py", "--lr", "0", "--debug")
    assert "Traceback" in done.stderr and "UsageError: --lr must be > 0" in done.stderr
