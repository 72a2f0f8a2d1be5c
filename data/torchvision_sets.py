"""``fashion_mnist``, ``mnist``, ``cifar10``, ``cifar100`` through torchvision, held as uint8 tensors.

The official training set gives train and val (seeded stratified split, --val_split); the official
test set is the test split (--test_split does not apply). Where the files come from, in order:

1. torchvision's layout under --data_dir (e.g. ``datasets/FashionMNIST/raw/*-ubyte``);
2. MNIST family: the original gzipped IDX files (``*-idx?-ubyte.gz``) in --data_dir, or for
   Fashion-MNIST in Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist).
   They are un-gzipped once into torchvision's layout under --data_dir (a cache; /usr/share is
   never written);
3. a download into --data_dir (needs the network).

Example:
    python train.py --dataset fashion_mnist --model custom --augment standard
"""

from __future__ import annotations

import gzip
import os
import shutil
from functools import partial
from pathlib import Path

import torch

from data.check import DataError, DataReport
from data.split import SPLIT_SEED, stratified_split
from data.types import DataBundle, Split, channel_stats

DEBIAN_DIRS = {"fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")]}
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
# name -> (torchvision class name, how to get the files offline)
SETS = {
    "fashion_mnist": (
        "FashionMNIST",
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
        "or put the four *-idx?-ubyte.gz files in {dir}",
    ),
    "mnist": ("MNIST", "put the four MNIST *-idx?-ubyte.gz files in {dir}"),
    "cifar10": ("CIFAR10", "put cifar-10-python.tar.gz in {dir}"),
    "cifar100": ("CIFAR100", "put cifar-100-python.tar.gz in {dir}"),
}


def _is_mnist_family(cls_name: str) -> bool:
    return cls_name in ("MNIST", "FashionMNIST")


def _cache_root(data_dir: Path) -> Path:
    """--data_dir when writable; else a user cache (--data_dir may be a read-only system folder)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if os.access(data_dir, os.W_OK):
            return data_dir
    except OSError:
        pass
    return Path.home() / ".cache" / "imgclf"


def _gz_source(name: str, data_dir: Path, raw: Path) -> Path | None:
    """A folder holding all four gzipped IDX files, searched in --data_dir first."""
    for folder in [data_dir, raw, *DEBIAN_DIRS.get(name, [])]:
        if all((folder / f"{f}.gz").is_file() for f in IDX_FILES):
            return folder
    return None


def _unpack_idx(source: Path, raw: Path) -> None:
    """Un-gzip into torchvision's raw folder, each file via a temp name so a crash leaves no half file."""
    raw.mkdir(parents=True, exist_ok=True)
    for f in IDX_FILES:
        if (raw / f).is_file():
            continue
        tmp = raw / f"{f}.part"
        with gzip.open(source / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        tmp.replace(raw / f)


def _open(name: str, data_dir: Path, train: bool):
    """The torchvision dataset object, from local files when possible, else downloaded."""
    import torchvision.datasets as tvd

    cls_name, offline_hint = SETS[name]
    cls = getattr(tvd, cls_name)
    root = data_dir
    if _is_mnist_family(cls_name):
        raw = data_dir / cls_name / "raw"
        if not all((raw / f).is_file() for f in IDX_FILES):
            source = _gz_source(name, data_dir, raw)
            if source is not None:
                root = _cache_root(data_dir)
                _unpack_idx(source, root / cls_name / "raw")
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass  # not there yet: try the network
    try:
        return cls(str(root), train=train, download=True)
    except Exception as e:  # urllib, socket and checksum errors all mean "could not fetch"
        reason = str(e).strip().splitlines()[-1][:120] if str(e).strip() else type(e).__name__
        raise DataError(
            f"{name} not found in {data_dir} and the download failed ({reason}). To use it offline, "
            f"{offline_hint.format(dir=data_dir)}; or connect to the internet once"
        ) from None


def _as_uint8(data) -> torch.Tensor:
    """torchvision's storage to uint8 (N, C, H, W): MNIST is (N, H, W) tensors, CIFAR (N, H, W, C) numpy."""
    t = data if isinstance(data, torch.Tensor) else torch.from_numpy(data)
    return t.unsqueeze(1).contiguous() if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def load_set(name: str, data_dir: str, val_split: float = 0.1, **_) -> DataBundle:
    """One of ``SETS`` as a DataBundle: train/val from the training set, the official test set as test."""
    folder = Path(data_dir).expanduser()
    train_set, test_set = _open(name, folder, True), _open(name, folder, False)
    images, labels = _as_uint8(train_set.data), torch.as_tensor(train_set.targets, dtype=torch.long)
    tr, va, _ = stratified_split(labels.numpy(), val_split, 0.0, SPLIT_SEED)

    def take(x: torch.Tensor, y: torch.Tensor, idx) -> Split:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Split(x[idx], y[idx], ids=[])  # ids "index N" on demand: 60,000 strings are not worth keeping

    train, val = take(images, labels, tr), take(images, labels, va)
    test_images = _as_uint8(test_set.data)
    test = Split(test_images, torch.as_tensor(test_set.targets, dtype=torch.long))
    mean, std = channel_stats(train.images)
    report = DataReport(
        source=f"{name} ({Path(train_set.root) / SETS[name][0]})",
        notes=[
            f"train/val: seeded stratified split of the official training set (--val_split {val_split:g}); "
            f"test: the official test set (--test_split does not apply)"
        ],
    )
    return DataBundle(name, list(train_set.classes), train, val, test, mean, std, report=report)


LOADERS = {name: partial(load_set, name) for name in SETS}
