"""What every dataset loader returns: uint8 image tensors per split plus what describes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from data.check import DataReport


@dataclass
class Split:
    """One split: ``images`` uint8 (N, C, H, W) in memory, ``labels`` int64 (N,).

    ``images`` is None for a streamed split (a folder too large for memory): its samples are then
    the files named in ``ids``, decoded batch by batch by :class:`data.disk_loader.DiskLoader`.
    """

    images: torch.Tensor | None
    labels: torch.Tensor
    ids: list[str] = field(default_factory=list)  # sample paths or "index N", for error reports

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def sample_id(self, i: int) -> str:
        return self.ids[i] if self.ids else f"index {i}"


@dataclass
class DataBundle:
    """A dataset ready to train on: the splits, class names and normalisation statistics."""

    name: str
    class_names: list[str]
    train: Split
    val: Split
    test: Split | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of a streamed dataset's decoded images
    report: DataReport | None = None  # what the dataset check found (filled by loaders or check.report_of)

    @property
    def channels(self) -> int:
        if self.train.images is None:
            return self.input_shape[0]
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        if self.train.images is None:
            return self.input_shape[1], self.input_shape[2]
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    def splits(self) -> dict[str, Split]:
        """The splits that exist, in train/val/test order."""
        return {k: s for k, s in (("train", self.train), ("val", self.val), ("test", self.test)) if s is not None}

    def split(self, name: str) -> Split:
        s = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if s is None:
            from common.errors import UsageError

            raise UsageError(f"dataset '{self.name}' has no '{name}' split")
        return s


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the 0-1 scale."""
    if images.numel() > 2**26:
        return _channel_stats_chunked(images)
    x = images.float().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    std = x.std(dim=1).clamp_min(1e-3)
    return tuple(x.mean(dim=1).tolist()), tuple(std.tolist())


def _channel_stats_chunked(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Same statistics in float64 running sums, so CIFAR-sized sets need no 600 MB float copy.

    Kept separate from the one-shot path so small sets (digits) keep their exact float32 numbers.
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for chunk in images.split(4096):
        x = chunk.to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        total += x.sum(dim=1)
        total_sq += x.square().sum(dim=1)
    n = images.numel() // c
    mean = total / n
    std = ((total_sq - n * mean.square()) / (n - 1)).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())
