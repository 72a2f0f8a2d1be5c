"""transformers-style schedules with transformers' formulas, without depending on transformers.

Each is registered as ``hf_<name>`` and, where the name is free, also under transformers' own name
(``cosine`` already means torch's CosineAnnealingLR here, so transformers' cosine is ``hf_cosine``
only). transformers builds every schedule as warmup + decay in one lambda; here the decay is the
entry and warmup stays the wrapper's job. Configured as transformers does --
``--warmup_mode linear --warmup_start_factor 0`` over ``num_warmup_steps`` updates and the same
total -- the LRs are transformers' LRs (the tests compare with the closed forms).

Their horizon is ``num_training_steps`` = epochs x updates per epoch; their warmup length is the
wrapper's. Each is a LambdaLR over a :class:`~schedulers.formulas.HFFactor`, so its state is
plain numbers and survives ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from torch.optim import lr_scheduler as tls

from common.errors import UsageError
from schedulers.formulas import WSD_DECAYS, HFFactor
from schedulers.registry import Param, Plan, ScheduleSpec, register


def _lambda(opt, plan: Plan, kind: str, **kw):
    return tls.LambdaLR(opt, HFFactor(kind, plan.warmup_steps, plan.total_steps, **kw))


def _polynomial(opt, p: dict, plan: Plan):
    lr_init = opt.defaults["lr"]  # transformers divides by the optimizer's default LR, so do we
    if not lr_init > p["lr_end"]:
        raise UsageError(f"hf_polynomial: lr_end ({p['lr_end']}) must be smaller than the LR ({lr_init})")
    return _lambda(opt, plan, "polynomial", power=p["power"], lr_end=p["lr_end"], lr_init=lr_init)


def _inverse_sqrt(opt, p: dict, plan: Plan):
    # transformers: timescale defaults to num_warmup_steps, or 10,000 without warmup.
    timescale = p["timescale"] if p["timescale"] is not None else (plan.warmup_steps or 10_000)
    return _lambda(opt, plan, "inverse_sqrt", timescale=timescale)


def _cosine_min_lr(opt, p: dict, plan: Plan):
    rate = p["min_lr"] / opt.defaults["lr"] if p["min_lr"] is not None else p["min_lr_rate"]
    return _lambda(opt, plan, "cosine_with_min_lr", num_cycles=p["num_cycles"], min_lr_rate=rate)


def _wsd(opt, p: dict, plan: Plan):
    decay = (
        plan.updates(p["decay_epochs"]) if p["decay_epochs"] is not None else max(1, round(0.2 * plan.horizon_steps))
    )
    if decay > plan.horizon_steps:
        raise UsageError(
            f"hf_warmup_stable_decay: decay_epochs ({decay} updates) is longer than the "
            f"{plan.horizon_steps} updates after warmup"
        )
    return _lambda(
        opt,
        plan,
        "warmup_stable_decay",
        decay_steps=decay,
        decay_type=p["decay_type"],
        min_lr_rate=p["min_lr_ratio"],
        num_cycles=p["num_cycles"],
    )


def _hf(
    name: str, summary: str, build, params: dict | None = None, horizon_free: bool = False, short: bool = True
) -> None:
    register(
        ScheduleSpec(
            name=f"hf_{name}",
            aliases=(name,) if short else (),
            granularity="update",
            summary=summary,
            build=build,
            params=params or {},
            horizon_free=horizon_free,
            family="transformers",
        )
    )


_hf("linear", "linear decay from the LR to 0 at num_training_steps", lambda opt, p, plan: _lambda(opt, plan, "linear"))
_hf(
    "cosine",
    "cosine from the LR to 0 (num_cycles waves; 0.5 = half a cosine)",
    lambda opt, p, plan: _lambda(opt, plan, "cosine", num_cycles=p["num_cycles"]),
    {"num_cycles": Param(float, 0.5, low=0.0, help="waves over the decay")},
    short=False,
)
_hf(
    "cosine_with_restarts",
    "num_cycles half-cosines to 0, each restarting at the LR",
    lambda opt, p, plan: _lambda(opt, plan, "cosine_with_restarts", num_cycles=p["num_cycles"]),
    {"num_cycles": Param(int, 1, low=1, help="number of hard restarts")},
)
_hf(
    "polynomial",
    "(LR - lr_end) x (1 - progress)^power + lr_end",
    _polynomial,
    {
        "lr_end": Param(float, 1e-7, low=0.0, help="final LR (absolute)"),
        "power": Param(float, 1.0, low=0.0, help="exponent"),
    },
)
_hf("constant", "the LR, unchanged", lambda opt, p, plan: _lambda(opt, plan, "constant"), horizon_free=True)
_hf(
    "constant_with_warmup",
    "the LR, unchanged (the warmup is the wrapper's)",
    lambda opt, p, plan: _lambda(opt, plan, "constant"),
    horizon_free=True,
)
_hf(
    "inverse_sqrt",
    "LR / sqrt((t + timescale) / timescale), t = updates after warmup",
    _inverse_sqrt,
    {"timescale": Param(int, None, low=1, unit="updates", help="default: the warmup length, or 10000")},
    horizon_free=True,
)
_hf(
    "cosine_with_min_lr",
    "cosine from the LR down to min_lr (or min_lr_rate x LR)",
    _cosine_min_lr,
    {
        "num_cycles": Param(float, 0.5, low=0.0, help="waves over the decay"),
        "min_lr_rate": Param(float, 0.1, low=0.0, high=1.0, help="floor as a fraction of the LR"),
        "min_lr": Param(float, None, low=0.0, help="floor as an absolute LR (overrides min_lr_rate)"),
    },
)
_hf(
    "warmup_stable_decay",
    "hold the LR, then decay to min_lr_ratio x LR over the last decay_epochs",
    _wsd,
    {
        "decay_epochs": Param(float, None, low=0.0, unit="epochs", help="length of the decay (default: last 20 %)"),
        "decay_type": Param(str, "cosine", choices=WSD_DECAYS, help="shape of the decay"),
        "min_lr_ratio": Param(float, 0.0, low=0.0, high=1.0, help="final LR as a fraction of the LR"),
        "num_cycles": Param(float, 0.5, low=0.0, help="waves of the cosine decay"),
    },
)
