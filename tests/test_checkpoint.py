"""Checkpoint files: atomic writes, weights_only loading, refusal of code and corrupt files."""
from __future__ import annotations

import os

import pytest
import torch

from engine.checkpoint import VERSION, load_checkpoint, save_checkpoint
from engine.errors import AppError


def minimal(value=1.0):
    return {"model": {"w": torch.full((3,), value)}, "config": {}, "class_names": ["a"], "preprocessing": {}}


def test_round_trip_and_version(tmp_path):
    save_checkpoint(minimal(2.0), tmp_path / "a.pt", tmp_path / "b.pt")
    for name in ("a.pt", "b.pt"):
        ck = load_checkpoint(tmp_path / name)
        assert ck["version"] == VERSION and torch.equal(ck["model"]["w"], torch.full((3,), 2.0))
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt"]  # no temp files left behind


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(minimal(1.0), path)
    real_open = open

    def full_disk(file, mode="r", *a, **k):
        if "w" in mode and ".tmp-" in str(file):
            class Full:
                def __enter__(self):
                    return self
                def __exit__(self, *exc):
                    return False
                def write(self, data):
                    raise OSError(28, "No space left on device")
            return Full()
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(AppError, match="No space left on device.*previous file is intact"):
        save_checkpoint(minimal(9.0), path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((3,), 1.0))
    assert os.listdir(tmp_path) == ["last.pt"]


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "t.pt"
    save_checkpoint(minimal(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(AppError, match="corrupt or truncated"):
        load_checkpoint(path)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({**minimal(), "version": VERSION, "payload": Exploit()}, path)
    with pytest.raises(AppError, match="could run code"):
        load_checkpoint(path)


def test_other_format_version_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({**minimal(), "version": 0}, path)
    with pytest.raises(AppError, match="format version 0"):
        load_checkpoint(path)
