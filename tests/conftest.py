"""Shared fixtures: run the entry scripts in-process on small, fast settings."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(2)

# Small and quick, but still the real code path.
FAST = ["--width", "8", "--depth", "2", "--batch_size", "128", "--threads", "2"]


def train(tmp_path: Path, *args: str) -> None:
    import train as train_script
    train_script.main(["--checkpoint_dir", str(tmp_path / "ck"), *FAST, *args])


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def run_train(tmp_path, capsys):
    def _run(*args: str) -> str:
        train(tmp_path, *args)
        return capsys.readouterr().out
    return _run
