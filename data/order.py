"""Each epoch's sample order, from a generator seeded by (seed, epoch): shared by both loaders.

A resumed run rebuilds the generator for its epoch and so sees exactly the batches the
uninterrupted run saw, whichever loader (in-memory or streamed) serves them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_order(n: int, gen: torch.Generator, shuffle: bool, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """The epoch's sample indices; with ``sample_weights``, n draws with replacement by weight."""
    if sample_weights is not None:
        return torch.multinomial(sample_weights, n, replacement=True, generator=gen)
    return torch.randperm(n, generator=gen) if shuffle else torch.arange(n)


def shard_slices(
    n: int, batch_size: int, shard: tuple[int, int], lockstep: bool
) -> Iterator[tuple[int, int, int, int]]:
    """(start, size, lo, hi): the global batch ``order[start:start + size]`` and this rank's part ``[lo, hi)`` of it.

    Under torchrun every rank walks the same order in global batches of ``batch_size * world``.
    Parts are contiguous and balanced (sizes differ by at most one). ``lockstep`` (training: DDP
    synchronises every backward, so all ranks must run the same batches) drops a last global batch
    smaller than the world size, which would leave some rank with nothing -- at most world - 1
    images an epoch, and never in a single process. Evaluation keeps every image instead; a rank
    whose part is empty just skips that batch.
    """
    rank, world = shard
    step = batch_size * world
    for start in range(0, n, step):
        size = min(step, n - start)
        if lockstep and size < world:
            return
        yield start, size, rank * size // world, (rank + 1) * size // world


def batch_count(n: int, batch_size: int, shard: tuple[int, int] = (0, 1), lockstep: bool = False) -> int:
    """Batches this rank gets in an epoch (equal on all ranks when ``lockstep``)."""
    return sum(1 for _, _, lo, hi in shard_slices(n, batch_size, shard, lockstep) if hi > lo)
