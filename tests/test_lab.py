"""The lab (sweep.py as an Optuna study): search-space checks, sweep identity, --dry_run, pruning."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FAST, cli

from common.errors import UsageError

TINY = [*(("1" if prev == "--threads" else a) for prev, a in zip(["", *FAST], FAST))]


def sweep_main(*args):
    import sweep

    return sweep.main([str(a) for a in args])


@pytest.mark.parametrize(
    "text, message",
    [
        ("lerning_rate: [0.1]", "unknown config key 'lerning_rate' in --search"),
        ("batch_size: [0, 32]", "'batch_size' = 0: --batch_size must be >= 1"),
        ("scheduler: [cosine, nope]", "'scheduler' = 'nope': unknown scheduler 'nope'"),
        ("scheduler: [cosine]\nscheduler_gamma: {low: 0.1, high: 0.9}", "'scheduler_gamma': no schedule in this sweep"),
        ("seed: [1, 2]", "'seed' is set by the sweep"),
        ("lr: 0.1", "'lr' must be a list of choices or {low: A, high: B}"),
        ("lr: {low: 0, high: 0.1, log: true}", "log: true, so low must be > 0"),
        ("warmup_epochs: [0, 5]", "'warmup_epochs' = 5: --warmup_epochs 5 must be shorter than training"),
    ],
)
def test_search_space_is_checked_by_train_py_before_any_trial(tmp_path, text, message):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    with pytest.raises(UsageError, match=re.escape(message)):
        sweep_main("--search", space, "--trials", "2", "--", "--checkpoint_dir", tmp_path / "ck", "--epochs", "3")
    assert not (tmp_path / "ck").exists()  # nothing started


def test_a_search_needs_trials_and_a_grid_sampler_needs_lists(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("scheduler: [cosine, step]\nlr: {low: 1.0e-4, high: 1.0e-1, log: true}\n")
    with pytest.raises(UsageError, match="needs --trials N"):
        sweep_main("--search", space, "--", "--checkpoint_dir", tmp_path / "ck")
    with pytest.raises(UsageError, match="--sampler grid needs lists of choices only"):
        sweep_main("--search", space, "--trials", "3", "--sampler", "grid", "--", "--checkpoint_dir", tmp_path / "ck")
    with pytest.raises(UsageError, match="either --schedulers"):
        sweep_main("--search", space, "--schedulers", "step", "--trials", "3")


def test_search_suggests_a_schedules_hyperparameter_only_where_it_takes_it(tmp_path):
    import optuna

    from lab.space import load_space, run_label

    space = tmp_path / "space.yaml"
    space.write_text("scheduler_gamma: {low: 0.1, high: 0.9}\nscheduler: [cosine, step]\nbatch_size: [32, 64]\n")
    dims = load_space(space)
    assert dims.names()[0] == "scheduler"  # its hyperparameters depend on it
    step = dims.suggest(
        optuna.trial.FixedTrial({"scheduler": "step", "scheduler_gamma": 0.5, "batch_size": 32}), "cosine"
    )
    cosine = dims.suggest(
        optuna.trial.FixedTrial({"scheduler": "cosine", "scheduler_gamma": 0.5, "batch_size": 32}), "cosine"
    )
    assert step == {"scheduler": "step", "scheduler_gamma": 0.5, "batch_size": 32}
    assert cosine == {"scheduler": "cosine", "batch_size": 32}
    assert run_label({"scheduler": "step"}, "cosine") == "step"  # a grid of schedules keeps its folder names
    assert run_label(step, "cosine").startswith("step-") and run_label(step, "cosine") != run_label(
        {**step, "batch_size": 64}, "cosine"
    )


def _fake_run(folder, cfg, finished: bool) -> None:
    """A run folder as train.py leaves it: config.yaml, and summary.json (finished) or last.pt."""
    from settings.config import save_yaml

    folder.mkdir(parents=True)
    save_yaml(cfg, folder / "config.yaml")
    if finished:
        (folder / "summary.json").write_text(
            json.dumps(
                {
                    "run_dir": str(folder),
                    "best_epoch": 2,
                    "best_metric": 0.5,
                    "monitor": "val_loss",
                    "stopped_early": False,
                    "stop_reason": "",
                    "test_acc": 0.9,
                }
            )
        )
    else:
        (folder / "last.pt").write_text("")


@pytest.mark.parametrize("varied, importances", [(("scheduler",), False), (("scheduler", "lr"), True)])
def test_parameter_importances_are_drawn_only_where_two_parameters_vary(tmp_path, varied, importances):
    import optuna

    from lab.report import study_plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for i in range(4):
        params = {"scheduler": ["cosine", "step"][i % 2], "lr": 0.01 * (i + 1 if "lr" in varied else 1)}
        dists = {
            "scheduler": optuna.distributions.CategoricalDistribution(["cosine", "step"]),
            "lr": optuna.distributions.FloatDistribution(0.001, 0.1),
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(i)))
    written = study_plots(study, tmp_path)
    assert ("param_importances.png" in written) == importances == (tmp_path / "param_importances.png").is_file()
    assert {"optimization_history.png", "parallel_coordinate.png"} <= set(written)


def test_dry_run_lists_each_run_and_trains_nothing(tmp_path, capsys):
    import dataclasses

    from settings.config import parse_args

    ck = tmp_path / "ck"
    cfg, _ = parse_args(["--checkpoint_dir", str(ck), *TINY, "--epochs", "2"])
    _fake_run(ck / "s" / "step_s0", dataclasses.replace(cfg, scheduler="step", seed=0), finished=True)
    _fake_run(ck / "s" / "cosine_s0", dataclasses.replace(cfg, scheduler="cosine", seed=0), finished=False)
    assert (
        sweep_main(
            "--schedulers",
            "step",
            "cosine",
            "plateau",
            "--seeds",
            "0",
            "1",
            "--name",
            "s",
            "--dry_run",
            "--",
            "--checkpoint_dir",
            ck,
            *TINY,
            "--epochs",
            "2",
        )
        == 0
    )
    out = capsys.readouterr().out
    listed = dict(
        reversed(line.rsplit(None, 1)) for line in out.splitlines() if line.split()[-1].endswith(("_s0", "_s1"))
    )
    assert listed == {
        "step_s0": "skip (finished)",
        "cosine_s0": "resume",
        "plateau_s0": "run",
        "step_s1": "run",
        "cosine_s1": "run",
        "plateau_s1": "run",
    }
    assert "skip (finished): 1, run: 4, resume: 1; nothing trained" in out
    assert sorted(p.name for p in (ck / "s").iterdir()) == ["cosine_s0", "step_s0"]  # no study, no sweep.yaml

    # A run folder trained with other settings is never reused: one line naming the setting.
    with pytest.raises(UsageError, match=r"step_s0 was trained with other settings \(epochs=2 in its config.yaml, 3"):
        sweep_main(
            "--schedulers", "step", "--name", "s", "--dry_run", "--", "--checkpoint_dir", ck, *TINY, "--epochs", "3"
        )


def test_a_sweep_name_with_other_settings_is_refused_naming_the_first_difference(tmp_path):
    from lab.identity import check_or_write, settings_of
    from settings.config import parse_args

    ck = tmp_path / "ck"
    cfg, _ = parse_args(["--checkpoint_dir", str(ck), *TINY, "--epochs", "6"])
    check_or_write(ck / "s", "s", settings_of(cfg, ["scheduler"]), write=True)
    assert (
        "epochs: 6" in (ck / "s" / "sweep.yaml").read_text()
        and "scheduler:" not in (ck / "s" / "sweep.yaml").read_text()
    )
    with pytest.raises(UsageError, match=r"sweep 's' was run with other settings .*epochs=6 there, 3 now.*new --name"):
        sweep_main("--schedulers", "step", "--name", "s", "--", "--checkpoint_dir", ck, *TINY, "--epochs", "3")
    # The swept setting and runtime choices are not part of the identity.
    assert (
        sweep_main(
            "--schedulers",
            "cosine",
            "--name",
            "s",
            "--dry_run",
            "--",
            "--checkpoint_dir",
            ck,
            *TINY,
            "--epochs",
            "6",
            "--threads",
            "2",
        )
        == 0
    )


@pytest.mark.slow  # three configurations of two epochs as train.py subprocesses
def test_a_trial_behind_the_others_is_pruned_at_an_epoch_end_with_last_pt_and_status_pruned(tmp_path):
    """Ranked by --metric val_loss: the study minimizes, each trial's value is its run's lowest
    validation loss, pruning judges val_loss, and configurations that differ in LR (so in
    comparability key) are ranked on one board."""
    import csv

    import optuna

    from resultsdb.db import ResultsDB

    ck = tmp_path / "ck"
    space = tmp_path / "space.yaml"
    # Two LRs too small to learn anything, at both ends: whichever way the grid is walked, the last
    # trial is one of them, judged against the two finished before it (the median pruner needs 2).
    space.write_text("lr: [1.0e-7, 0.01, 2.0e-7]\n")
    args = [
        "--search",
        space,
        "--sampler",
        "grid",
        "--pruner",
        "median",
        "--metric",
        "val_loss",
        "--name",
        "p",
        "--",
        "--checkpoint_dir",
        ck,
        *TINY,
        "--epochs",
        "2",
        "--scheduler",
        "constant",
    ]
    done = cli("sweep.py", "--jobs", "1", *args, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = ck / "p"
    pruned = re.findall(r"run (\d)/3 done: (\S+)_s0 pruned at epoch 1 \| ETA", done.stdout)
    assert len(pruned) == 1 and pruned[0][0] == "3", done.stdout
    slow = sweep / f"{pruned[0][1]}_s0"
    assert "e-07" in (slow / "config.yaml").read_text()
    assert (slow / "last.pt").is_file() and not (slow / "summary.json").exists()
    with ResultsDB(ck / "results.db") as db:
        status = {r["run_dir"].rsplit("/", 1)[1]: r["status"] for r in db.query("SELECT run_dir, status FROM runs")}
        epochs = db.query(
            "SELECT COUNT(*) AS n FROM scheduler_results s JOIN runs r USING (run_id) WHERE r.status = 'pruned'"
        )
    assert sorted(status.values()) == ["finished"] * 2 + ["pruned"] and status[slow.name] == "pruned"
    assert epochs[0]["n"] == 1  # stopped at that epoch boundary
    board = (sweep / "leaderboard.md").read_text()
    assert f"- {pruned[0][1]}: pruned" in board
    ranked = re.findall(r"^\| (\S+) \| 1 \|", board, re.MULTILINE)
    assert len(ranked) == 2 and pruned[0][1] not in ranked  # the pruned trial is shown, not ranked
    for png in ("optimization_history.png", "intermediate_values.png", "parallel_coordinate.png", "val_acc.png"):
        assert (sweep / png).stat().st_size > 0
    assert not (sweep / "param_importances.png").exists()  # one parameter (the schedule) varies
    assert "3/3 runs done, 0 running" in (sweep / "progress.txt").read_text()
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{sweep / 'study.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    for t in study.trials:
        if t.state.name == "COMPLETE":
            with open(sweep / f"{t.user_attrs['label']}_s0" / "metrics.csv", newline="") as f:
                assert t.value == pytest.approx(min(float(r["val_loss"]) for r in csv.DictReader(f)))
    assert study.best_trial.params["lr"] == 0.01 and ranked[0] == study.best_trial.user_attrs["label"]
    assert "val_loss (lowest validation loss; lower is better)" in board
    assert "runs compared: sweep 'p' (settings in sweep.yaml)" in board
    again = cli("sweep.py", "--dry_run", *args)
    listed = [line.rsplit(None, 1)[0] for line in again.stdout.splitlines() if line.endswith("_s0")]
    assert sorted(listed) == ["skip (finished)", "skip (finished)", "skip (pruned)"], again.stdout
    by_accuracy = [a for a in args if a not in ("--metric", "val_loss")]
    with pytest.raises(UsageError, match="was started to minimize its metric, this --metric needs maximize"):
        sweep_main(*by_accuracy)


def test_a_signal_while_a_run_is_starting_neither_blocks_nor_misses_it(tmp_path):
    """The start of a run waits (the helper's imports, then its answer); Ctrl-C then runs the handler
    in the same thread. It must not wait for the start, and the run it started gets the signal once."""
    import signal
    import threading

    from lab.trials import Lab

    class Run:
        def __init__(self):
            self.signals = []

        def send_signal(self, sig):
            self.signals.append(sig)

        def wait(self):
            return 130 if self.signals else 0

    class Launcher:
        def parent_pid(self):
            return 1

        def start(self, argv, env, log):
            lab.handle(signal.SIGINT, None)  # arrives while this start is waiting
            self.run = Run()
            return self.run

    launch = Launcher()
    lab = Lab(setup=None, progress=None, launch=launch)
    status = []
    worker = threading.Thread(target=lambda: status.append(lab._run(["train.py"], {}, tmp_path / "log")), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the signal handler waited for the run's start"
    assert status == [130] and launch.run.signals == [signal.SIGINT]
    assert lab._run(["train.py"], {}, tmp_path / "log") == 128 + signal.SIGINT  # nothing new starts
