"""The six established configurations -- step / plateau / cosine, each with and without warmup --
through a simulated 10-epoch loop, asserting the LR used by every update -- and every name in the
catalog (aliases included) through the same loop.

Run alone with ``python test_schedulers.py``; pytest collects it too. The whole catalog is tested
in ``tests/test_scheduler_catalog.py``.
"""
from __future__ import annotations

import math

import pytest

from schedulers import names
from schedulers.simulate import simulate

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
    assert lrs[:warmup * SPE] == pytest.approx(warmup_lrs(warmup))
    # After warmup the StepLR epoch count starts at 0: three epochs at the base LR, then x0.1 ...
    for e in range(warmup, EPOCHS):
        expect = BASE * 0.1 ** ((e - warmup) // 3)
        assert lrs[e * SPE:(e + 1) * SPE] == pytest.approx([expect] * SPE), f"epoch {e}"


@pytest.mark.parametrize("warmup", [0, 1])
def test_plateau(warmup):
    # Improvement for 3 epochs, then a flat validation loss: patience 1 -> halve after 2 bad epochs.
    losses = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    pts = simulate("plateau", {"patience": 1, "factor": 0.5}, EPOCHS, SPE, warmup * SPE, BASE,
                   val_losses=losses, warmup_start_factor=START)
    lrs = per_epoch(pts)
    assert [p.lr for p in pts[:warmup * SPE]] == pytest.approx(warmup_lrs(warmup))
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
    assert all(a < b for a, b in zip(lrs[:w], lrs[1:w + 1])), "warmup rises monotonically"
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


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
