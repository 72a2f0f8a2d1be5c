"""Optimizer registry. Weights get weight decay; biases and norm parameters don't (two groups).

With ``--backbone_lr_mult F`` != 1 the groups are split again into head and backbone (four
groups, the head's first, so ``param_groups[0]["lr"]`` -- the LR printed and logged -- is the
head's); the backbone's start at F x the LR and every schedule and the warmup scale each group's
own LR, so the ratio holds throughout.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from common.errors import unknown_name


def _by_decay(params, weight_decay: float, **extra) -> list[dict]:
    decay = [p for p in params if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay, **extra},
            {"params": no_decay, "weight_decay": 0.0, **extra}]


def param_groups(model: nn.Module, weight_decay: float, lr: float = 0.0, backbone_lr_mult: float = 1.0) -> list[dict]:
    if backbone_lr_mult == 1.0:
        return _by_decay(list(model.parameters()), weight_decay)
    from models import split_parameters
    head, backbone = split_parameters(model)
    groups = _by_decay(head, weight_decay) + _by_decay(backbone, weight_decay, lr=lr * backbone_lr_mult)
    return [g for i, g in enumerate(groups) if g["params"] or i == 0]


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda groups, lr, momentum: torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0),
    "adamw": lambda groups, lr, momentum: torch.optim.AdamW(groups, lr=lr),
    "adam": lambda groups, lr, momentum: torch.optim.Adam(groups, lr=lr),
}


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float,
                    backbone_lr_mult: float = 1.0) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name](param_groups(model, weight_decay, lr, backbone_lr_mult), lr, momentum)
