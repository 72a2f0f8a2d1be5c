"""Batches from uint8 tensors resident on the training device, in a reproducible order.

Each epoch's order and augmentations come from a generator seeded by (seed, epoch), so a run
resumed at any epoch boundary sees exactly the batches the uninterrupted run saw. On a GPU the
epoch's random draws are made up front (in the same order) and sent once, and the batch
augmentation is a gather on the device (``augment_gathered``): no host sync per batch. ``make_loader``
picks this loader for in-memory splits and :class:`data.disk_loader.DiskLoader` for streamed ones;
both yield the same (inputs, labels) batches.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from data.order import epoch_generator, epoch_order
from data.transforms import augment, draw_params, eval_transform, preset_params
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


def augment_gathered(x: torch.Tensor, pad: int, dy: torch.Tensor | None, dx: torch.Tensor | None,
                     flips: torch.Tensor | None) -> torch.Tensor:
    """``transforms.augment`` with its draws given, as index arithmetic on ``x``'s device.

    The same pixels as ``augment`` (zero-filled shifts, then mirror), but without its per-shift
    ``nonzero`` calls, each of which waits for the GPU; slower than it on a CPU.
    """
    n, c, h, w = x.shape
    dev = x.device
    if dy is not None:
        xp = F.pad(x, (pad, pad, pad, pad))
        rows = (dy.view(n, 1) + torch.arange(h, device=dev)).view(n, 1, h, 1)
        cols = (dx.view(n, 1) + torch.arange(w, device=dev)).view(n, 1, 1, w)
        x = xp[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]
    if flips is not None:
        x = torch.where(flips.view(n, 1, 1, 1), x.flip(3), x)
    return x


class TensorLoader:
    """Iterate (inputs, labels) batches; inputs normalised float on ``device``."""

    def __init__(self, split: Split, batch_size: int, preprocessing: dict, device: torch.device,
                 augment_preset: str = "none", shuffle: bool = False, seed: int = 0,
                 sample_weights: torch.Tensor | None = None, channels_last: bool = False,
                 sync_free: bool | None = None):
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
        self.sync_free = device.type == "cuda" if sync_free is None else sync_free  # CPU tests can ask for it
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
        starts = range(0, self.num_samples, self.batch_size)
        drawn = self._draw_epoch(gen, starts) if self.sync_free and self.augment_preset != "none" else None
        for start in starts:
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            if drawn is not None:
                pad, dy, dx, flips = drawn
                end = start + len(idx)
                x = augment_gathered(x, pad, *(None if t is None else t[start:end] for t in (dy, dx, flips)))
            elif self.augment_preset != "none":
                x = augment(x, self.augment_preset, gen)
            x = eval_transform(x, self.pre)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


    def _draw_epoch(self, gen: torch.Generator, starts: range):
        """Every batch's augmentation draws, in ``augment``'s order, sent to the device in one copy each."""
        size = self.images.shape[-2]
        if not starts:
            return None
        per_batch = [draw_params(min(self.batch_size, self.num_samples - s), self.augment_preset, size, gen)
                     for s in starts]
        joined = [None if per_batch[0][k] is None else
                  torch.cat([b[k] for b in per_batch]).to(self.device, non_blocking=True) for k in range(3)]
        return (preset_params(self.augment_preset, size)[0], *joined)


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
