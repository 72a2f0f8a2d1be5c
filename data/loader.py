"""Batches from uint8 tensors resident on the training device, in a reproducible order.

Each epoch's order and augmentations come from a generator seeded by (seed, epoch), so a run
resumed at any epoch boundary sees exactly the batches the uninterrupted run saw. ``make_loader``
picks this loader for in-memory splits and :class:`data.disk_loader.DiskLoader` for streamed ones;
both yield the same (inputs, labels) batches.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from data.order import epoch_generator, epoch_order
from data.transforms import augment, eval_transform
from data.types import Split


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels.cpu(), minlength=num_classes).float()


def loss_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``--class_weights auto``: n / (K * n_c), so every class carries the same total loss."""
    counts = class_counts(labels, num_classes)
    return counts.sum() / (num_classes * counts.clamp_min(1))


def balanced_sample_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``--balanced_sampler``: per-sample weight 1 / n_c, so each class is drawn equally often."""
    return (1.0 / class_counts(labels, num_classes).clamp_min(1))[labels.cpu()]


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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = epoch_generator(self.seed, self.epoch)
        order = epoch_order(self.num_samples, gen, self.shuffle, self.sample_weights).to(self.device)
        for start in range(0, self.num_samples, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            if self.augment_preset != "none":
                x = augment(x, self.augment_preset, gen)
            x = eval_transform(x, self.pre)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


def make_loader(split: Split, batch_size: int, preprocessing: dict, device: torch.device, *,
                augment_preset: str = "none", shuffle: bool = False, seed: int = 0,
                sample_weights: torch.Tensor | None = None, channels_last: bool = False,
                num_workers: int = -1, strict: bool = False):
    """TensorLoader for an in-memory split, DiskLoader (DataLoader workers) for a streamed one."""
    if split.in_memory:
        return TensorLoader(split, batch_size, preprocessing, device, augment_preset, shuffle, seed,
                            sample_weights, channels_last)
    from data.disk_loader import DiskLoader, FileDataset
    size, channels = preprocessing["input_size"][0], preprocessing["channels"]
    dataset = FileDataset(split.ids, split.labels, channels, size)
    return DiskLoader(dataset, batch_size, preprocessing, device, augment_preset, shuffle, seed, sample_weights,
                      channels_last, num_workers, strict)
