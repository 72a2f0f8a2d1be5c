"""Checkpoint files: atomic writes, weights_only loading, refusal of code and corrupt files."""

from __future__ import annotations

import os

import pytest
import torch

from artifacts.checkpoint import VERSION, load_checkpoint, prune_epoch_files, save_checkpoint
from common.errors import AppError


def minimal(value=1.0):
    return {"model": {"w": torch.full((3,), value)}, "config": {}, "class_names": ["a"], "preprocessing": {}}


def test_round_trip_and_version(tmp_path):
    save_checkpoint(minimal(2.0), tmp_path / "a.pt", tmp_path / "b.pt")
    for name in ("a.pt", "b.pt"):
        ck = load_checkpoint(tmp_path / name)
        assert ck["version"] == VERSION and torch.equal(ck["model"]["w"], torch.full((3,), 2.0))
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt"]  # no temp files left behind


def test_one_state_under_two_names_is_one_file_and_stays_correct(tmp_path):
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    save_checkpoint(minimal(1.0), best, last)
    assert os.path.samefile(best, last)  # a hard link, not a second copy
    save_checkpoint(minimal(2.0), last)  # the next epoch did not improve: only last.pt moves on
    assert not os.path.samefile(best, last)
    assert torch.equal(load_checkpoint(best)["model"]["w"], torch.full((3,), 1.0))
    assert torch.equal(load_checkpoint(last)["model"]["w"], torch.full((3,), 2.0))


def test_copies_where_links_are_not_possible(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")  # EXDEV

    monkeypatch.setattr(os, "link", no_links)
    save_checkpoint(minimal(3.0), tmp_path / "best.pt", tmp_path / "last.pt")
    assert not os.path.samefile(tmp_path / "best.pt", tmp_path / "last.pt")
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["model"]["w"], torch.full((3,), 3.0))
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]


def test_keep_last_prunes_the_oldest_epoch_files_by_number(tmp_path):
    for epoch in (8, 9, 10, 999, 1000):
        save_checkpoint(minimal(float(epoch)), tmp_path / f"epoch_{epoch:03d}.pt")
    (tmp_path / "epoch_notes.pt").write_text("not a numbered epoch file: left alone")
    removed = prune_epoch_files(tmp_path, 2)
    assert sorted(p.name for p in removed) == ["epoch_008.pt", "epoch_009.pt", "epoch_010.pt"]
    assert sorted(os.listdir(tmp_path)) == ["epoch_1000.pt", "epoch_999.pt", "epoch_notes.pt"]
    assert prune_epoch_files(tmp_path, 0) == []  # 0 keeps all


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


def test_a_key_the_schema_does_not_declare_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'modle'"):  # a misspelled key never reaches a file
        save_checkpoint({**minimal(), "modle": {}}, tmp_path / "a.pt")
    assert not list(tmp_path.iterdir())
