"""PyTorch's own schedulers, as thin adapters: declared hyperparameters -> torch's class.

Hyperparameters with unit "epochs" are given in epochs; per-update schedules convert them to
optimizer updates with the plan. ``None`` defaults are derived from the plan (the horizon left
after warmup), so a schedule fits the run without the user counting steps -- and such an entry is
horizon-dependent (``--epochs`` cannot change on resume) unless the value is given.

Where a length defaults to the horizon, it is ``horizon - 1`` updates so that the *last* update of
training runs at the schedule's end value (the LR for update t is set after update t - 1).
SequentialLR, ChainedScheduler (compose.py) and SWALR (swa.py) live in their own files.

torch's own argument names are accepted too: where ours differ they are ``param_aliases``
(``T_max``, ``T_0``, ``T_mult``; plateau's ``gamma`` is its ``factor``, as for StepLR); where ours
had no equivalent they are hyperparameters here (CyclicLR/OneCycleLR ``max_lr``, ``base_lr``,
momentum cycling; OneCycleLR ``epochs``/``steps_per_epoch``; plateau ``mode``, ``threshold_mode``,
``eps``). Callables (``lr_lambda``, ``scale_fn`` and its ``scale_mode``) cannot come from a config, and
``last_epoch`` is a checkpoint's job: those are refused with the rest.
"""

from __future__ import annotations

from torch.optim import lr_scheduler as tls

from common.errors import UsageError
from common.monitors import MONITORS, mode_of
from schedulers.formulas import FORMULAS, Formula
from schedulers.registry import Param, Plan, ScheduleSpec, register


def _given(*keys: str):
    """horizon_free rule: the shape is fixed once all of these params are given explicitly."""
    return lambda p: all(p[k] is not None for k in keys)


def _span(p: dict, key: str, plan: Plan) -> int:
    """A length in updates: the param (in epochs) if given, else the rest of training minus one."""
    return plan.updates(p[key]) if p[key] is not None else max(1, plan.horizon_steps - 1)


# --- named formulas: LambdaLR and MultiplicativeLR ---
FORMULA_PARAMS = {
    "formula": Param(str, "cosine", choices=FORMULAS, help="decay shape"),
    "end_factor": Param(float, 0.0, low=0.0, high=1.0, help="final factor of linear/power/cosine"),
    "power": Param(float, 2.0, low=0.0, help="exponent of the power formula"),
    "gamma": Param(float, 0.8, low=0.0, high=1.0, help="exponential: factor per epoch; step: per step_size"),
    "step_size": Param(float, 3.0, low=0.0, unit="epochs", help="epochs between step decays"),
}


def _formula(p: dict, plan: Plan, ratio: bool) -> Formula:
    period = plan.updates(p["step_size"]) if p["formula"] == "step" else plan.steps_per_epoch
    return Formula(
        p["formula"], max(1, plan.horizon_steps - 1), p["end_factor"], p["power"], p["gamma"], period, ratio=ratio
    )


def _formula_horizon_free(p: dict) -> bool:
    return p["formula"] in ("exponential", "step", "constant")


register(
    ScheduleSpec(
        name="LambdaLR",
        aliases=("lambda",),
        granularity="update",
        horizon_free=_formula_horizon_free,
        summary="base LR x a named formula of the update (linear, power, exponential, cosine, step)",
        params=FORMULA_PARAMS,
        build=lambda opt, p, plan: tls.LambdaLR(opt, _formula(p, plan, ratio=False)),
    )
)

register(
    ScheduleSpec(
        name="MultiplicativeLR",
        aliases=("multiplicative",),
        granularity="update",
        horizon_free=_formula_horizon_free,
        summary="LR x a named formula's ratio each update (the same curves as LambdaLR)",
        params=FORMULA_PARAMS,
        build=lambda opt, p, plan: tls.MultiplicativeLR(opt, _formula(p, plan, ratio=True)),
    )
)

# --- piecewise, per epoch ---
register(
    ScheduleSpec(
        name="StepLR",
        aliases=("step",),
        granularity="epoch",
        horizon_free=True,
        summary="multiply the LR by gamma every step_size epochs",
        params={
            "step_size": Param(int, 5, low=1, unit="epochs", help="epochs between decays"),
            "gamma": Param(float, 0.1, low=0.0, high=1.0, help="decay factor"),
        },
        build=lambda opt, p, plan: tls.StepLR(opt, step_size=p["step_size"], gamma=p["gamma"]),
    )
)


def _multistep(opt, p: dict, plan: Plan):
    he = plan.horizon_epochs
    milestones = p["milestones"] if p["milestones"] is not None else sorted({max(1, he // 2), max(1, he * 3 // 4)})
    return tls.MultiStepLR(opt, milestones=milestones, gamma=p["gamma"])


register(
    ScheduleSpec(
        name="MultiStepLR",
        aliases=("multistep",),
        granularity="epoch",
        horizon_free=_given("milestones"),
        summary="multiply the LR by gamma at each milestone epoch",
        params={
            "milestones": Param(
                list, None, low=1, unit="epochs", help="epochs of the decays (default: 1/2 and 3/4 of the rest)"
            ),
            "gamma": Param(float, 0.1, low=0.0, high=1.0, help="decay factor"),
        },
        build=_multistep,
    )
)

register(
    ScheduleSpec(
        name="ConstantLR",
        aliases=("constantlr",),
        granularity="epoch",
        horizon_free=True,
        summary="base LR x factor for total_iters epochs, then the base LR",
        params={
            "factor": Param(float, 1 / 3, low=0.0, high=1.0, help="factor during the first epochs"),
            "total_iters": Param(int, 5, low=0, unit="epochs", help="epochs at the reduced LR"),
        },
        build=lambda opt, p, plan: tls.ConstantLR(opt, factor=p["factor"], total_iters=p["total_iters"]),
    )
)

register(
    ScheduleSpec(
        name="ExponentialLR",
        aliases=("exponential",),
        granularity="epoch",
        horizon_free=True,
        summary="multiply the LR by gamma every epoch",
        params={"gamma": Param(float, 0.9, low=0.0, high=1.0, help="factor per epoch")},
        build=lambda opt, p, plan: tls.ExponentialLR(opt, gamma=p["gamma"]),
    )
)

# --- continuous, per optimizer update ---
register(
    ScheduleSpec(
        name="LinearLR",
        aliases=("linearlr",),
        granularity="update",
        horizon_free=_given("total_iters"),
        summary="linear from start_factor to end_factor x base LR (default: decay to 0 over the rest)",
        params={
            # torch's defaults (1/3 -> 1 over 5 steps) are a warmup; warmup is the wrapper's job here.
            "start_factor": Param(float, 1.0, low=1e-8, high=1.0, help="factor of the first update"),
            "end_factor": Param(float, 0.0, low=0.0, high=1.0, help="factor at the end"),
            "total_iters": Param(float, None, low=0.0, unit="epochs", help="epochs of the ramp (default: the rest)"),
        },
        build=lambda opt, p, plan: tls.LinearLR(
            opt, start_factor=p["start_factor"], end_factor=p["end_factor"], total_iters=_span(p, "total_iters", plan)
        ),
    )
)

register(
    ScheduleSpec(
        name="PolynomialLR",
        aliases=("polylr",),
        granularity="update",
        horizon_free=_given("total_iters"),
        summary="base LR x (1 - t/T)^power, reaching 0 on the last update",
        params={
            "total_iters": Param(float, None, low=0.0, unit="epochs", help="epochs until 0 (default: the rest)"),
            "power": Param(float, 1.0, low=0.0, help="exponent"),
        },
        build=lambda opt, p, plan: tls.PolynomialLR(opt, total_iters=_span(p, "total_iters", plan), power=p["power"]),
    )
)

register(
    ScheduleSpec(
        name="CosineAnnealingLR",
        aliases=("cosine",),
        granularity="update",
        horizon_free=_given("t_max"),
        param_aliases={"T_max": "t_max"},
        summary="half-cosine from the base LR to eta_min over the rest of training",
        params={
            "t_max": Param(
                float,
                None,
                low=0.0,
                unit="epochs",
                help="epochs of the half-cosine (default: the rest of training after warmup)",
            ),
            "eta_min": Param(float, 0.0, low=0.0, help="LR at the end"),
        },
        build=lambda opt, p, plan: tls.CosineAnnealingLR(opt, T_max=_span(p, "t_max", plan), eta_min=p["eta_min"]),
    )
)

register(
    ScheduleSpec(
        name="CosineAnnealingWarmRestarts",
        aliases=("warm_restarts", "sgdr"),
        granularity="update",
        horizon_free=True,
        param_aliases={"T_0": "t_0", "T_mult": "t_mult"},
        summary="cosine to eta_min, then restart at the base LR; cycles of t_0 epochs, x t_mult each time",
        params={
            "t_0": Param(float, 5.0, low=0.0, unit="epochs", help="epochs of the first cycle"),
            "t_mult": Param(int, 1, low=1, help="cycle length multiplier"),
            "eta_min": Param(float, 0.0, low=0.0, help="LR at the end of each cycle"),
        },
        build=lambda opt, p, plan: tls.CosineAnnealingWarmRestarts(
            opt, T_0=plan.updates(p["t_0"]), T_mult=p["t_mult"], eta_min=p["eta_min"]
        ),
    )
)


def _group_lrs(opt) -> list[float]:
    return [g["lr"] for g in opt.param_groups]


def _peaks(opt, p: dict, name: str) -> list[float]:
    """Each group's peak LR: ``max_lr`` when given (torch's meaning: it replaces --lr), else the group's LR."""
    lrs = _group_lrs(opt)
    if p["max_lr"] is None:
        return lrs
    if any(lr != p["max_lr"] for lr in lrs):
        print(f"note: {name} max_lr {p['max_lr']:g} is the peak LR; it overrides --lr {lrs[0]:g}")
    return [p["max_lr"]] * len(lrs)


def _momentum(p: dict) -> dict:
    """torch's momentum cycling: SGD's momentum or Adam(W)'s beta1 moves against the LR."""
    return {
        "cycle_momentum": p["cycle_momentum"],
        "base_momentum": p["base_momentum"],
        "max_momentum": p["max_momentum"],
    }


def _momentum_params(base: float, top: float) -> dict[str, Param]:
    return {
        "cycle_momentum": Param(
            bool, False, help="cycle SGD momentum / Adam beta1 inversely to the LR (torch's default is true)"
        ),
        "base_momentum": Param(float, base, low=0.0, high=1.0, help="momentum (beta1) at the LR's peak"),
        "max_momentum": Param(float, top, low=0.0, high=1.0, help="momentum (beta1) at the LR's bottom"),
    }


def _cyclic(opt, p: dict, plan: Plan):
    # The peak is max_lr or each group's configured LR; the bottom base_lr or base_factor x the peak.
    peaks = _peaks(opt, p, "CyclicLR")
    bases = [p["base_lr"]] * len(peaks) if p["base_lr"] is not None else [lr * p["base_factor"] for lr in peaks]
    if any(b > m for b, m in zip(bases, peaks)):
        raise UsageError(f"CyclicLR base_lr {bases[0]:g} is above its peak {peaks[0]:g} (max_lr or --lr)")
    up = plan.updates(p["step_size_up"])
    down = plan.updates(p["step_size_down"]) if p["step_size_down"] is not None else None
    return tls.CyclicLR(
        opt,
        base_lr=bases,
        max_lr=peaks,
        step_size_up=up,
        step_size_down=down,
        mode=p["mode"],
        gamma=p["gamma"],
        **_momentum(p),
    )


register(
    ScheduleSpec(
        name="CyclicLR",
        aliases=("cyclic",),
        granularity="update",
        horizon_free=True,
        summary="triangular cycles between base_factor x LR (or base_lr) and the LR (or max_lr)",
        params={
            "base_factor": Param(float, 0.1, low=0.0, high=1.0, help="bottom of the cycle as a fraction of the peak"),
            "base_lr": Param(float, None, low=0.0, help="bottom of the cycle as an LR (overrides base_factor)"),
            "max_lr": Param(float, None, low=0.0, help="peak LR (default: --lr, which it overrides)"),
            "step_size_up": Param(float, 2.0, low=0.0, unit="epochs", help="epochs from bottom to peak"),
            "step_size_down": Param(
                float, None, low=0.0, unit="epochs", help="epochs from peak to bottom (default: up)"
            ),
            "mode": Param(
                str, "triangular", choices=("triangular", "triangular2", "exp_range"), help="amplitude policy"
            ),
            "gamma": Param(float, 1.0, low=0.0, high=1.0, help="exp_range decay per update"),
            **_momentum_params(0.8, 0.9),
        },
        build=_cyclic,
    )
)


def _onecycle_total(p: dict, plan: Plan) -> int:
    """torch's rule: total_steps, else epochs x steps_per_epoch (each defaulting to the run's), else the rest."""
    if p["total_steps"] is not None:
        return p["total_steps"]
    if p["epochs"] is not None or p["steps_per_epoch"] is not None:
        return (p["epochs"] or plan.epochs) * (p["steps_per_epoch"] or plan.steps_per_epoch)
    return plan.horizon_steps


def _onecycle(opt, p: dict, plan: Plan):
    total = _onecycle_total(p, plan)
    if total < plan.horizon_steps:  # torch raises on the first step past the cycle, mid-run
        raise UsageError(
            f"OneCycleLR lasts {total} updates but this run has {plan.horizon_steps} after warmup; "
            f"leave total_steps/epochs/steps_per_epoch out to fit the run"
        )
    return tls.OneCycleLR(
        opt,
        max_lr=_peaks(opt, p, "OneCycleLR"),
        total_steps=total,
        pct_start=p["pct_start"],
        anneal_strategy=p["anneal_strategy"],
        div_factor=p["div_factor"],
        final_div_factor=p["final_div_factor"],
        three_phase=p["three_phase"],
        **_momentum(p),
    )


register(
    ScheduleSpec(
        name="OneCycleLR",
        aliases=("onecycle",),
        granularity="update",
        horizon_free=lambda p: p["total_steps"] is not None or None not in (p["epochs"], p["steps_per_epoch"]),
        summary="rise from LR/div_factor to the LR (or max_lr), then anneal far below it (one cycle over the rest)",
        params={
            "max_lr": Param(float, None, low=0.0, help="peak LR (default: --lr, which it overrides)"),
            "total_steps": Param(int, None, low=1, unit="updates", help="cycle length (default: the rest of training)"),
            "epochs": Param(
                int,
                None,
                low=1,
                help="with steps_per_epoch: total_steps = epochs x steps_per_epoch (default: the run's)",
            ),
            "steps_per_epoch": Param(int, None, low=1, help="updates per epoch for that product (default: the run's)"),
            "pct_start": Param(float, 0.3, low=0.0, high=1.0, help="fraction of the cycle spent rising"),
            "anneal_strategy": Param(str, "cos", choices=("cos", "linear"), help="shape of both phases"),
            "div_factor": Param(float, 25.0, low=1.0, help="starting LR = LR / div_factor"),
            "final_div_factor": Param(float, 1e4, low=1.0, help="final LR = starting LR / final_div_factor"),
            "three_phase": Param(bool, False, help="mirror the rise before the final anneal"),
            **_momentum_params(0.85, 0.95),
        },
        build=_onecycle,
    )
)


def _plateau(opt, p: dict, plan: Plan):
    mode = p["mode"] or mode_of(plan.monitor)  # resolve_params fills it in training
    return tls.ReduceLROnPlateau(
        opt,
        mode=mode,
        factor=p["factor"],
        patience=p["patience"],
        threshold=p["threshold"],
        threshold_mode=p["threshold_mode"],
        cooldown=p["cooldown"],
        min_lr=p["min_lr"],
        eps=p["eps"],
    )


register(
    ScheduleSpec(
        name="ReduceLROnPlateau",
        aliases=("plateau",),
        granularity="metric",
        horizon_free=True,
        param_aliases={"gamma": "factor"},
        summary="multiply the LR by factor when the monitored metric (--monitor) stops improving",
        params={
            "patience": Param(int, 2, low=0, unit="epochs", help="epochs without improvement before a decay"),
            "factor": Param(float, 0.1, low=0.0, high=1.0, help="decay factor"),
            "mode": Param(
                str,
                None,
                choices=("min", "max"),
                help="min: lower is better, max: higher (default: from "
                "--monitor: " + ", ".join(f"{k} {v}" for k, v in MONITORS.items()) + ")",
            ),
            "threshold": Param(float, 1e-4, low=0.0, help="improvement that counts"),
            "threshold_mode": Param(
                str, "rel", choices=("rel", "abs"), help="threshold relative to the best, or absolute"
            ),
            "cooldown": Param(int, 0, low=0, unit="epochs", help="epochs to wait after a decay"),
            "min_lr": Param(float, 0.0, low=0.0, help="LR floor"),
            "eps": Param(float, 1e-8, low=0.0, help="LR changes smaller than this are skipped"),
        },
        build=_plateau,
    )
)
