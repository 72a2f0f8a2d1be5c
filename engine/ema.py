"""Weight EMA whose decay warms up, so early epochs aren't judged on mostly-random weights.

A fixed decay of 0.999 keeps 81 % of the initial weights after 200 updates; validating that
average after the first epoch measures the initialisation, not training. As TensorFlow's
ExponentialMovingAverage does when given ``num_updates``, the decay used for update n is
``min(decay, (1 + n) / (10 + n))``: a short average at first,
the full one once there are enough updates. Stateless apart from ``n_averaged``, which
``AveragedModel`` keeps in its own state_dict, so a resume continues the same decays.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_ema_fn(decay: float):
    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # integer buffers (BN's num_batches_tracked): follow
            torch._foreach_copy_(averaged, current)
            return
        n = float(n_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """EMA of parameters and buffers (BN statistics follow the same average)."""
    return AveragedModel(model, multi_avg_fn=warmup_ema_fn(decay), use_buffers=True)
