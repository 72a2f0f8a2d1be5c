"""torch's own argument names and semantics: aliases, plateau's gamma/mode/threshold_mode/eps,
CyclicLR/OneCycleLR max_lr/base_lr and their momentum cycling (SGD momentum, Adam(W) beta1) --
compared with torch's classes driven directly -- and exact resumes, presets included, in real runs."""

from __future__ import annotations

import io

import pytest
import torch
from torch.optim import lr_scheduler as tls

import plot_schedule
from artifacts.checkpoint import load_checkpoint
from common.errors import UsageError
from engine.setup import replay_schedule
from schedulers import Plan, build_scheduler, resolve_params
from schedulers.simulate import make_optimizer, simulate

E, S, LR = 4, 5, 0.1


@pytest.mark.parametrize(
    "name,theirs,ours",
    [
        ("CosineAnnealingLR", {"T_max": 3, "eta_min": 0.01}, {"t_max": 3, "eta_min": 0.01}),
        ("cosine", {"T_max": 2.5}, {"t_max": 2.5}),
        ("CosineAnnealingWarmRestarts", {"T_0": 2, "T_mult": 2}, {"t_0": 2, "t_mult": 2}),
        ("plateau", {"gamma": 0.3, "patience": 5}, {"factor": 0.3, "patience": 5}),
        ("plateau", {"mode": "min", "threshold_mode": "abs", "eps": 1e-6}, None),
        (
            "SequentialLR",
            {"schedulers": [{"name": "cosine", "T_max": 2}, {"name": "plateau", "gamma": 0.5}], "milestones": [2]},
            None,
        ),
    ],
)
def test_torch_names_are_aliases_of_ours(name, theirs, ours):
    resolved = resolve_params(name, theirs)
    if ours is not None:
        assert resolved == resolve_params(name, ours)
    assert simulate(name, theirs, E, S) == simulate(name, ours or theirs, E, S)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("cosine", {"T_max": 3, "t_max": 3}, "given twice"),
        ("plateau", {"gamma": 0.5, "factor": 0.5}, "given twice"),
        (
            "cosine",
            {"t_mx": 3},
            r"no hyperparameter 't_mx' \(did you mean 'T_max'\?\); valid: eta_min, t_max, T_max \(= t_max\)",
        ),
        ("CyclicLR", {"scale_fn": "x"}, "valid: base_factor, base_lr, base_momentum, cycle_momentum"),
        ("onecycle", {"T_max": 3}, "no hyperparameter 'T_max'"),
        ("plateau", {"mode": "up"}, "valid: min, max"),
        ("cyclic", {"base_lr": 0.5, "max_lr": 0.1}, "above its peak"),
    ],
)
def test_anything_else_is_refused_with_the_valid_names(name, params, message):
    with pytest.raises(UsageError, match=message):
        simulate(name, params, E, S)


def test_the_seed_plateau_command_multiplies_by_gamma(tmp_path):
    out = tmp_path / "p.csv"
    plot_schedule.main(
        [
            "--scheduler",
            "plateau",
            "--scheduler_patience",
            "0",
            "--scheduler_gamma",
            "0.3",
            "--warmup_epochs",
            "1",
            "--lr",
            "0.1",
            "--epochs",
            "4",
            "--steps_per_epoch",
            "2",
            "--val_losses",
            "1,1,1,1",
            "--csv",
            str(out),
        ]
    )
    lrs = [float(line.split(",")[2]) for line in out.read_text().splitlines()[1:]]
    # Warmup epoch 1; epoch 2 sets the best; epoch 3 does not improve (patience 0): x 0.3 for epoch 4.
    assert lrs[2:] == pytest.approx([0.1] * 4 + [0.03] * 2)


def _plateau_lrs(params, monitor, metrics):
    opt = make_optimizer([LR])
    sched = build_scheduler(opt, "plateau", params, Plan(len(metrics), 1, 0, monitor))
    lrs = []
    for m in metrics:
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step_update()
        sched.step_epoch(m)
    return lrs, sched.inner


def test_plateau_follows_the_monitored_metric():
    rising = [0.5, 0.6, 0.7, 0.8]  # validation accuracy improving every epoch
    lrs, inner = _plateau_lrs({"patience": 0}, "val_acc", rising)
    assert inner.mode == "max" and lrs == [LR] * 4  # never reduced
    lrs, inner = _plateau_lrs({"patience": 0}, "val_loss", rising)  # as a loss, each epoch is worse
    assert inner.mode == "min" and lrs == pytest.approx([LR, LR, LR / 10, LR / 100])
    with pytest.raises(UsageError, match="contradicts --monitor val_acc"):
        _plateau_lrs({"mode": "min"}, "val_acc", rising)


def test_replayed_plateau_decides_on_the_monitored_metric_like_the_live_run():
    # A resume with another world size replays finished epochs from the history (engine/setup.py).
    history = [{"val_loss": 0.8 - 0.1 * i, "val_acc": 0.5 + 0.1 * i} for i in range(4)]  # both improving
    live, _ = _plateau_lrs({"patience": 0}, "val_acc", [row["val_acc"] for row in history])
    opt = make_optimizer([LR])
    sched = build_scheduler(opt, "plateau", {"patience": 0}, Plan(4, 1, 0, "val_acc"))
    replay_schedule(sched, 1, history, "val_acc")
    # Fed val_loss, the schedule (mode max for val_acc) would see it fall and cut the LR 3 times.
    assert opt.param_groups[0]["lr"] == live[-1] == LR


def test_a_plateau_run_cannot_resume_with_the_other_metric():
    opt = make_optimizer([LR])
    state = build_scheduler(opt, "plateau", {}, Plan(3, 1, 0, "val_loss")).state_dict()
    build_scheduler(make_optimizer([LR]), "plateau", {}, Plan(3, 1, 0, "val_loss")).load_state_dict(state)
    with pytest.raises(UsageError, match="stepped with val_loss .mode min.; resume it with --monitor val_loss"):
        build_scheduler(make_optimizer([LR]), "plateau", {}, Plan(3, 1, 0, "val_acc")).load_state_dict(state)


def test_plateau_threshold_mode_and_eps_reach_torch():
    # abs threshold 0.05: improvements of 0.01 do not count, so the LR drops; with rel 1e-4 they count.
    # eps 0.05: the cut 0.1 -> 0.01 happens, the cut 0.01 -> 0.001 (a change of 0.009) is skipped.
    small = [1.0, 0.99, 0.98, 0.97]
    lrs, inner = _plateau_lrs(
        {"patience": 0, "threshold_mode": "abs", "threshold": 0.05, "eps": 0.05}, "val_loss", small
    )
    assert (inner.threshold_mode, inner.eps) == ("abs", 0.05) and lrs == pytest.approx([LR, LR, LR / 10, LR / 10])
    assert _plateau_lrs({"patience": 0}, "val_loss", small)[0] == [LR] * 4


def _drive(step, opt, n, group_key):
    """(LR, momentum or beta1) of group 0 for each of ``n`` updates; ``step`` advances the schedule."""
    out = []
    for _ in range(n):
        g = opt.param_groups[0]
        out.append((g["lr"], g["momentum"] if group_key == "momentum" else g["betas"][0]))
        opt.step()
        step()
    return out


def _opt(kind, lr=LR):
    p = [torch.nn.Parameter(torch.zeros(2))]
    return torch.optim.SGD(p, lr=lr, momentum=0.9) if kind == "sgd" else torch.optim.AdamW(p, lr=lr)


CYCLIC = {
    "base_lr": 0.01,
    "max_lr": 0.2,
    "step_size_up": 1,
    "mode": "triangular2",
    "cycle_momentum": True,
    "base_momentum": 0.7,
    "max_momentum": 0.95,
}
ONECYCLE = {"max_lr": 0.2, "pct_start": 0.25, "cycle_momentum": True, "base_momentum": 0.8, "max_momentum": 0.9}


@pytest.mark.parametrize("kind,key", [("sgd", "momentum"), ("adamw", "betas")])
@pytest.mark.parametrize("name", ["CyclicLR", "OneCycleLR"])
def test_momentum_cycles_as_torch_with_max_lr(name, kind, key, capsys):
    n = E * S
    params = CYCLIC if name == "CyclicLR" else ONECYCLE

    def torch_sched(o):
        if name == "CyclicLR":
            return tls.CyclicLR(
                o, base_lr=0.01, max_lr=0.2, step_size_up=S, mode="triangular2", base_momentum=0.7, max_momentum=0.95
            )
        return tls.OneCycleLR(o, max_lr=0.2, total_steps=n, pct_start=0.25, base_momentum=0.8, max_momentum=0.9)

    opt = _opt(kind)
    ours = _drive(build_scheduler(opt, name, params, Plan(E, S)).step_update, opt, n, key)
    assert f"note: {name} max_lr 0.2 is the peak LR; it overrides --lr 0.1" in capsys.readouterr().out
    opt = _opt(kind)
    theirs = _drive(torch_sched(opt).step, opt, n, key)
    assert ours == theirs
    moms = [m for _, m in ours]
    assert min(moms) < max(moms)  # cycled for real
    lrs = [lr for lr, _ in ours]
    assert max(lrs) == pytest.approx(0.2)


def test_momentum_is_left_alone_unless_asked():
    opt = _opt("adamw")
    sched = build_scheduler(opt, "onecycle", {}, Plan(E, S))
    for _ in range(E * S):
        opt.step()
        sched.step_update()
    assert opt.param_groups[0]["betas"][0] == 0.9


def test_onecycle_epochs_times_steps_per_epoch_is_its_length():
    ours = [p.lr for p in simulate("onecycle", {"epochs": E + 1, "steps_per_epoch": S}, E, S, base_lr=LR)]
    opt = make_optimizer([LR])
    ref = tls.OneCycleLR(opt, max_lr=LR, epochs=E + 1, steps_per_epoch=S, cycle_momentum=False)
    theirs = []
    for _ in range(E * S):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == theirs
    with pytest.raises(UsageError, match="lasts 15 updates but this run has 20"):
        simulate("onecycle", {"epochs": 3}, E, S)


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("name,params", [("CyclicLR", CYCLIC), ("OneCycleLR", ONECYCLE)])
def test_momentum_cycling_resumes_bit_for_bit(name, params, kind):
    """A tiny model trained 12 updates straight, or 5 + checkpoint (weights_only) + 7 in fresh objects."""

    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        opt = (
            torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
            if kind == "sgd"
            else torch.optim.AdamW(model.parameters(), lr=LR)
        )
        return model, opt, build_scheduler(opt, name, params, Plan(3, 4, 2))

    x, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1] * 4)

    def train(model, opt, sched, steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step_update()

    straight = fresh()
    train(*straight, 12)
    model, opt, sched = fresh()
    train(model, opt, sched, 5)
    buf = io.BytesIO()
    torch.save({"m": model.state_dict(), "o": opt.state_dict(), "s": sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    model, opt, sched = fresh()  # building the schedule resets momentum to its max: the checkpoint must win
    model.load_state_dict(state["m"])
    opt.load_state_dict(state["o"])
    sched.load_state_dict(state["s"])
    train(model, opt, sched, 7)
    for a, b in zip(straight[0].parameters(), model.parameters()):
        assert torch.equal(a, b)
    key = "momentum" if kind == "sgd" else "betas"
    assert opt.param_groups[0][key] == straight[1].param_groups[0][key]


def test_a_preset_run_resumes_exactly_and_records_what_it_resolved_to(run_train, tmp_path):
    """SGD + onecycle_default (max_lr 0.1, momentum cycled): 2 epochs straight, or resumed from epoch 1's
    checkpoint into another run folder -- the same weights bit for bit."""
    args = ["--epochs", "2", "--scheduler", "onecycle_default", "--optimizer", "sgd", "--threads", "1"]
    run_train(*args, "--run_name", "a", "--save_every", "1")
    run_train("--resume", str(tmp_path / "ck" / "a" / "epoch_001.pt"), "--run_name", "b", "--threads", "1")
    a, b = load_checkpoint(tmp_path / "ck" / "a" / "last.pt"), load_checkpoint(tmp_path / "ck" / "b" / "last.pt")
    assert b["config"]["scheduler"] == "onecycle_default"
    for key, w in a["model"].items():
        assert torch.equal(w, b["model"][key]), key
    assert a["optimizer"]["param_groups"][0]["momentum"] == b["optimizer"]["param_groups"][0]["momentum"]
    record = b["scheduler"]["schedule"]
    assert record["scheduler"] == "OneCycleLR" and record["preset"] == "A0_027"
    assert record["params"]["max_lr"] == 0.1 and record["params"]["cycle_momentum"] is True


def test_plateau_in_training_is_stepped_with_val_acc(run_train, tmp_path):
    run_train("--epochs", "1", "--scheduler", "A0_032", "--monitor", "val_acc", "--run_name", "p")
    last = load_checkpoint(tmp_path / "ck" / "p" / "last.pt")
    inner = last["scheduler"]["inner"]
    assert inner["mode"] == "max"
    assert inner["best"] == pytest.approx(max(r["val_acc"] for r in last["history"]))
