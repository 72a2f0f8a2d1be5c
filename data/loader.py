"""Batches from uint8 tensors resident on the training device, in a reproducible order.

Each epoch's order and augmentations come from a generator seeded by (seed, epoch), so a run
resumed at any epoch boundary sees exactly the batches the uninterrupted run saw.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from data.transforms import augment, eval_transform
from data.types import Split


class TensorLoader:
    """Iterate (inputs, labels) batches; inputs normalised float on ``device``."""

    def __init__(self, split: Split, batch_size: int, preprocessing: dict, device: torch.device,
                 augment_preset: str = "none", shuffle: bool = False, seed: int = 0,
                 sample_weights: torch.Tensor | None = None, channels_last: bool = False):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = batch_size
        self.pre = preprocessing
        self.device = device
        self.augment_preset = augment_preset
        self.shuffle = shuffle
        self.seed = seed
        self.sample_weights = sample_weights  # balanced sampling: draw with replacement by weight
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def _order(self, gen: torch.Generator) -> torch.Tensor:
        n = self.num_samples
        if self.sample_weights is not None:
            return torch.multinomial(self.sample_weights, n, replacement=True, generator=gen)
        return torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = self._order(gen).to(self.device)
        for start in range(0, self.num_samples, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            if self.augment_preset != "none":
                x = augment(x, self.augment_preset, gen)
            x = eval_transform(x, self.pre)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]
