"""What every dataset loader returns: uint8 image tensors per split plus what describes them."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Split:
    """One split held in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str] = field(default_factory=list)  # sample paths or "index N", for error reports

    def __len__(self) -> int:
        return int(self.labels.shape[0])

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

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    def split(self, name: str) -> Split:
        s = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if s is None:
            from engine.errors import UsageError
            raise UsageError(f"dataset '{self.name}' has no '{name}' split")
        return s


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the 0-1 scale."""
    x = images.float().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    std = x.std(dim=1).clamp_min(1e-3)
    return tuple(x.mean(dim=1).tolist()), tuple(std.tolist())
