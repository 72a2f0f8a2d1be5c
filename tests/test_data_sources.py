"""CSV lists, the torchvision sets offline (Fashion-MNIST from Debian's IDX files) and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import imagegen
import pytest
import torch

from data import DATASETS, csv_list, load_dataset, torchvision_sets
from data.check import DataError, report_of

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
HAS_FASHION = all((DEBIAN_FASHION / f"{f}.gz").is_file() for f in torchvision_sets.IDX_FILES)


def test_registry_has_every_documented_dataset():
    assert {"digits", "fashion_mnist", "mnist", "cifar10", "cifar100", "folder", "csv"} <= set(DATASETS)


def test_csv_list_resolves_relative_paths_and_reports_missing_files(tmp_path):
    imagegen.single_folder(tmp_path / "imgs", {"cat": 12, "dog": 6})
    rows = ["path,label"] + [f"imgs/cat/img{i:03d}.png,cat" for i in range(12)]
    rows += [f"{tmp_path}/imgs/dog/img{i:03d}.png,dog" for i in range(6)]  # absolute paths work too
    rows += ["imgs/dog/gone.png,dog", "", "# a comment", "imgs/dog/pipe.png,dog"]
    os.mkfifo(tmp_path / "imgs" / "dog" / "pipe.png")  # listed: refused by type, never opened
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "imgs").symlink_to(tmp_path / "imgs")  # relative to the CSV's folder, not the cwd
    csv_file = tmp_path / "lists" / "all.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    b = csv_list.load(str(csv_file), val_split=0.25, test_split=0.0)
    assert b.class_names == ["cat", "dog"] and len(b.train) + len(b.val) == 18
    assert b.test is None
    r = report_of(b)
    assert len(r.bad_files) == 2 and "gone.png: no such file (line 20)" in r.bad_files[0]
    assert "pipe.png: a named pipe (FIFO), not an image file (line 23)" in r.bad_files[1]


def test_csv_split_column_and_bad_rows(tmp_path):
    imagegen.single_folder(tmp_path, {"a": 4, "b": 5})
    rows = ["label,path,split"] + [
        f"{c},{c}/img{i:03d}.png,{'train' if i < 3 else 'val'}" for c in "ab" for i in range(4)
    ]
    rows.append("b,b/img004.png,test")
    (tmp_path / "l.csv").write_text("\n".join(rows))
    b = csv_list.load(str(tmp_path / "l.csv"))
    assert (len(b.train), len(b.val), len(b.test)) == (6, 2, 1)
    assert "test lacks a" in "\n".join(report_of(b).warnings())
    (tmp_path / "bad.csv").write_text("a/img000.png\n")
    with pytest.raises(DataError, match=r"bad.csv:1: expected path,label"):
        csv_list.load(str(tmp_path / "bad.csv"))


@pytest.mark.skipif(not HAS_FASHION, reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    b = load_dataset("fashion_mnist", str(tmp_path / "cache"), val_split=0.1)
    assert b.train.images.dtype == torch.uint8 and b.train.images.shape[1:] == (1, 28, 28)
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert b.class_names[0] == "T-shirt/top" and b.class_names[9] == "Ankle boot"
    assert torch.bincount(b.val.labels).tolist() == [600] * 10  # stratified
    assert (tmp_path / "cache" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()  # the cache
    assert "official test set" in report_of(b).format()


@pytest.mark.skipif(not HAS_FASHION, reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_gz_files_given_by_data_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(torchvision_sets.DEBIAN_DIRS, "fashion_mnist", [])
    for f in torchvision_sets.IDX_FILES:
        (tmp_path / f"{f}.gz").symlink_to(DEBIAN_FASHION / f"{f}.gz")
    b = load_dataset("fashion_mnist", str(tmp_path))
    assert len(b.test) == 10000


def test_offline_without_files_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(self):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\n<urlopen error [Errno -2] Name or service not known>"
        )

    monkeypatch.setitem(torchvision_sets.DEBIAN_DIRS, "fashion_mnist", [])
    monkeypatch.setattr(tvd.FashionMNIST, "download", offline)
    with pytest.raises(DataError) as e:
        load_dataset("fashion_mnist", str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg and str(tmp_path) in msg
    assert "Name or service not known" in msg and "connect to the internet" in msg
