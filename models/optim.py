"""Optimizer registry. Weights get weight decay; biases and norm parameters don't (two groups).

With ``--backbone_lr_mult F`` != 1 the groups are split again into head and backbone (four
groups, the head's first, so ``param_groups[0]["lr"]`` -- the LR printed and logged -- is the
head's); the backbone's start at F x the LR and every schedule and the warmup scale each group's
own LR, so the ratio holds throughout.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from common.errors import UsageError, unknown_name


def _by_decay(params, weight_decay: float, **extra) -> list[dict]:
    decay = [p for p in params if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay, **extra},
        {"params": no_decay, "weight_decay": 0.0, **extra},
    ]


def param_groups(model: nn.Module, weight_decay: float, lr: float = 0.0, backbone_lr_mult: float = 1.0) -> list[dict]:
    if backbone_lr_mult == 1.0:
        return _by_decay(list(model.parameters()), weight_decay)
    from models import split_parameters

    head, backbone = split_parameters(model)
    groups = _by_decay(head, weight_decay) + _by_decay(backbone, weight_decay, lr=lr * backbone_lr_mult)
    return [g for i, g in enumerate(groups) if g["params"] or i == 0]


def _schedulefree(cls_name: str, extra: Callable[[float], dict]):
    def build(groups, lr, momentum):
        import schedulefree  # only runs that use it pay for the import

        return getattr(schedulefree, cls_name)(groups, lr=lr, **extra(momentum))

    return build


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda groups, lr, momentum: torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0),
    "adamw": lambda groups, lr, momentum: torch.optim.AdamW(groups, lr=lr),
    "adam": lambda groups, lr, momentum: torch.optim.Adam(groups, lr=lr),
    # Schedule-free (Defazio et al. 2024): the LR stays constant after warmup; the optimizer keeps an
    # average of the iterates, which is what evaluation must see (engine/loop.py and engine/setup.py switch).
    "adamw_schedulefree": _schedulefree("AdamWScheduleFree", lambda momentum: {}),
    "sgd_schedulefree": _schedulefree("SGDScheduleFree", lambda momentum: {"momentum": momentum}),
}
SCHEDULE_FREE_SCHEDULE = "schedule_free"  # the schedule that runs a schedule-free optimizer
SCHEDULE_FREE_OF = {"adamw": "adamw_schedulefree", "sgd": "sgd_schedulefree"}


def optimizer_name(optimizer: str, scheduler: str) -> str:
    """The optimizer a run trains with: ``--scheduler schedule_free`` implies the schedule-free form of
    ``--optimizer`` (adamw -> adamw_schedulefree, sgd -> sgd_schedulefree), so that a sweep can put it
    beside the schedules with the same flags; check_schedule_free has refused every other pairing."""
    return SCHEDULE_FREE_OF.get(optimizer, optimizer) if scheduler == SCHEDULE_FREE_SCHEDULE else optimizer


def check_schedule_free(optimizer: str, scheduler: str) -> None:
    """A schedule-free optimizer runs under the ``schedule_free`` schedule only, and that schedule only
    with one: a decaying schedule on top would be a different method, and a plain optimizer at a
    constant LR would not be the baseline the leaderboard names."""
    if scheduler == SCHEDULE_FREE_SCHEDULE and optimizer_name(optimizer, scheduler) not in SCHEDULE_FREE_OF.values():
        raise UsageError(
            f"--scheduler {SCHEDULE_FREE_SCHEDULE} needs --optimizer adamw or sgd (their schedule-free "
            f"forms); got --optimizer {optimizer}"
        )
    if optimizer in SCHEDULE_FREE_OF.values() and scheduler != SCHEDULE_FREE_SCHEDULE:
        raise UsageError(
            f"--optimizer {optimizer} keeps the LR constant: use --scheduler {SCHEDULE_FREE_SCHEDULE} "
            f"(add --warmup_epochs or --warmup_steps for a warmup), not --scheduler {scheduler}"
        )


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` has schedule-free train()/eval() modes (its weights differ between them)."""
    return "train_mode" in optimizer.param_groups[0]


def build_optimizer(
    name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float, backbone_lr_mult: float = 1.0
) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    optimizer = OPTIMIZERS[name](param_groups(model, weight_decay, lr, backbone_lr_mult), lr, momentum)
    if is_schedule_free(optimizer):
        optimizer.train()  # it starts in eval mode, and its step() refuses to run there
    return optimizer
