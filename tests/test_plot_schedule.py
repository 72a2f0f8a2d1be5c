"""plot_schedule.py: the CLI of the issue, CSV rows equal to the simulated training LRs, the catalog."""

from __future__ import annotations

import pytest
from conftest import read_csv

import plot_schedule
from common.errors import UsageError
from schedulers import PRESETS, SCHEDULES
from schedulers.simulate import simulate


def test_csv_is_one_row_per_update_with_the_training_lrs(tmp_path, capsys):
    out = tmp_path / "lr.csv"
    plot_schedule.main(
        [
            "--scheduler",
            "step",
            "--scheduler_step_size",
            "2",
            "--scheduler_gamma",
            "0.5",
            "--warmup_epochs",
            "1.5",
            "--warmup_mode",
            "cosine",
            "--warmup_start_factor",
            "0.1",
            "--lr",
            "0.2",
            "--epochs",
            "5",
            "--steps_per_epoch",
            "4",
            "--csv",
            str(out),
        ]
    )
    rows = read_csv(out)
    assert out.read_text().splitlines()[0] == "step,epoch,lr"
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert [int(r["epoch"]) for r in rows] == [e for e in range(1, 6) for _ in range(4)]
    expect = simulate(
        "step", {"step_size": 2, "gamma": 0.5}, 5, 4, 6, 0.2, warmup_mode="cosine", warmup_start_factor=0.1
    )
    assert [float(r["lr"]) for r in rows] == [p.lr for p in expect]
    assert "wrote" in capsys.readouterr().out


def test_metric_schedule_reads_val_losses_and_compare_draws_png(tmp_path):
    out, png = tmp_path / "p.csv", tmp_path / "p.png"
    plot_schedule.main(
        [
            "--scheduler",
            "plateau",
            "--scheduler_patience",
            "0",
            "--scheduler_factor",
            "0.5",
            "--epochs",
            "4",
            "--steps_per_epoch",
            "2",
            "--val_losses",
            "1,0.9,0.95,0.95",
            "--csv",
            str(out),
            "--png",
            str(png),
            "--compare",
            "cosine",
            "hf_linear",
            "SequentialLR",
        ]
    )
    lrs = [float(r["lr"]) for r in read_csv(out)]
    base = 0.003
    assert lrs == pytest.approx([base] * 6 + [base / 2] * 2)  # epoch 3 did not improve: halved for epoch 4
    assert png.stat().st_size > 1000


def test_composition_from_the_command_line(tmp_path):
    out = tmp_path / "s.csv"
    plot_schedule.main(
        [
            "--scheduler",
            "SequentialLR",
            "--scheduler_schedulers",
            "[{name: LinearLR, start_factor: 0.5, end_factor: 1.0, total_iters: 2}, {name: plateau}]",
            "--scheduler_milestones",
            "[2]",
            "--epochs",
            "4",
            "--steps_per_epoch",
            "2",
            "--csv",
            str(out),
        ]
    )
    lrs = [float(r["lr"]) for r in read_csv(out)]
    assert lrs == pytest.approx([0.0015, 0.001875, 0.00225, 0.002625, 0.003, 0.003, 0.003, 0.003])


def test_list_names_every_schedule_and_markdown_is_a_table(capsys):
    plot_schedule.main(["--list"])
    text = capsys.readouterr().out
    assert all(name in text for name in SCHEDULES) and "--scheduler_patience" in text
    plot_schedule.main(["--list", "--markdown"])
    catalog, presets = capsys.readouterr().out.strip().split("\n\n")
    assert catalog.startswith("| name") and len(catalog.splitlines()) == 2 + len(SCHEDULES)
    assert presets.startswith("| id") and len(presets.splitlines()) == 2 + len(PRESETS)


def test_list_shows_torch_names_and_the_presets_in_their_own_section(capsys):
    plot_schedule.main(["--list"])
    catalog, _, presets = capsys.readouterr().out.partition("\nPresets:")
    for alias, ours in [("T_max", "t_max"), ("T_0", "t_0"), ("T_mult", "t_mult"), ("gamma", "factor")]:
        assert f"--scheduler_{alias:<16} torch's name for --scheduler_{ours}" in catalog
    for torch_name in (
        "max_lr",
        "base_lr",
        "cycle_momentum",
        "base_momentum",
        "max_momentum",
        "threshold_mode",
        "eps",
        "steps_per_epoch",
        "mode",
    ):
        assert f"--scheduler_{torch_name} " in catalog
    assert "100-epoch run" in presets and "step_size 30 becomes 3 with --epochs 10" in presets
    assert all(pid in presets for pid in PRESETS) and "A0_035 swalr_linear" in presets
    assert "A0_012 (exponential*)" in presets  # the catalog's older alias keeps the name


def test_a_preset_with_a_torch_alias_override_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "c.csv"
    plot_schedule.main(
        [
            "--scheduler",
            "cosine_min",
            "--scheduler_T_max",
            "2",
            "--lr",
            "0.1",
            "--epochs",
            "10",
            "--steps_per_epoch",
            "2",
            "--csv",
            str(out),
        ]
    )
    lrs = [float(r["lr"]) for r in read_csv(out)]
    assert lrs == [p.lr for p in simulate("cosine", {"t_max": 2, "eta_min": 0.001}, 10, 2, base_lr=0.1)]
    assert lrs[4] == pytest.approx(0.001)  # T_max 2 epochs as given, not scaled to the 10-epoch run


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--scheduler", "cosin", "--epochs", "2", "--steps_per_epoch", "3"], "did you mean 'cosine'"),
        (["--scheduler", "cosine", "--epochs", "2", "--steps_per_epoch", "0"], "--steps_per_epoch must be >= 1"),
        (["--lr", "auto"], "needs training data"),
        (["--warmup_mode", "cosin"], r"unknown --warmup_mode 'cosin' \(did you mean 'cosine'\?\)"),
        (["--monitor", "val_accuracy"], r"unknown --monitor 'val_accuracy' \(did you mean 'val_acc'\?\)"),
        (
            ["--scheduler", "cosine", "--scheduler_gamma", "0.5", "--epochs", "2", "--steps_per_epoch", "3"],
            "no hyperparameter 'gamma'",
        ),
        (
            [
                "--scheduler",
                "cosine",
                "--epochs",
                "2",
                "--steps_per_epoch",
                "3",
                "--warmup_epochs",
                "1",
                "--warmup_steps",
                "2",
            ],
            "not both",
        ),
        (
            ["--scheduler", "cosine", "--epochs", "2", "--steps_per_epoch", "3", "--compare", "nope"],
            "unknown scheduler 'nope'",
        ),
        (["--scheduler", "cosine", "--epochs", "2", "--steps_per_epoch", "3", "--bogus", "1"], "unrecognized argument"),
    ],
)
def test_errors_are_one_line_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        plot_schedule.main(argv)


def test_compare_prints_a_summary_for_every_schedule(capsys):
    plot_schedule.main(
        ["--scheduler", "step", "--compare", "cosine", "plateau", "--epochs", "3", "--steps_per_epoch", "1"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["step", "cosine", "plateau"]
    assert all("3 updates, LR first 0.003" in line for line in lines)


def test_defaults_are_the_default_training_run(capsys):
    """No flag at all: the default run's schedule (cosine, 15 epochs) at the default run's updates per epoch."""
    from data import prepare_data
    from engine.setup import steps_per_epoch
    from settings.config import Config

    cfg = Config()
    assert plot_schedule.DEFAULT_STEPS_PER_EPOCH == steps_per_epoch(
        len(prepare_data(cfg).train), cfg.batch_size, cfg.accum_steps
    )
    plot_schedule.main([])
    assert capsys.readouterr().out.startswith(f"{cfg.scheduler}: {cfg.epochs * 20} updates")


def test_shared_flags_are_train_py_s():
    """Same flags, help text and defaults as train.py: one definition, no second choice list."""
    from settings.config import build_parser

    ours = {a.dest: a for a in plot_schedule.get_args_parser()._actions}
    train = {a.dest: a for a in build_parser()._actions}
    for name in plot_schedule.SHARED:
        assert ours[name].help == train[name].help and ours[name].choices is None


def test_overlay_keeps_every_curve_visible_with_epochs_from_1():
    from schedulers.simulate import simulate

    names = ["cosine", "step", "plateau", "onecycle", "hf_linear", "warmup_stable_decay", "sgdr", "constant", "linear"]
    curves = {n: simulate(n, {}, 4, 5, base_lr=0.1) for n in names}
    fig = plot_schedule.figure(curves, "t", 5, 4)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(names)
    styles = {(line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(styles) == len(names)  # no two curves drawn alike
    widths = [line.get_linewidth() for line in lines]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]  # a later curve never covers one
    assert min(min(line.get_xdata()) for line in lines) == 1 and ax.get_xlim() == (1, 5)
    legend_box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert legend_box.x0 >= ax.get_window_extent().x1  # beside the axes, not over the curves


def test_log_y_draws_decays_on_a_log_axis(tmp_path):
    from schedulers.simulate import simulate

    curves = {n: simulate(n, {}, 6, 2, base_lr=0.1) for n in ("cosine", "step")}
    assert plot_schedule.figure(curves, "t", 2, 6).axes[0].get_yscale() == "linear"
    assert plot_schedule.figure(curves, "t", 2, 6, log_y=True).axes[0].get_yscale() == "log"
    png = tmp_path / "log.png"
    plot_schedule.main(["--compare", "step", "--log_y", "--png", str(png)])  # cosine's final 0 is masked
    assert png.stat().st_size > 1000


def test_docs_catalog_table_is_the_generated_one():
    from pathlib import Path

    from schedulers.listing import catalog_markdown, presets_markdown

    page = (Path(__file__).resolve().parents[1] / "docs" / "schedules.md").read_text()
    assert catalog_markdown() in page, "regenerate it: python plot_schedule.py --list --markdown"
    assert presets_markdown() in page, "regenerate it: python plot_schedule.py --list --markdown"
