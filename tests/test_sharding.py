"""Sharding a global batch across ranks, in-process: the same images and augmentations as one process.

The torchrun tests (tests/test_distributed.py) check whole runs; these check the loaders alone,
fast: rank r's batches of size B, put side by side for r = 0..W-1, must be exactly 1 process's
batches of size W x B -- same images, same augmentation draws, in the same order.
"""

from __future__ import annotations

import pytest
import torch

from data.loader import Feed, make_loader
from data.order import batch_count, shard_slices
from data.types import Split

PRE = {"input_size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.25]}


def split(n: int) -> Split:
    gen = torch.Generator().manual_seed(0)
    return Split(
        images=torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen), labels=torch.arange(n) % 10
    )


@pytest.mark.parametrize("n, batch, world", [(101, 8, 2), (100, 5, 4), (7, 4, 3)])
def test_parts_cover_each_global_batch_once_and_are_balanced(n, batch, world):
    for lockstep in (False, True):
        parts = [list(shard_slices(n, batch, (r, world), lockstep)) for r in range(world)]
        assert all(len(p) == len(parts[0]) for p in parts)  # every rank walks the same global batches
        covered = []
        for per_rank in zip(*parts):
            start, size = per_rank[0][:2]
            sizes = [hi - lo for _, _, lo, hi in per_rank]
            assert max(sizes) - min(sizes) <= 1 and sum(sizes) == size
            covered += [start + i for _, _, lo, hi in per_rank for i in range(lo, hi)]
        dropped = n - len(covered)
        assert covered == list(range(len(covered)))
        # Training (lockstep) drops only a last global batch too small to give every rank an image.
        assert dropped == (n % (batch * world) if lockstep and 0 < n % (batch * world) < world else 0)
        counts = [batch_count(n, batch, (r, world), lockstep) for r in range(world)]
        assert not lockstep or len(set(counts)) == 1


@pytest.mark.parametrize("augment", ["none", "light", "standard"])
def test_ranks_side_by_side_are_one_process_with_the_global_batch(augment):
    data, batch, world = split(101), 8, 2  # the last global batch (5 images) splits 2 + 3
    whole = make_loader(
        data, batch * world, Feed(PRE, torch.device("cpu")), augment_preset=augment, shuffle=True, seed=4
    )
    ranks = [
        make_loader(
            data, batch, Feed(PRE, torch.device("cpu"), shard=(r, world)), augment_preset=augment, shuffle=True, seed=4
        )
        for r in range(world)
    ]
    for epoch in (1, 2):
        for loader in (whole, *ranks):
            loader.set_epoch(epoch)
        assert all(len(r) == len(whole) for r in ranks)
        for (x, y), *parts in zip(whole, *ranks, strict=True):
            assert torch.equal(torch.cat([p[0] for p in parts]), x)
            assert torch.equal(torch.cat([p[1] for p in parts]), y)


def test_evaluation_keeps_every_image_even_when_a_rank_gets_none():
    data, world = split(9), 4  # batch 2 x 4 ranks: the last global batch holds 1 image
    labels = [
        y for r in range(world) for _, y in make_loader(data, 2, Feed(PRE, torch.device("cpu"), shard=(r, world)))
    ]
    assert sorted(torch.cat(labels).tolist()) == sorted(data.labels.tolist())


def test_streamed_sampler_shards_keys_and_augmentation_draws_alike():
    from data.disk_loader import EpochBatchSampler

    whole = EpochBatchSampler(101, 16, True, 4, "standard", 28)
    ranks = [EpochBatchSampler(101, 8, True, 4, "standard", 28, shard=(r, 2)) for r in range(2)]
    for s in (whole, *ranks):
        s.epoch = 3
    assert [len(r) for r in ranks] == [len(whole)] * 2
    for keys, *parts in zip(whole, *ranks, strict=True):
        assert sum(parts, []) == keys  # (index, dy, dx, flip) of every image, split 8/8 (last 3/2)
