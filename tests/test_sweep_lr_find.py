"""sweep.py (two schedules, one seed, skip on re-run) and the LR range test (lr_find.py, --lr auto)."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch
from conftest import FAST, cli, read_csv, train

from resultsdb.db import ResultsDB

# One thread per job: the two jobs run side by side.
TINY = [*(("1" if prev == "--threads" else a) for prev, a in zip(["", *FAST], FAST)), "--epochs", "2"]


@pytest.mark.slow  # two train.py subprocesses and two sweep processes: ~15 s on an idle 2-core laptop
def test_sweep_trains_each_schedule_ranks_them_and_skips_finished_runs_on_rerun(tmp_path):
    ck = tmp_path / "ck"
    args = [
        "sweep.py",
        "--schedulers",
        "step",
        "cosine",
        "--jobs",
        "2",
        "--name",
        "s",
        "--",
        "--checkpoint_dir",
        ck,
        *TINY,
    ]
    first = cli(*args, timeout=300)
    assert first.returncode == 0, first.stderr
    sweep = ck / "s"
    progress = re.findall(r"run (\d)/2 done: (\w+)_s0 test acc \S+ \| ETA", first.stdout)  # one line per finished run
    assert sorted(n for n, _ in progress) == ["1", "2"] and sorted(s for _, s in progress) == ["cosine", "step"]
    for name in ("leaderboard.md", "leaderboard.csv", "lr.png", "val_acc.png"):
        assert (sweep / name).stat().st_size > 0
    with open(sweep / "leaderboard.csv") as f:
        board = list(csv.DictReader(f))
    tests = {s: json.loads((sweep / f"{s}_s0" / "summary.json").read_text())["test_acc"] for s in ("step", "cosine")}
    assert [r["schedule"] for r in board] == sorted(tests, key=lambda s: -tests[s])
    assert float(board[0]["mean"]) == pytest.approx(max(tests.values()), abs=1e-5)
    assert board[0]["verdict"] == "best" and "1 seed: no confidence interval; add --seeds 0 1 2" in first.stdout
    with ResultsDB(ck / "results.db") as db:
        runs = db.query("SELECT scheduler_type, status, init_weights FROM runs ORDER BY scheduler_type")
    assert [(r["scheduler_type"], r["status"]) for r in runs] == [("cosine", "finished"), ("step", "finished")]
    assert runs[0]["init_weights"] == runs[1]["init_weights"]  # same seed: same initial weights
    assert "initial weights: identical across schedules" in first.stdout

    stamp = (sweep / "step_s0" / "summary.json").stat().st_mtime_ns
    again = cli(*args, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "2 already finished, 0 to run" in again.stdout
    assert (sweep / "step_s0" / "summary.json").stat().st_mtime_ns == stamp  # not retrained
    assert "| best |" in again.stdout  # the leaderboard is printed again


def test_sweep_refuses_flags_it_sets_and_unknown_schedules(tmp_path):
    import sweep
    from common.errors import UsageError

    with pytest.raises(UsageError, match="sets --seed"):
        sweep.main(["--schedulers", "step", "--", "--seed", "3"])
    with pytest.raises(UsageError, match="unknown scheduler 'nope'"):
        sweep.main(["--schedulers", "step", "nope", "--", "--checkpoint_dir", str(tmp_path)])
    with pytest.raises(UsageError, match="train.py flags go after `--`"):
        sweep.main(["--schedulers", "step", "--epochs", "3"])
    assert not (tmp_path / "sweep").exists()  # nothing started
    from schedulers.presets import PRESETS

    listed = sweep.schedule_list(["step", "A0_002"], all_presets=True)
    assert len(listed) == 36 and set(listed) == {"step", *PRESETS} and listed[:2] == ["step", "A0_002"]


@pytest.mark.slow  # a whole LR range test
def test_lr_find_writes_csv_and_png_and_suggests_an_lr_in_range(tmp_path, capsys):
    import lr_find

    out = tmp_path / "lr"
    assert (
        lr_find.main(
            [
                "--checkpoint_dir",
                str(tmp_path / "ck"),
                *FAST,
                "--start_lr",
                "1e-5",
                "--end_lr",
                "1",
                "--num_iter",
                "40",
                "--output_dir",
                str(out),
                "--warmup_epochs",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    suggested = float(re.search(r"suggested lr: (\S+)", text).group(1))
    rows = read_csv(out / "lr_find.csv")
    assert list(rows[0]) == ["lr", "loss", "smoothed_loss"] and 20 <= len(rows) <= 40
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == pytest.approx(1e-5) and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert 1e-5 <= suggested <= 1 and "minimum/10" in text
    assert (out / "lr_find.png").stat().st_size > 0
    assert not (tmp_path / "ck").exists()  # no run folder, no checkpoint


@pytest.mark.slow  # a range test and three runs
def test_lr_auto_trains_with_the_suggestion_from_the_same_initial_weights(tmp_path, capsys):
    train(tmp_path, "--epochs", "1", "--lr", "auto", "--run_name", "auto")
    text = capsys.readouterr().out
    suggested = float(re.search(r"suggested lr: (\S+)", text).group(1))
    run = tmp_path / "ck" / "auto"
    saved = [ln for ln in (run / "config.yaml").read_text().splitlines() if ln.startswith("lr:")]
    assert float(saved[0].split(":")[1]) == pytest.approx(suggested, rel=1e-2)
    assert (run / "lr_find" / "lr_find.csv").is_file() and (run / "lr_find" / "lr_find.png").is_file()
    train(tmp_path, "--epochs", "1", "--lr", "auto", "--run_name", "auto", "--resume", "auto")  # a sweep's re-run
    assert "suggested lr" not in capsys.readouterr().out  # the resumed run keeps its LR: no second range test
    assert [ln for ln in (run / "config.yaml").read_text().splitlines() if ln.startswith("lr:")] == saved
    train(tmp_path, "--epochs", "1", "--lr", str(suggested), "--run_name", "manual")
    with ResultsDB(tmp_path / "ck" / "results.db") as db:
        rows = {r["run_dir"].rsplit("/", 1)[1]: r for r in db.query("SELECT * FROM runs")}
    hashes = {name: r["init_weights"] for name, r in rows.items()}
    assert hashes["auto"] == hashes["manual"]  # the range test trained a copy, and the RNG was restored
    # Compared as `lr: auto` (another seed's range test picks another LR), not as the LR it chose.
    from resultsdb.compare import comparability_key

    auto_config = {**json.loads(rows["auto"]["config"]), "lr": 0.5}
    assert (
        rows["auto"]["comparability_key"] == comparability_key(auto_config, run) != rows["manual"]["comparability_key"]
    )
    # Same LR, same start: the first epoch is the same as if the LR had been given by hand.
    assert (
        read_csv(run / "metrics.csv")[0]["val_acc"]
        == read_csv(tmp_path / "ck" / "manual" / "metrics.csv")[0]["val_acc"]
    )


@pytest.mark.slow
def test_ctrl_c_stops_every_job_resumably_and_the_same_command_finishes_them(tmp_path):
    """Both jobs held mid-epoch; one SIGINT to the sweep: each saves last.pt and is recorded as stopped;
    the same command again resumes both to the end without duplicating an epoch row."""
    import signal
    import time

    from conftest import Started, cli_env

    ck, marks = tmp_path / "ck", tmp_path / "marks"
    marks.mkdir()
    args = ["--schedulers", "step", "cosine", "--jobs", "2", "--name", "s", "--", "--checkpoint_dir", ck, *TINY]
    # Each job pauses at its 3rd update (epoch 1) until it is signalled, leaving marks/<pid>.
    proc = Started("sweep.py", *args, env=cli_env(faults=f"step#3=hold:{marks}/{{pid}}"))
    deadline = time.monotonic() + 120
    while len(list(marks.iterdir())) < 2:  # both jobs are inside epoch 1 now
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the two jobs did not reach their 3rd update"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, out + err
    assert out.count("stopped (resumable)") == 2 and "Run the same command again to continue" in out
    sweep = ck / "s"
    for name in ("step_s0", "cosine_s0"):
        assert (sweep / name / "last.pt").is_file() and not (sweep / name / "summary.json").exists()
    with ResultsDB(ck / "results.db") as db:
        assert {r["status"] for r in db.query("SELECT status FROM runs")} == {"stopped"}

    again = cli("sweep.py", *args, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 already finished, 2 to run" in again.stdout
    with ResultsDB(ck / "results.db") as db:
        assert {r["status"] for r in db.query("SELECT status FROM runs")} == {"finished"}
        rows = db.query("SELECT run_id, epoch, COUNT(*) AS n FROM scheduler_results GROUP BY run_id, epoch")
    assert len(rows) == 4 and all(r["n"] == 1 for r in rows)  # 2 runs x 2 epochs, each once


def test_lr_range_test_shares_the_cores_between_ranks_as_training_does(tmp_path, monkeypatch):
    """Under torchrun, --num_workers -1 means this rank's share of the cores, in the range test too."""
    import dataclasses

    import engine.lr_finder as lr_finder
    from data import prepare_data
    from settings.config import parse_args

    asked = []
    monkeypatch.setattr(lr_finder.ddp, "workers_per_rank", lambda n: asked.append(n) or 3)
    real = lr_finder.make_loader
    seen = {}

    def spy(split, batch_size, feed, **kwargs):
        seen["num_workers"] = feed.num_workers
        return real(split, batch_size, dataclasses.replace(feed, num_workers=0), **kwargs)

    monkeypatch.setattr(lr_finder, "make_loader", spy)
    from runtime.runtime import amp_policy

    cfg, _ = parse_args([*FAST, "--num_workers", "-1"])
    cpu = torch.device("cpu")
    lr_finder.lr_range_test(cfg, prepare_data(cfg), cpu, amp_policy(False, "auto", cpu), num_iter=3)
    assert asked == [-1] and seen["num_workers"] == 3
