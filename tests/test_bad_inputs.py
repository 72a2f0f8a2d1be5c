"""Bad-input catalogue: every mistake a user makes ends in one line that names it and its fix.

Each case runs the real command (``python train.py ...``) as a subprocess; its test asserts the exit
status (2: fix the command line or config, 1: fix a file or the machine), that stderr is exactly one
line starting ``error:`` holding the expected words, that no traceback is shown (only with
``--debug``), and that every file of an earlier finished run -- which the failing commands aim at
through ``--checkpoint_dir`` and, where it makes sense, ``--run_name``/``--resume`` -- is unchanged
in bytes and modification time.

Value mistakes are refused before torch is imported (~0.1 s); names, data and checkpoints need
torch (several seconds per interpreter), so the whole catalogue runs once, two commands at a time,
in a module fixture, and each test reads its own case's outcome.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FAST, cli, copy_run

from artifacts.checkpoint import load_checkpoint


@dataclass
class Case:
    args: list  # after `python <script>`; train.py also gets --checkpoint_dir <the earlier run's root>
    code: int
    says: tuple  # fragments of the one error line
    script: str = "train.py"
    faults: str = ""  # common/faults.py hooks, e.g. a full disk


class RunsCode:
    """Unpickling this would run a shell command: what a malicious checkpoint carries."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def make_files(earlier: Path, tmp: Path) -> None:
    """The files the cases below point at; ``earlier`` is the finished run."""
    (tmp / "unknown_key.yaml").write_text(yaml.safe_dump({"batchsize": 32}))
    (tmp / "wrong_type.yaml").write_text(yaml.safe_dump({"lr": "fast"}))
    (tmp / "empty").mkdir()
    ckpt = load_checkpoint(earlier / "last.pt")
    torch.save({**ckpt, "class_names": ["cat", "dog", "bird"]}, tmp / "three_classes.pt")
    (tmp / "cut.pt").write_bytes((earlier / "last.pt").read_bytes()[:5000])
    torch.save({**ckpt, "payload": RunsCode(str(tmp / "code_ran"))}, tmp / "evil.pt")


def catalogue(earlier: Path, tmp: Path) -> dict[str, Case]:
    """Every case by name (no file is touched here, so pytest can list the names at collection)."""
    again = ["--run_name", "earlier", "--resume", "auto"]  # aimed at the earlier run itself
    trusted = ("could run code", "checkpoints you trust")
    return {
        "unknown_config_key": Case(
            ["--config", tmp / "unknown_key.yaml"], 2, ("unknown config key 'batchsize'", "did you mean 'batch_size'")
        ),
        "unknown_flag": Case(
            ["--learning_rate", "0.1"], 2, ("unrecognized argument '--learning_rate' (did you mean '--lr'?)",)
        ),
        "wrong_type_in_config_file": Case(["--config", tmp / "wrong_type.yaml"], 2, ("'lr' must be float", "'fast'")),
        "wrong_type_on_command_line": Case(["--epochs", "three"], 2, ("--epochs", "invalid int value: 'three'")),
        "lr_zero": Case([*again, "--lr", "0"], 2, ("--lr must be > 0 (got 0.0)",)),
        "lr_negative": Case([*again, "--lr", "-0.1"], 2, ("--lr must be > 0 (got -0.1)",)),
        "negative_patience": Case([*again, "--early_stopping", "-1"], 2, ("PATIENCE must be >= 0 (got -1)",)),
        "negative_scheduler_patience": Case(
            ["--scheduler", "plateau", "--scheduler_patience", "-2"], 2, ("'patience' = -2 is out of range [0",)
        ),
        "unsorted_milestones": Case(
            ["--scheduler", "multistep", "--scheduler_milestones", "[5,2]"],
            2,
            ("'milestones' must be strictly increasing", "[2, 5]"),
        ),
        "warmup_epochs_longer_than_training": Case(
            [*again, "--warmup_epochs", "5", "--epochs", "4"], 2, ("--warmup_epochs 5 must be shorter than training",)
        ),
        "warmup_steps_longer_than_training": Case(
            [*FAST, "--epochs", "1", "--warmup_steps", "1000"],
            2,
            ("warmup of 1000 updates is not shorter than training",),
        ),
        "batch_size_zero": Case([*again, "--batch_size", "0"], 2, ("--batch_size must be >= 1 (got 0)",)),
        "unknown_model": Case(["--model", "resnet_9000"], 2, ("unknown model 'resnet_9000'", "Valid: custom")),
        "unknown_scheduler": Case(["--scheduler", "cosin"], 2, ("unknown scheduler 'cosin'", "did you mean 'cosine'")),
        "unknown_dataset": Case(["--dataset", "imagenet-1k"], 2, ("unknown dataset 'imagenet-1k'", "Valid: ")),
        "missing_data_folder": Case(
            ["--dataset", "folder", "--data_dir", tmp / "nonexistent"],
            2,
            ("is not an existing folder", "point --data_dir at it"),
        ),
        "empty_data_folder": Case(["--dataset", "folder", "--data_dir", tmp / "empty"], 1, ("no readable images",)),
        "checkpoint_of_another_model": Case(
            ["--resume", earlier / "last.pt", "--run_name", "other", "--model", "efficientnet_b0"],
            2,
            ("trained with model='custom'", "Start a new run without --resume"),
        ),
        "checkpoint_of_another_class_count": Case(
            ["--resume", tmp / "three_classes.pt", "--run_name", "other"],
            2,
            ("has 3 classes but dataset 'digits' has 10",),
        ),
        "truncated_checkpoint": Case(
            ["--resume", tmp / "cut.pt"], 1, ("corrupt or truncated", "use another checkpoint")
        ),
        "missing_checkpoint": Case(["--resume", tmp / "nope.pt"], 2, ("checkpoint not found", "check the path")),
        "checkpoint_running_code_train": Case(["--resume", tmp / "evil.pt"], 1, trusted),
        "checkpoint_running_code_evaluate": Case(["--checkpoint", tmp / "evil.pt"], 1, trusted, script="evaluate.py"),
        # A path below a regular file cannot be created even by root (chmod would not stop root).
        "unwritable_checkpoint_folder": Case(
            ["--checkpoint_dir", earlier / "config.yaml" / "sub", *FAST, "--epochs", "1"],
            2,
            ("cannot write the run folder", "choose a writable --checkpoint_dir"),
        ),
        "full_disk_while_saving": Case(
            ["--run_name", "full", *FAST, "--epochs", "2"],
            1,
            ("could not write", "No space left on device", "previous file is intact", "--resume auto"),
            faults="write:last.pt#2=enospc",
        ),
    }


CASES = list(catalogue(Path("earlier"), Path("tmp")))


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, trained_run):
    """Train the earlier run, then run the whole catalogue against it; returns what each case did."""
    root, tmp = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("inputs")
    earlier = copy_run(trained_run, root / "earlier")  # conftest.trained_run, a finished run
    make_files(earlier, tmp)
    table = catalogue(earlier, tmp)
    before = snapshot(earlier)

    def run(case: Case) -> subprocess.CompletedProcess:
        # CPU even where a GPU exists: every child starting CUDA made this fixture outlast timeouts there.
        prefix = ["--checkpoint_dir", root, "--device", "cpu"] if case.script == "train.py" else []
        return cli(case.script, *prefix, *case.args, faults=case.faults)

    with ThreadPoolExecutor(max_workers=2) as pool:  # the machine has 2 cores; each child is mostly imports
        results = dict(zip(table, pool.map(run, table.values())))
    return {"root": root, "tmp": tmp, "table": table, "results": results, "before": before, "after": snapshot(earlier)}


@pytest.mark.slow  # the catalogue: ~25 real commands, most of them importing torch
@pytest.mark.parametrize("name", CASES)
def test_refused_with_one_line(outcomes, name):
    case, done = outcomes["table"][name], outcomes["results"][name]
    lines = done.stderr.strip().splitlines()
    assert done.returncode == case.code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for fragment in case.says:
        assert fragment in lines[0], lines[0]
    assert outcomes["after"] == outcomes["before"]  # the earlier run is untouched


@pytest.mark.slow  # the catalogue: ~25 real commands, most of them importing torch
def test_crafted_checkpoint_ran_no_code(outcomes):
    assert outcomes["results"]["checkpoint_running_code_train"].returncode == 1
    assert not (outcomes["tmp"] / "code_ran").exists()


@pytest.mark.slow  # the catalogue: ~25 real commands, most of them importing torch
def test_full_disk_left_the_previous_last_pt_whole(outcomes):
    run_dir = outcomes["root"] / "full"
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1  # epoch 2's save failed halfway
    assert not list(run_dir.glob(".*.tmp-*"))


def test_every_torch_load_is_weights_only():
    root = Path(__file__).resolve().parents[1]
    files = [p for p in root.rglob("*.py") if ".venv" not in p.parts and p.name != Path(__file__).name]
    calls = [(p, line) for p in files for line in p.read_text().splitlines() if "torch.load(" in line]
    assert calls, "expected to find the checkpoint loader"
    assert [c for c in calls if "weights_only=True" not in c[1]] == []


def test_debug_shows_the_traceback():
    done = cli("train.py", "--lr", "0", "--debug")
    assert "Traceback" in done.stderr and "UsageError: --lr must be > 0" in done.stderr
