"""Optimizer registry. Weights get weight decay; biases and norm parameters don't (two groups)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from common.errors import unknown_name


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda groups, lr, momentum: torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0),
    "adamw": lambda groups, lr, momentum: torch.optim.AdamW(groups, lr=lr),
    "adam": lambda groups, lr, momentum: torch.optim.Adam(groups, lr=lr),
}


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float
                    ) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name](param_groups(model, weight_decay), lr, momentum)
