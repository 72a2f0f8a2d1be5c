"""Each epoch's sample order, from a generator seeded by (seed, epoch): shared by both loaders.

A resumed run rebuilds the generator for its epoch and so sees exactly the batches the
uninterrupted run saw, whichever loader (in-memory or streamed) serves them.
"""
from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_order(n: int, gen: torch.Generator, shuffle: bool, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """The epoch's sample indices; with ``sample_weights``, n draws with replacement by weight."""
    if sample_weights is not None:
        return torch.multinomial(sample_weights, n, replacement=True, generator=gen)
    return torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
