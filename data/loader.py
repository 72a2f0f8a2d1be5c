"""Batches from uint8 tensors resident on the training device, in a reproducible order.

Each epoch's order and augmentations come from a generator seeded by (seed, epoch), so a run
resumed at any epoch boundary sees exactly the batches the uninterrupted run saw.

Under torchrun every rank walks the same order in *global* batches of ``batch_size * world`` and
keeps its own contiguous slice of each (``shard_slices``). Augmentation parameters are drawn for
the whole global batch and sliced, so 2 ranks x batch B see exactly the images and augmentations
that 1 process x batch 2B sees. On a GPU the epoch's draws are made up front (in the same order)
and sent once, and the batch augmentation is a gather on the device (``augment_gathered``): no
host sync per batch. ``make_loader``
picks this loader for in-memory splits and :class:`data.disk_loader.DiskLoader` for streamed ones;
both yield the same (inputs, labels) batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from data.order import batch_count, epoch_generator, epoch_order, shard_slices
from data.transforms import apply_params, draw_params, eval_transform, preset_params
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


def augment_gathered(
    x: torch.Tensor, pad: int, dy: torch.Tensor | None, dx: torch.Tensor | None, flips: torch.Tensor | None
) -> torch.Tensor:
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

    def __init__(
        self,
        split: Split,
        batch_size: int,
        preprocessing: dict,
        device: torch.device,
        augment_preset: str = "none",
        shuffle: bool = False,
        seed: int = 0,
        sample_weights: torch.Tensor | None = None,
        channels_last: bool = False,
        shard: tuple[int, int] = (0, 1),
        sync_free: bool | None = None,
    ):
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
        self.shard = shard  # (rank, world): this process's part of every global batch
        self.sync_free = device.type == "cuda" if sync_free is None else sync_free  # CPU tests can ask for it
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return batch_count(self.num_samples, self.batch_size, self.shard, self.shuffle)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = epoch_generator(self.seed, self.epoch)
        order = epoch_order(self.num_samples, gen, self.shuffle, self.sample_weights).to(self.device)
        size_px = self.images.shape[-2]
        slices = list(shard_slices(self.num_samples, self.batch_size, self.shard, self.shuffle))
        augmenting = self.augment_preset != "none"
        drawn = self._draw_epoch(gen, [size for _, size, _, _ in slices]) if self.sync_free and augmenting else None
        offset = 0  # where this global batch's draws start in ``drawn``
        for start, size, lo, hi in slices:
            params = draw_params(size, self.augment_preset, size_px, gen) if augmenting and drawn is None else None
            first, offset = offset, offset + size
            if hi == lo:
                continue
            idx = order[start + lo : start + hi]
            x = self.images[idx]
            if drawn is not None:
                pad, *draws = drawn
                x = augment_gathered(x, pad, *(None if d is None else d[first + lo : first + hi] for d in draws))
            elif params is not None:
                x = apply_params(x, self.augment_preset, *(p[lo:hi] if p is not None else None for p in params))
            x = eval_transform(x, self.pre)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def _draw_epoch(self, gen: torch.Generator, sizes: list[int]):
        """Every global batch's augmentation draws, in the per-batch order, sent to the device in one copy each."""
        size = self.images.shape[-2]
        if not sizes:
            return None
        per_batch = [draw_params(n, self.augment_preset, size, gen) for n in sizes]
        joined = [
            None if per_batch[0][k] is None else torch.cat([b[k] for b in per_batch]).to(self.device, non_blocking=True)
            for k in range(3)
        ]
        return (preset_params(self.augment_preset, size)[0], *joined)


@dataclass(frozen=True)
class Feed:
    """How a run's batches reach the model: preprocessing, device and layout, decoding, this rank's share.

    One per run (training, its validation and final test, the LR finder, evaluation); what differs
    between its loaders -- the split, batch size, order and augmentation -- goes to ``make_loader``.
    """

    preprocessing: dict
    device: torch.device
    channels_last: bool = False
    num_workers: int = -1  # streamed splits: DataLoader workers (-1: from the machine)
    strict: bool = False  # streamed splits: a file that fails to decode is an error, not a skipped image
    shard: tuple[int, int] = (0, 1)  # (rank, world): this process's part of every global batch


def make_loader(
    split: Split,
    batch_size: int,
    feed: Feed,
    *,
    augment_preset: str = "none",
    shuffle: bool = False,
    seed: int = 0,
    sample_weights: torch.Tensor | None = None,
):
    """TensorLoader for an in-memory split, DiskLoader (DataLoader workers) for a streamed one.

    Under torchrun (``feed.shard=(rank, world)``) each process gets its part of every global batch of
    ``batch_size * world``.
    """
    f = feed
    if split.in_memory:
        return TensorLoader(
            split,
            batch_size,
            f.preprocessing,
            f.device,
            augment_preset,
            shuffle,
            seed,
            sample_weights,
            f.channels_last,
            f.shard,
        )
    from data.disk_loader import DiskLoader, FileDataset

    size, channels = f.preprocessing["input_size"][0], f.preprocessing["channels"]
    # The split's files passed the run's pixel limit when their headers were probed (file_sets.probe_all).
    dataset = FileDataset(split.ids, split.labels, channels, size, max_pixels=None)
    return DiskLoader(
        dataset,
        batch_size,
        f.preprocessing,
        f.device,
        augment_preset,
        shuffle,
        seed,
        sample_weights,
        f.channels_last,
        f.num_workers,
        f.strict,
        f.shard,
    )
