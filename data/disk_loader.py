"""Batches decoded from image files in DataLoader workers, for folders too large for memory.

Workers decode with torchvision.io, resize to the run's fixed size and augment each image with
transforms v2 on uint8 tensors. Batches travel as uint8 (4x less to copy and pin than float) and
are normalised on the training device by the same ``eval_transform`` as the in-memory path.

Exact resume without trusting worker RNG: the batch sampler draws each epoch's order *and every
image's augmentation parameters* from the generator seeded by (seed, epoch), in the very sequence
TensorLoader draws them, and workers only apply them. Which worker handles which image, and how
long workers live (``persistent_workers``), cannot change a batch; a streamed epoch even equals
the in-memory epoch of the same files bit for bit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from common.cores import usable_cores
from data.images import MAX_IMAGE_PIXELS, ImageError, open_image
from data.order import batch_count, epoch_generator, epoch_order, shard_slices
from data.transforms import draw_params, eval_transform, fit_image, preset_params, shift_flip


def resolve_workers(num_workers: int) -> int:
    """``-1`` picks one worker per core, leaving one core to the training loop (at most 8)."""
    if num_workers >= 0:
        return num_workers
    return max(0, min(8, usable_cores() - 1))


class FileDataset(Dataset):
    """Image files as uint8 (C, size, size); a key is ``i`` or ``(i, dy, dx, flip)``.

    A file that fails to decode comes back as ``None`` plus the reason, so one bad image costs
    one sample rather than the whole run (the loader decides whether that is fatal).
    """

    def __init__(
        self,
        paths: list[str],
        labels: torch.Tensor,
        channels: int,
        size: int,
        pad: int = 0,
        max_pixels: int | None = MAX_IMAGE_PIXELS,
    ):
        self.paths, self.labels, self.max_pixels = paths, labels, max_pixels
        self.channels, self.size, self.pad = channels, size, pad

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> torch.Tensor:
        # the dataset report counts animated files once: no per-file warning from the workers
        return fit_image(open_image(self.paths[i], self.channels, self.max_pixels, say_animated=False), self.size)

    def __getitem__(self, key):
        i, dy, dx, flip = key if isinstance(key, tuple) else (key, 0, 0, False)
        try:
            img = self.load(i)
        except ImageError as e:
            return i, None, str(e)
        return i, shift_flip(img, self.pad, dy, dx, flip), ""


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack the images that decoded; report the others by reason."""
    good = [(i, img) for i, img, _ in items if img is not None]
    bad = [err for _, img, err in items if img is None]
    idx = torch.tensor([i for i, _ in good], dtype=torch.long)
    x = torch.stack([img for _, img in good]) if good else torch.empty(0, dtype=torch.uint8)
    return x, idx, bad


class EpochBatchSampler(Sampler):
    """Yields batches of (index, dy, dx, flip), drawn exactly as TensorLoader draws an epoch."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        preset: str,
        size: int,
        sample_weights: torch.Tensor | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        self.shard = shard  # (rank, world): drawn for the global batch, this rank's part kept
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.preset, self.size, self.sample_weights = preset, size, sample_weights
        self.epoch = 0

    def __len__(self) -> int:
        return batch_count(self.n, self.batch_size, self.shard, self.shuffle)

    def __iter__(self) -> Iterator[list[tuple[int, int, int, bool]]]:
        gen = epoch_generator(self.seed, self.epoch)
        order = epoch_order(self.n, gen, self.shuffle, self.sample_weights)
        for start, size, lo, hi in shard_slices(self.n, self.batch_size, self.shard, self.shuffle):
            dy, dx, flips = (
                draw_params(size, self.preset, self.size, gen) if self.preset != "none" else (None, None, None)
            )
            if hi == lo:
                continue
            dy, dx, flips = (p[lo:hi] if p is not None else None for p in (dy, dx, flips))
            idx = order[start + lo : start + hi].tolist()
            zeros = [0] * len(idx)
            yield list(
                zip(
                    idx,
                    dy.tolist() if dy is not None else zeros,
                    dx.tolist() if dx is not None else zeros,
                    flips.tolist() if flips is not None else [False] * len(idx),
                )
            )


class DiskLoader:
    """Iterate (inputs, labels) like TensorLoader: inputs normalised float on ``device``."""

    def __init__(
        self,
        dataset: FileDataset,
        batch_size: int,
        preprocessing: dict,
        device: torch.device,
        augment_preset: str = "none",
        shuffle: bool = False,
        seed: int = 0,
        sample_weights: torch.Tensor | None = None,
        channels_last: bool = False,
        num_workers: int = -1,
        strict: bool = False,
        shard: tuple[int, int] = (0, 1),
    ):
        dataset.pad = preset_params(augment_preset, dataset.size)[0]
        self.dataset, self.batch_size, self.pre, self.device = dataset, batch_size, preprocessing, device
        self.channels_last, self.strict = channels_last, strict
        self.sampler = EpochBatchSampler(
            len(dataset), batch_size, shuffle, seed, augment_preset, dataset.size, sample_weights, shard
        )
        workers = resolve_workers(num_workers)
        cuda = device.type == "cuda"
        # Persistent workers: re-forking every epoch costs seconds on big folders, and the sampler
        # carries all randomness, so keeping workers alive cannot change the batches.
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=cuda,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(seed),
        )  # leaves the global RNG alone
        self.warned: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        self.sampler.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler)

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def _bad(self, errors: list[str]) -> None:
        if self.strict:
            from data.check import DataError

            raise DataError(f"unreadable image and --strict_data is set: {errors[0]}")
        for e in errors:
            if e not in self.warned:
                self.warned.add(e)
                print(f"warning: skipped unreadable image {e}", file=sys.stderr)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, idx, bad in self.loader:
            if bad:
                self._bad(bad)
            if len(idx) == 0:
                continue
            x = eval_transform(x.to(self.device, non_blocking=True), self.pre)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.dataset.labels[idx].to(self.device, non_blocking=True)
