"""Every registered schedule: builds with defaults, warms up without a jump, survives a checkpoint,
handles several param groups, and matches its reference -- torch's own class driven directly, or
transformers' closed form written out here.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.optim import lr_scheduler as tls
from torch.optim.swa_utils import SWALR

from common.errors import UsageError
from schedulers import SCHEDULES, Plan, build_scheduler, is_horizon_free, resolve_params
from schedulers.simulate import make_optimizer, simulate

E, S, LR = 6, 4, 0.1  # epochs, updates per epoch, base LR
LOSSES = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8]  # improves, stalls, improves, stalls: plateau reduces
ALL = sorted(SCHEDULES)
TORCH = [n for n in ALL if SCHEDULES[n].family == "torch"]
HF = [n for n in ALL if SCHEDULES[n].family == "transformers"]
# Defaults for every entry, plus the configurations whose state is richest.
CASES = (
    [(n, {}) for n in ALL]
    + [("LambdaLR", {"formula": f}) for f in ("linear", "power", "exponential", "step")]
    + [
        (
            "SequentialLR",
            {
                "schedulers": [
                    {"name": "LinearLR", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 2},
                    {"name": "plateau", "patience": 0},
                ],
                "milestones": [2],
            },
        ),
        ("ChainedScheduler", {"schedulers": [{"name": "cosine"}, {"name": "plateau", "patience": 0}]}),
        (
            "SequentialLR",
            {
                "schedulers": [{"name": "step", "step_size": 1, "gamma": 0.5}, {"name": "SWALR", "swa_start": 1}],
                "milestones": [2],
            },
        ),
    ]
)
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


def events(epochs: int = E, spe: int = S) -> list:
    """The training loop's event sequence: 'u' after each update, a loss at each epoch end."""
    out = []
    for e in range(epochs):
        out += ["u"] * spe + [LOSSES[e % len(LOSSES)]]
    return out


def apply(sched, opt, event) -> None:
    if event == "u":
        opt.step()
        sched.step_update()
    else:
        sched.step_epoch(event)


def run(name, params, warmup=0, base_lrs=(LR,), mode="linear", start=0.01, cut=None):
    """LRs (all groups) used by every update; with ``cut``, checkpoint after that many events and
    continue in a freshly built optimizer + scheduler loaded from ``torch.load(weights_only=True)``."""
    plan = Plan(E, S, warmup)
    opt = make_optimizer(list(base_lrs))
    sched = build_scheduler(opt, name, params, plan, mode, start)
    lrs = []
    for i, event in enumerate(events()):
        if i == cut:
            buf = io.BytesIO()
            torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
            buf.seek(0)
            state = torch.load(buf, weights_only=True)
            opt = make_optimizer(list(base_lrs))
            sched = build_scheduler(opt, name, params, plan, mode, start)
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
        if event == "u":
            lrs.append([g["lr"] for g in opt.param_groups])
        apply(sched, opt, event)
    return lrs


@pytest.mark.parametrize("name", ALL)
def test_builds_with_defaults(name):
    lrs = [lr for (lr,) in run(name, {})]
    assert len(lrs) == E * S and all(math.isfinite(x) and 0 <= x <= LR * 1.0000001 for x in lrs)


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
@pytest.mark.parametrize("warmup", [3, 6])  # ends mid-epoch / at an epoch end
def test_warmup_rises_to_handover_without_jump(name, params, warmup):
    opt = make_optimizer([LR])
    handover = build_scheduler(opt, name, params, Plan(E, S, warmup)).handover_lrs[0]
    lrs = [lr for (lr,) in run(name, params, warmup)]
    assert lrs[0] == pytest.approx(handover * 0.01)
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1 : warmup + 1]))
    assert lrs[warmup] == pytest.approx(handover)  # the first update after warmup: the schedule's own start
    assert lrs[warmup] - lrs[warmup - 1] == pytest.approx(handover * 0.99 / warmup)


@pytest.mark.parametrize("mode", ["exponential", "cosine", "constant"])
@pytest.mark.parametrize("name", ["plateau", "SequentialLR", "ChainedScheduler", "OneCycleLR"])
def test_every_warmup_mode_hands_over_at_the_schedules_start(name, mode):
    opt = make_optimizer([LR])
    handover = build_scheduler(opt, name, {}, Plan(E, S, 5)).handover_lrs[0]
    lrs = [lr for (lr,) in run(name, {}, 5, mode=mode, start=0.1)]
    assert lrs[0] == pytest.approx(handover * 0.1) and lrs[5] == pytest.approx(handover)
    assert max(lrs[:5]) <= handover


# A cut just before an epoch end means the fresh optimizer has not stepped when SWALR first does;
# torch warns about that order (training always updates before an epoch ends, so it never sees it).
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_state_round_trip_continues_exactly(name, params):
    full = run(name, params, warmup=3, base_lrs=(LR, LR / 4))
    n = len(events())
    for cut in (2, 7, S + 1, 2 * (S + 1) + 1, n - S - 2):  # in warmup, mid-epoch, at epoch ends, late
        assert run(name, params, warmup=3, base_lrs=(LR, LR / 4), cut=cut) == full, f"cut after event {cut}"


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_several_param_groups_keep_their_ratio(name, params):
    for lr0, lr1 in run(name, params, warmup=2, base_lrs=(LR, LR / 10)):
        assert lr1 == pytest.approx(lr0 / 10, rel=1e-9, abs=1e-15)


# --- torch's own classes, driven directly: (params, factory, when torch's step() is called) ---
T = E * S
TORCH_REFERENCES = {
    "LambdaLR": (
        {"formula": "cosine"},
        lambda o: tls.LambdaLR(o, lambda t: 0.5 * (1 + math.cos(math.pi * min(t / (T - 1), 1)))),
        "update",
    ),
    "MultiplicativeLR": (
        {"formula": "exponential", "gamma": 0.5},
        lambda o: tls.MultiplicativeLR(o, lambda t: 0.5 ** (1 / S)),
        "update",
    ),
    "StepLR": ({"step_size": 2, "gamma": 0.5}, lambda o: tls.StepLR(o, 2, 0.5), "epoch"),
    "MultiStepLR": ({}, lambda o: tls.MultiStepLR(o, [E // 2, E * 3 // 4]), "epoch"),
    "ConstantLR": ({"total_iters": 2}, lambda o: tls.ConstantLR(o, 1 / 3, 2), "epoch"),
    "LinearLR": ({}, lambda o: tls.LinearLR(o, 1.0, 0.0, T - 1), "update"),
    "ExponentialLR": ({}, lambda o: tls.ExponentialLR(o, 0.9), "epoch"),
    "PolynomialLR": ({"power": 2.0}, lambda o: tls.PolynomialLR(o, T - 1, 2.0), "update"),
    "CosineAnnealingLR": ({"eta_min": 0.01}, lambda o: tls.CosineAnnealingLR(o, T - 1, 0.01), "update"),
    "CosineAnnealingWarmRestarts": (
        {"t_0": 1, "t_mult": 2},
        lambda o: tls.CosineAnnealingWarmRestarts(o, S, 2),
        "update",
    ),
    "CyclicLR": (
        {"mode": "triangular2", "step_size_up": 1},
        lambda o: tls.CyclicLR(o, LR / 10, LR, S, mode="triangular2", cycle_momentum=False),
        "update",
    ),
    "OneCycleLR": ({}, lambda o: tls.OneCycleLR(o, LR, total_steps=T, cycle_momentum=False), "update"),
    "ReduceLROnPlateau": ({"patience": 1}, lambda o: tls.ReduceLROnPlateau(o, patience=1), "metric"),
    "SWALR": ({"swa_start": 2}, lambda o: SWALR(o, swa_lr=LR / 2, anneal_epochs=2), "epoch>2"),
    # Compositions without plateau whose children share a granularity: torch's own composition.
    "SequentialLR": (
        {
            "schedulers": [
                {"name": "LinearLR", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 2},
                {"name": "cosine"},
            ],
            "milestones": [2],
        },
        lambda o: tls.SequentialLR(
            o, [tls.LinearLR(o, 0.5, 1.0, 2 * S), tls.CosineAnnealingLR(o, (E - 2) * S - 1)], [2 * S]
        ),
        "update",
    ),
    "ChainedScheduler": (
        {},
        lambda o: tls.ChainedScheduler([tls.ConstantLR(o, 0.5, 2), tls.ExponentialLR(o, 0.9)]),
        "epoch",
    ),
}
MORE_COMPOSITIONS = [
    (
        {
            "schedulers": [
                {"name": "step", "step_size": 1, "gamma": 0.5},
                {"name": "exponential", "gamma": 0.8},
                {"name": "ConstantLR", "factor": 0.5, "total_iters": 1},
            ],
            "milestones": [2, 4],
        },
        lambda o: tls.SequentialLR(
            o, [tls.StepLR(o, 1, 0.5), tls.ExponentialLR(o, 0.8), tls.ConstantLR(o, 0.5, 1)], [2, 4]
        ),
        "epoch",
    ),
    (
        {"schedulers": [{"name": "LinearLR", "end_factor": 0.5}, {"name": "cosine", "eta_min": 0.0}]},
        lambda o: tls.ChainedScheduler([tls.LinearLR(o, 1.0, 0.5, T - 1), tls.CosineAnnealingLR(o, T - 1)]),
        "update",
    ),
]


def torch_lrs(factory, when) -> list[float]:
    opt = make_optimizer([LR])
    ref = factory(opt)
    lrs, epoch = [], 0
    for event in events():
        if event == "u":
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if when == "update":
                ref.step()
            continue
        epoch += 1
        if when == "epoch" or (when.startswith("epoch>") and epoch > int(when[6:])):
            ref.step()
        elif when == "metric":
            ref.step(event)
    return lrs


def test_every_torch_entry_has_a_reference():
    assert set(TORCH) == set(TORCH_REFERENCES)


@pytest.mark.parametrize("name", sorted(TORCH_REFERENCES))
def test_torch_entry_matches_torch_step_for_step(name):
    params, factory, when = TORCH_REFERENCES[name]
    ours = [p.lr for p in simulate(name, params, E, S, 0, LR, LOSSES)]
    assert ours == pytest.approx(torch_lrs(factory, when), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("case", range(len(MORE_COMPOSITIONS)))
def test_more_compositions_match_torch(case):
    params, factory, when = MORE_COMPOSITIONS[case]
    name = "SequentialLR" if "milestones" in params else "ChainedScheduler"
    ours = [p.lr for p in simulate(name, params, E, S, 0, LR, LOSSES)]
    assert ours == pytest.approx(torch_lrs(factory, when), rel=1e-12, abs=1e-15)


# --- transformers' formulas, written out from transformers/optimization.py (W warmup, N total) ---
def hf_closed_form(kind: str, step: int, W: int, N: int, **kw) -> float:
    if kind == "warmup_stable_decay":
        r, D = kw["min_lr_ratio"], kw["decay_steps"]
        stable = N - W - D
        if step < W:
            return (step / max(1, W)) * (1 - r) + r
        if step < W + stable:
            return 1.0
        if step < W + stable + D:
            progress = (step - W - stable) / max(1, D)
            f = {
                "linear": 1 - progress,
                "cosine": 0.5 * (1 + math.cos(math.pi * 0.5 * 2 * progress)),
                "1-sqrt": 1 - math.sqrt(progress),
            }[kw["decay_type"]]
            return max(0.0, f * (1 - r) + r)
        return r
    if step < W:
        return step / max(1, W)
    progress = (step - W) / max(1, N - W)
    if kind == "linear":
        return max(0.0, (N - step) / max(1, N - W))
    if kind == "cosine":
        return max(0.0, 0.5 * (1 + math.cos(math.pi * kw.get("num_cycles", 0.5) * 2 * progress)))
    if kind == "cosine_with_restarts":
        return 0.0 if progress >= 1 else max(0.0, 0.5 * (1 + math.cos(math.pi * ((kw["num_cycles"] * progress) % 1))))
    if kind == "cosine_with_min_lr":
        f = 0.5 * (1 + math.cos(math.pi * 0.5 * 2 * progress))
        return max(0.0, f * (1 - kw["rate"]) + kw["rate"])
    if kind == "polynomial":
        lr_end, power = kw["lr_end"], kw["power"]
        return ((LR - lr_end) * (1 - (step - W) / (N - W)) ** power + lr_end) / LR
    if kind == "inverse_sqrt":
        timescale = W or 10_000
        return 1 / math.sqrt((step + timescale - W) / timescale)
    return 1.0  # constant, constant_with_warmup


HF_CASES = {  # name: (params, warmup, closed-form kwargs)
    "hf_linear": ({}, 5, {}),
    "hf_cosine": ({"num_cycles": 0.75}, 5, {"num_cycles": 0.75}),
    "hf_cosine_with_restarts": ({"num_cycles": 3}, 5, {"num_cycles": 3}),
    "hf_polynomial": ({"lr_end": 1e-3, "power": 2.0}, 5, {"lr_end": 1e-3, "power": 2.0}),
    "hf_constant": ({}, 0, {}),  # transformers' constant has no warmup
    "hf_constant_with_warmup": ({}, 5, {}),
    "hf_inverse_sqrt": ({}, 5, {}),
    "hf_cosine_with_min_lr": ({"min_lr": 0.005}, 5, {"rate": 0.05}),
    "hf_warmup_stable_decay": (
        {"decay_epochs": 2, "min_lr_ratio": 0.1, "decay_type": "1-sqrt"},
        5,
        {"decay_steps": 2 * S, "min_lr_ratio": 0.1, "decay_type": "1-sqrt"},
    ),
}


def test_every_transformers_entry_has_a_closed_form():
    assert set(HF) == set(HF_CASES)


@pytest.mark.parametrize("name", sorted(HF_CASES))
def test_transformers_entry_matches_closed_form(name):
    params, W, kw = HF_CASES[name]
    # transformers' recipe: linear warmup from 0 (WSD: from min_lr_ratio) over W updates, same total.
    start = kw.get("min_lr_ratio", 0.0)
    ours = [lr for (lr,) in run(name, params, W, start=start)]
    expect = [LR * hf_closed_form(name[3:], step, W, E * S, **kw) for step in range(E * S)]
    assert ours == pytest.approx(expect, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("decay_type", ["linear", "cosine"])
def test_warmup_stable_decay_shapes(decay_type):
    kw = {"decay_steps": 2 * S, "min_lr_ratio": 0.0, "decay_type": decay_type}
    ours = [lr for (lr,) in run("warmup_stable_decay", {"decay_epochs": 2, "decay_type": decay_type}, 5, start=0.0)]
    assert ours == pytest.approx([LR * hf_closed_form("warmup_stable_decay", s, 5, E * S, **kw) for s in range(E * S)])


# --- horizon: which entries may change --epochs on resume ---
@pytest.mark.parametrize(
    "name,params,free",
    [
        ("step", {}, True),
        ("plateau", {}, True),
        ("exponential", {}, True),
        ("sgdr", {}, True),
        ("cyclic", {}, True),
        ("cosine", {}, False),
        ("cosine", {"t_max": 5}, True),
        ("onecycle", {}, False),
        ("linear", {}, False),
        ("inverse_sqrt", {}, True),
        ("multistep", {}, False),
        ("multistep", {"milestones": [3]}, True),
        ("lambda", {"formula": "cosine"}, False),
        ("lambda", {"formula": "step"}, True),
        ("swa", {"swa_start": 3}, True),
        ("sequential", {"schedulers": [{"name": "cosine", "t_max": 2}, {"name": "plateau"}], "milestones": [2]}, True),
        ("sequential", {"schedulers": [{"name": "plateau"}, {"name": "cosine"}], "milestones": [2]}, False),
        ("chained", {"schedulers": [{"name": "exponential"}, {"name": "plateau"}]}, True),
        ("chained", {"schedulers": [{"name": "cosine"}, {"name": "plateau"}]}, False),
    ],
)
def test_horizon_free_flags(name, params, free):
    assert is_horizon_free(name, params) is free


@pytest.mark.parametrize(
    "name,params,message",
    [
        (
            "SequentialLR",
            {"schedulers": [{"name": "cosine"}, {"name": "plateau"}], "milestones": [1, 2]},
            "one milestone fewer",
        ),
        (
            "SequentialLR",
            {"schedulers": [{"name": "cosine"}, {"name": "nope"}], "milestones": [2]},
            "schedulers[1]: unknown scheduler 'nope'",
        ),
        ("ChainedScheduler", {"schedulers": [{"name": "plateau", "patience": -1}]}, "out of range"),
        ("ChainedScheduler", {"schedulers": ["cosine"]}, "must be a mapping with a 'name'"),
        ("SequentialLR", {"schedulers": [{"name": "step"}, {"name": "step"}], "milestones": [2.5]}, "whole epochs"),
        ("LambdaLR", {"formula": "sawtooth"}, "valid: linear, power"),
    ],
)
def test_composition_and_formula_errors_name_the_problem(name, params, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve_params(name, params)


# The specification's names exactly as it lists them, for A0_001-005, 007-011, 013-029, 031-035 in order.
SPEC_LISTED = (
    "LambdaLR_linear, LambdaLR_power, LambdaLR_exponential, LambdaLR_cosine, LambdaLR_step, StepLR_default, "
    "StepLR_step50, StepLR_step10, MultiStepLR_3step, MultiStepLR_4step, LinearLR_warmup, ConstantLR_warmup, "
    "PolynomialLR_linear, PolynomialLR_quadratic, PolynomialLR_quartic, CosineAnnealingLR_default, "
    "CosineAnnealingLR_min, CosineAnnealingLR_highmin, CosineAnnealingWarmRestarts_small, "
    "CosineAnnealingWarmRestarts_large, CyclicLR_triangular, CyclicLR_triangular2, CyclicLR_exp_range, "
    "CyclicLR_small, OneCycleLR_default, OneCycleLR_aggressive, OneCycleLR_linear, SequentialLR_warmup, "
    "ReduceLROnPlateau_default, ReduceLROnPlateau_patient, SWALR_cosine, SWALR_linear"
).split(", ")
SPEC_IDS = [f"A0_{i:03d}" for i in range(1, 36) if i not in (6, 12, 30)]
SPEC_CLASS_NAMES = {"A0_006": "MultiplicativeLR", "A0_012": "ExponentialLR", "A0_030": "ChainedScheduler"}


@pytest.mark.parametrize("name,pid", list(zip(SPEC_LISTED, SPEC_IDS)))
def test_specification_names_select_their_presets_everywhere(name, pid, tmp_path, capsys):
    import plot_schedule
    import sweep
    from results import canonical_schedule
    from schedulers import describe_schedule
    from settings.config import Config
    from settings.validate import check_config

    assert describe_schedule(name, {}, 10)["preset"] == pid  # train.py resolves it as the id
    assert resolve_params(name, {}, 10) == resolve_params(pid, {}, 10)
    check_config(Config(scheduler=name, epochs=10))  # train.py's and sweep.py's check of every run
    assert sweep.schedule_list([name], False) == [name]
    assert canonical_schedule(name) == canonical_schedule(pid) == pid  # results.py groups them as one
    for n in (name, pid):
        plot_schedule.main(
            ["--scheduler", n, "--epochs", "10", "--steps_per_epoch", "3", "--csv", str(tmp_path / f"{n}.csv")]
        )
    assert (tmp_path / f"{name}.csv").read_text() == (tmp_path / f"{pid}.csv").read_text()


@pytest.mark.parametrize("pid,name", SPEC_CLASS_NAMES.items())
def test_specification_names_that_are_torch_classes_keep_meaning_the_class(pid, name, capsys):
    import plot_schedule
    from schedulers import describe_schedule

    assert describe_schedule(name, {}, 10)["preset"] is None and SCHEDULES[name].name == name
    assert describe_schedule(pid, {}, 10)["preset"] == pid
    plot_schedule.main(["--list"])
    assert f"{pid} " in capsys.readouterr().out.split(f"({name}*)")[0].splitlines()[-1]  # --list shows both names
