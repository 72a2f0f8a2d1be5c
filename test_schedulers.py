"""The six established configurations -- step / plateau / cosine, each with and without warmup --
through a simulated 10-epoch loop, asserting the LR used by every update; every name in the
catalog (aliases included) through the same loop; and every one of the 35 seed presets: it builds
and runs, matches its closed form over a 100-epoch run, scales with --epochs, yields to overrides,
and survives a checkpoint.

Run alone with ``python test_schedulers.py``; pytest collects it too. The whole catalog is tested
in ``tests/test_scheduler_catalog.py``.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from schedulers import PRESETS, Plan, build_scheduler, is_horizon_free, names, preset_names, resolve_params
from schedulers.simulate import make_optimizer, simulate

EPOCHS, SPE, BASE, START = 10, 5, 0.1, 0.01


def per_epoch(points):
    """LR of each epoch, asserting it is constant within the epoch (after warmup)."""
    return [points[e * SPE].lr for e in range(EPOCHS)]


def warmup_lrs(warmup_epochs):
    w = warmup_epochs * SPE
    return [BASE * (START + (1 - START) * t / w) for t in range(w)]


@pytest.mark.parametrize("warmup", [0, 1])
def test_step(warmup):
    pts = simulate("step", {"step_size": 3, "gamma": 0.1}, EPOCHS, SPE, warmup * SPE, BASE, warmup_start_factor=START)
    lrs = [p.lr for p in pts]
    assert lrs[: warmup * SPE] == pytest.approx(warmup_lrs(warmup))
    # After warmup the StepLR epoch count starts at 0: three epochs at the base LR, then x0.1 ...
    for e in range(warmup, EPOCHS):
        expect = BASE * 0.1 ** ((e - warmup) // 3)
        assert lrs[e * SPE : (e + 1) * SPE] == pytest.approx([expect] * SPE), f"epoch {e}"


@pytest.mark.parametrize("warmup", [0, 1])
def test_plateau(warmup):
    # Improvement for 3 epochs, then a flat validation loss: patience 1 -> halve after 2 bad epochs.
    losses = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    pts = simulate(
        "plateau",
        {"patience": 1, "factor": 0.5},
        EPOCHS,
        SPE,
        warmup * SPE,
        BASE,
        val_losses=losses,
        warmup_start_factor=START,
    )
    lrs = per_epoch(pts)
    assert [p.lr for p in pts[: warmup * SPE]] == pytest.approx(warmup_lrs(warmup))
    # Epoch losses seen by the plateau scheduler: only those of epochs after warmup.
    expect, lr, best, bad = [], BASE, math.inf, 0
    for e in range(EPOCHS):
        expect.append(lr)
        if e < warmup:
            continue
        if losses[e] < best * (1 - 1e-4):
            best, bad = losses[e], 0
        else:
            bad += 1
            if bad > 1:
                lr, bad = lr * 0.5, 0
    assert lrs[warmup:] == pytest.approx(expect[warmup:])
    assert min(lrs) < BASE  # it did reduce


@pytest.mark.parametrize("warmup", [0, 1])
def test_cosine(warmup):
    pts = simulate("cosine", {}, EPOCHS, SPE, warmup * SPE, BASE, warmup_start_factor=START)
    lrs = [p.lr for p in pts]
    w = warmup * SPE
    assert lrs[:w] == pytest.approx(warmup_lrs(warmup))
    t_max = EPOCHS * SPE - w - 1  # the last update runs at eta_min = 0
    expect = [BASE * 0.5 * (1 + math.cos(math.pi * t / t_max)) for t in range(EPOCHS * SPE - w)]
    assert lrs[w:] == pytest.approx(expect, abs=1e-12)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["step", "plateau", "cosine"])
@pytest.mark.parametrize("warmup", [1, 2, 3])
def test_warmup_hands_over_without_jump(name, warmup):
    pts = simulate(name, {}, EPOCHS, SPE, warmup * SPE, BASE, warmup_start_factor=START)
    lrs = [p.lr for p in pts]
    w = warmup * SPE
    assert lrs[0] == pytest.approx(BASE * START)
    assert all(a < b for a, b in zip(lrs[:w], lrs[1 : w + 1])), "warmup rises monotonically"
    assert lrs[w] == pytest.approx(BASE)  # the first update after warmup runs at the base LR
    rise = (1 - START) * BASE / w
    assert lrs[w] - lrs[w - 1] == pytest.approx(rise)  # the handover is one ordinary warmup increment


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("warmup", [0, 1])
def test_every_catalog_name_runs_the_10_epoch_loop(name, warmup):
    """Every registered name and alias, with its defaults, through the same simulated loop."""
    losses = [1.0, 0.9, 0.8] + [0.8] * (EPOCHS - 3)
    pts = simulate(name, {}, EPOCHS, SPE, warmup * SPE, BASE, val_losses=losses, warmup_start_factor=START)
    lrs = [p.lr for p in pts]
    assert len(lrs) == EPOCHS * SPE and all(math.isfinite(x) and 0 <= x <= BASE * (1 + 1e-9) for x in lrs)
    if warmup:
        assert lrs[0] < lrs[SPE - 1] <= lrs[SPE] * (1 + 1e-9)  # rises to where the schedule takes over


# --- the 35 seed presets -------------------------------------------------------------------------
PIDS = sorted(PRESETS)
PE, PS = 100, 2  # the presets' reference run: 100 epochs, here of 2 updates each
PN = PE * PS


def _cos(x):
    return 0.5 * (1 + math.cos(math.pi * x))


def _cyclic(t, base, peak, mode, up=2 * PS):  # step_size_up: the entry's default, 2 epochs
    cycle = math.floor(1 + t / (2 * up))
    x = abs(t / up - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": 1.0**t}[mode]
    return base + (peak - base) * max(0.0, 1 - x) * scale


def _onecycle(t, peak, pct=0.3, anneal="cos"):
    start, end1 = peak / 25, pct * PN - 1
    low = start / 1e4
    ease = (lambda a, b, x: b + (a - b) * _cos(x)) if anneal == "cos" else (lambda a, b, x: a + (b - a) * x)
    return ease(start, peak, t / end1) if t <= end1 else ease(peak, low, (t - end1) / (PN - 1 - end1))


def _sgdr(t, t0, mult):
    while t >= t0:
        t, t0 = t - t0, t0 * mult
    return _cos(t / t0)


def _plateau_lrs(patience, factor, losses):
    """torch's ReduceLROnPlateau, written out: rel threshold 1e-4, eps 1e-8; LR of each epoch."""
    lr, best, bad, out = BASE, math.inf, 0, []
    for loss in losses:
        out.append(lr)
        if loss < best * (1 - 1e-4):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            if lr - lr * factor > 1e-8:
                lr *= factor
            bad = 0
    return out


PLATEAU_LOSSES = [1.0, 0.9, 0.8] + [0.8] * (PE - 3)


def _swa(e, anneal):
    k = min(1.0, max(0, e - 75) / 10)
    alpha = (1 - math.cos(math.pi * k)) / 2 if anneal == "cos" else k
    return 0.5 * BASE * alpha + BASE * (1 - alpha)


# LR of update t (e = its epoch) for a 100-epoch run at base LR BASE: the seed table's formula, with
# lengths in updates (per-update entries move every update; per-epoch ones at epoch ends). Per-update
# formulas reach their end value on the last update (x = t / (N - 1)), as the catalog's auto lengths do.
PRESET_FORMULAS = {
    "A0_001": lambda t, e: BASE * (1 - t / (PN - 1)),
    "A0_002": lambda t, e: BASE * (1 - t / (PN - 1)) ** 2,
    "A0_003": lambda t, e: BASE * 0.95 ** (t / PS),
    "A0_004": lambda t, e: BASE * _cos(t / (PN - 1)),
    "A0_005": lambda t, e: BASE * (1.0 if e < 50 else 0.5),
    "A0_006": lambda t, e: BASE * 0.95 ** (t / PS),
    "A0_007": lambda t, e: BASE * 0.1 ** (e // 30),
    "A0_008": lambda t, e: BASE * 0.5 ** (e // 50),
    "A0_009": lambda t, e: BASE * 0.1 ** (e // 10),
    "A0_010": lambda t, e: BASE * 0.1 ** sum(e >= m for m in (30, 60, 90)),
    "A0_011": lambda t, e: BASE * 0.1 ** sum(e >= m for m in (20, 40, 60, 80)),
    "A0_012": lambda t, e: BASE * 0.99**e,
    "A0_013": lambda t, e: BASE * (0.1 + 0.9 * min(t, 10 * PS) / (10 * PS)),
    "A0_014": lambda t, e: BASE * (0.333 if e < 5 else 1.0),
    "A0_015": lambda t, e: BASE * (1 - t / PN),
    "A0_016": lambda t, e: BASE * (1 - t / PN) ** 2,
    "A0_017": lambda t, e: BASE * (1 - t / PN) ** 4,
    "A0_018": lambda t, e: BASE * _cos(t / PN),
    "A0_019": lambda t, e: 0.001 + (BASE - 0.001) * _cos(t / PN),
    "A0_020": lambda t, e: 0.01 + (BASE - 0.01) * _cos(t / PN),
    "A0_021": lambda t, e: BASE * _sgdr(t, 5 * PS, 1),
    "A0_022": lambda t, e: BASE * _sgdr(t, 10 * PS, 2),
    "A0_023": lambda t, e: _cyclic(t, 0.001, 0.1, "triangular"),
    "A0_024": lambda t, e: _cyclic(t, 0.001, 0.1, "triangular2"),
    "A0_025": lambda t, e: _cyclic(t, 0.001, 0.1, "exp_range"),
    "A0_026": lambda t, e: _cyclic(t, 0.001, 0.01, "triangular"),
    "A0_027": lambda t, e: _onecycle(t, 0.1),
    "A0_028": lambda t, e: _onecycle(t, 0.2, pct=0.1),
    "A0_029": lambda t, e: _onecycle(t, 0.1, anneal="linear"),
    "A0_030": lambda t, e: BASE * 0.1 ** (e // 30) * _cos(t / PN),
    "A0_031": lambda t, e: BASE * (0.1 + 0.9 * t / (10 * PS) if e < 10 else (1 - (t - 10 * PS) / (90 * PS)) ** 2),
    "A0_032": lambda t, e: _plateau_lrs(5, 0.1, PLATEAU_LOSSES)[e],
    "A0_033": lambda t, e: _plateau_lrs(10, 0.5, PLATEAU_LOSSES)[e],
    "A0_034": lambda t, e: _swa(e, "cos"),
    "A0_035": lambda t, e: _swa(e, "linear"),
}


def test_the_preset_table_is_the_seed_table():
    assert PIDS == [f"A0_{i:03d}" for i in range(1, 36)] and set(PRESET_FORMULAS) == set(PIDS)
    names_ = [PRESETS[p]["name"] for p in PIDS]
    assert names_[0] == "lambda_linear" and names_[-1] == "swalr_linear" and len(set(names_)) == 35
    # Every id selects its preset; every name does too unless it is an older catalog alias (kept).
    assert set(PIDS) <= set(preset_names())
    assert {PRESETS[p]["name"] for p in PIDS} - set(preset_names()) == {"exponential", "multiplicative", "chained"}


@pytest.mark.parametrize("pid", PIDS)
def test_preset_matches_its_formula_over_100_epochs(pid):
    pts = simulate(pid, {}, PE, PS, 0, BASE, val_losses=PLATEAU_LOSSES)
    expect = [PRESET_FORMULAS[pid](t, t // PS) for t in range(PN)]
    assert [p.lr for p in pts] == pytest.approx(expect, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("pid", PIDS)
def test_preset_by_name_is_the_preset_and_runs_a_short_warmed_up_run(pid):
    name = PRESETS[pid]["name"]
    short = [p.lr for p in simulate(pid, {}, EPOCHS, SPE, SPE, BASE, warmup_start_factor=START)]
    assert len(short) == EPOCHS * SPE and all(math.isfinite(x) and x >= 0 for x in short) and max(short) > 0
    assert short[0] < short[SPE - 1] <= short[SPE] * (1 + 1e-9)  # warmup rises to the handover
    if name in preset_names():
        assert [p.lr for p in simulate(name, {}, EPOCHS, SPE, SPE, BASE, warmup_start_factor=START)] == short


def _strip(params):
    return {k: v for k, v in params.items() if k != "name"}


@pytest.mark.parametrize("pid", PIDS)
def test_preset_values_are_as_written_for_100_epochs(pid):
    resolved = resolve_params(pid, {}, epochs=100)
    for key, value in PRESETS[pid]["params"].items():
        if key == "schedulers":
            for child, want in zip(resolved[key], value):
                assert child["name"] == want["name"]
                assert resolve_params(child["name"], _strip(child)) == resolve_params(want["name"], _strip(want))
        else:
            assert resolved[key] == value, key


@pytest.mark.parametrize(
    "pid,epochs,expect",
    [
        ("A0_007", 10, {"step_size": 3, "gamma": 0.1}),  # the example
        ("A0_008", 10, {"step_size": 5, "gamma": 0.5}),
        ("A0_009", 5, {"step_size": 1}),  # 0.5 rounds half up; never below 1
        ("A0_010", 10, {"milestones": [3, 6, 9]}),
        ("A0_011", 5, {"milestones": [1, 2, 3, 4]}),
        ("A0_011", 2, {"milestones": [1, 2]}),  # milestones that round together merge
        ("A0_005", 10, {"step_size": 5.0}),
        ("A0_013", 10, {"total_iters": 1.0, "start_factor": 0.1}),
        ("A0_014", 10, {"total_iters": 1, "factor": 0.333}),
        ("A0_018", 10, {"t_max": 10.0}),
        ("A0_019", 20, {"t_max": 20.0, "eta_min": 0.001}),  # an LR is not scaled
        ("A0_021", 10, {"t_0": 0.5, "t_mult": 1}),
        ("A0_012", 10, {"gamma": 0.99}),  # a rate per epoch is not scaled
        ("A0_027", 10, {"max_lr": 0.1, "pct_start": 0.3}),
        ("A0_032", 10, {"patience": 1, "factor": 0.1}),
        ("A0_033", 30, {"patience": 3, "factor": 0.5}),
        ("A0_034", 10, {"swa_start": 8, "anneal_epochs": 1}),
        (
            "A0_031",
            10,
            {
                "milestones": [1],
                "schedulers": [
                    {"name": "LinearLR", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 1.0},
                    {"name": "PolynomialLR", "power": 2.0, "total_iters": 9.0},
                ],
            },
        ),
        (
            "A0_030",
            10,
            {
                "schedulers": [
                    {"name": "StepLR", "step_size": 3, "gamma": 0.1},
                    {"name": "CosineAnnealingLR", "t_max": 10.0},
                ]
            },
        ),
    ],
)
def test_preset_values_in_epochs_scale_with_the_run(pid, epochs, expect):
    resolved = resolve_params(pid, {}, epochs=epochs)
    assert {k: resolved[k] for k in expect} == expect


def test_a_scaled_preset_draws_the_100_epoch_curve_in_10_epochs():
    lrs = per_epoch(simulate("step_default", {}, EPOCHS, SPE, 0, BASE))
    assert lrs == pytest.approx([BASE] * 3 + [BASE * 0.1] * 3 + [BASE * 0.01] * 3 + [BASE * 0.001])


# One hyperparameter of each preset, given on the command line: it wins, unscaled (here at 10 epochs).
OVERRIDES = {
    "A0_001": ("end_factor", 0.2),
    "A0_002": ("power", 3.0),
    "A0_003": ("gamma", 0.5),
    "A0_004": ("end_factor", 0.1),
    "A0_005": ("step_size", 7.0),
    "A0_006": ("gamma", 0.5),
    "A0_007": ("step_size", 7),
    "A0_008": ("gamma", 0.2),
    "A0_009": ("step_size", 4),
    "A0_010": ("milestones", [5, 8]),
    "A0_011": ("gamma", 0.5),
    "A0_012": ("gamma", 0.9),
    "A0_013": ("total_iters", 4.0),
    "A0_014": ("total_iters", 3),
    "A0_015": ("total_iters", 6.0),
    "A0_016": ("power", 3.0),
    "A0_017": ("total_iters", 7.0),
    "A0_018": ("T_max", 4.0),
    "A0_019": ("eta_min", 0.002),
    "A0_020": ("t_max", 6.0),
    "A0_021": ("T_0", 3.0),
    "A0_022": ("T_mult", 3),
    "A0_023": ("max_lr", 0.05),
    "A0_024": ("base_lr", 0.002),
    "A0_025": ("gamma", 0.99),
    "A0_026": ("cycle_momentum", False),
    "A0_027": ("max_lr", 0.05),
    "A0_028": ("pct_start", 0.2),
    "A0_029": ("anneal_strategy", "cos"),
    "A0_030": ("schedulers", [{"name": "StepLR", "step_size": 2}]),
    "A0_031": ("milestones", [4]),
    "A0_032": ("patience", 7),
    "A0_033": ("gamma", 0.3),
    "A0_034": ("swa_start", 6),
    "A0_035": ("anneal_epochs", 4),
}


@pytest.mark.parametrize("pid", PIDS)
def test_any_scheduler_param_overrides_the_preset(pid):
    key, value = OVERRIDES[pid]
    ours = {"T_max": "t_max", "T_0": "t_0", "T_mult": "t_mult"}.get(key, key)
    if pid == "A0_033":
        ours = "factor"  # plateau's gamma is its factor
    default = resolve_params(pid, {}, epochs=EPOCHS)
    resolved = resolve_params(pid, {key: value}, epochs=EPOCHS)
    want = resolve_params(pid, {ours: value}, epochs=100)[ours]  # as given: not scaled
    assert resolved[ours] == want != default[ours]
    assert {k: v for k, v in resolved.items() if k != ours} == {k: v for k, v in default.items() if k != ours}


def test_a_preset_is_horizon_free_only_without_scaled_values():
    assert is_horizon_free("A0_012", {}) and is_horizon_free("A0_032", {"patience": 3})
    assert not is_horizon_free("A0_007", {}) and is_horizon_free("A0_007", {"step_size": 3})
    assert not is_horizon_free("A0_030", {}) and not is_horizon_free("A0_032", {})


def _run_preset(pid, cut=None):
    """LRs and momenta (both groups) of a short warmed-up run; with ``cut``, checkpoint after that many events
    through torch.save/load(weights_only=True) and continue in a fresh optimizer + schedule."""
    base = [BASE, BASE / 4]
    plan = Plan(EPOCHS, SPE, SPE)
    opt = make_optimizer(base)
    sched = build_scheduler(opt, pid, {}, plan)
    events = [ev for e in range(EPOCHS) for ev in ["u"] * SPE + [1.0 - 0.1 * min(e, 3)]]
    out = []
    for i, event in enumerate(events):
        if i == cut:
            buf = io.BytesIO()
            torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
            buf.seek(0)
            state = torch.load(buf, weights_only=True)
            opt = make_optimizer(base)
            sched = build_scheduler(opt, pid, {}, plan)
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
        if event == "u":
            out.append([(g["lr"], g["momentum"]) for g in opt.param_groups])
            opt.step()
            sched.step_update()
        else:
            sched.step_epoch(event)
    return out


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
@pytest.mark.parametrize("pid", PIDS)
def test_preset_state_round_trip_continues_exactly(pid):
    full = _run_preset(pid)
    for cut in (3, 2 * (SPE + 1) + 2, 6 * (SPE + 1)):  # in warmup, mid-epoch, at an epoch end
        assert _run_preset(pid, cut) == full, f"cut after event {cut}"
    assert build_scheduler(make_optimizer([BASE]), pid, {}, Plan(EPOCHS, SPE)).state_dict()["schedule"]["preset"] == pid


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
