"""The lab on a real PostgreSQL server (tests/pg.py): several workers on one study, a worker killed
mid-trial, a server restart, and the results database on the server."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from conftest import Started, cli, cli_env
from test_lab import TINY

pytestmark = pytest.mark.slow  # whole sweeps as subprocesses against a server


def sweep_cmd(*args) -> list[str]:
    return ["sweep.py", *map(str, args)]


def study_trials(url: str, name: str):
    import optuna

    from lab.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)


def trained_times(folder) -> int:
    """How often train.py was started on this run folder (each start logs its command line)."""
    return (folder / "train.log").read_text().count("\n$ ")


def test_two_workers_share_one_study_and_no_run_is_trained_twice(tmp_path, pg_server):
    study_url, results_url = pg_server.new_database(), pg_server.new_database()
    ck = tmp_path / "ck"
    cmd = sweep_cmd(
        "--schedulers",
        "step",
        "cosine",
        "constant",
        "--jobs",
        "1",
        "--name",
        "two",
        "--storage",
        study_url,
        "--",
        "--checkpoint_dir",
        ck,
        *TINY,
        "--epochs",
        "2",
        "--results_db",
        results_url,
    )
    workers = [Started(*cmd) for _ in range(2)]  # two machines, as far as the study can tell
    outs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    names = ["step_s0", "cosine_s0", "constant_s0"]
    for name in names:
        assert trained_times(ck / "two" / name) == 1 and (ck / "two" / name / "summary.json").is_file()
    done = [line for out, _ in outs for line in out.splitlines() if " done: " in line]
    assert sorted(line.split(" done: ")[1].split()[0] for line in done) == sorted(names)  # each run once, in all
    complete = [t for t in study_trials(study_url, "two") if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["label"] for t in complete) == ["constant", "cosine", "step"]

    # Every machine sees every run: the results database is the server's.
    best = cli("results.py", "best", "--results_db", results_url, "--format", "json")
    assert best.returncode == 0, best.stderr
    ranked = json.loads(best.stdout)["rows"]
    assert [r["runs"] for r in ranked] == [1, 1, 1] and ranked[0]["schedule"] in ("step", "cosine", "constant")
    # The same run folders imported into PostgreSQL and into SQLite answer `best` alike.
    answers = []
    for url in (pg_server.new_database(), f"sqlite:///{tmp_path / 'same.db'}"):
        assert cli("results.py", "import", ck / "two", "--results_db", url).returncode == 0
        answers.append(cli("results.py", "best", "--top", "3", "--results_db", url, "--format", "json").stdout)
    assert json.loads(answers[0]) == json.loads(answers[1]) and len(json.loads(answers[0])["rows"]) == 3
    assert json.loads(answers[0])["rows"][0]["schedule"] == ranked[0]["schedule"]


def test_a_worker_killed_mid_trial_has_its_trial_failed_by_heartbeat_and_resumed_by_another(tmp_path, pg_server):
    url = pg_server.new_database()
    ck, marks = tmp_path / "ck", tmp_path / "marks"
    marks.mkdir()
    cmd = sweep_cmd(
        "--schedulers",
        "step",
        "--jobs",
        "1",
        "--name",
        "k",
        "--storage",
        url,
        "--",
        "--checkpoint_dir",
        ck,
        *TINY,
        "--epochs",
        "2",
    )
    env = {**cli_env(faults=f"step#3=hold:{marks}/{{pid}}"), "IMGCLF_HEARTBEAT_S": "1"}
    first = Started(*cmd, env=env)
    deadline = time.monotonic() + 300
    while not list(marks.iterdir()):  # the run is inside epoch 1
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    child = int(next(marks.iterdir()).name)
    first.send_signal(signal.SIGKILL)  # the worker dies without a word; its run notices and saves last.pt
    first.communicate()
    run = ck / "k" / "step_s0"
    deadline = time.monotonic() + 60
    while _alive(child) or not (run / "last.pt").is_file():
        assert time.monotonic() < deadline, "the orphaned run did not stop with last.pt saved"
        time.sleep(0.05)

    second = Started(*cmd, env={**cli_env(), "IMGCLF_HEARTBEAT_S": "1"})
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, out + err
    trials = study_trials(url, "k")
    assert trials[0].state.name == "FAIL"  # failed by the heartbeat, not by anyone's hand
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 1 and complete[0].system_attrs.get("failed_trial") == 0  # Optuna's retry, counted once
    log = (run / "train.log").read_text()
    assert trained_times(run) == 2 and "resuming" in log  # the second worker continued the saved run
    assert (run / "summary.json").is_file() and "| step | 1 |" in out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_server_restarting_between_trials_loses_nothing(tmp_path, pg_server):
    url = pg_server.new_database()
    ck = tmp_path / "ck"
    cmd = sweep_cmd(
        "--schedulers",
        "step",
        "cosine",
        "--jobs",
        "1",
        "--name",
        "r",
        "--storage",
        url,
        "--",
        "--checkpoint_dir",
        ck,
        *TINY,
        "--epochs",
        "2",
    )
    proc = Started(*cmd)
    lines = []
    for line in proc.lines(timeout=300):  # the first trial is finished and recorded
        lines.append(line)
        if "run 1/2 done" in line:
            break
    pg_server.restart()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, "".join(lines) + out + err
    assert sorted(t.user_attrs["label"] for t in study_trials(url, "r") if t.state.name == "COMPLETE") == [
        "cosine",
        "step",
    ]
    # The trial whose end the restart cut off was failed and re-queued by its own worker (not left
    # RUNNING for the heartbeat), and its finished run reused, not counted again.
    assert not re.search(r"run 3/2 done", out) and (ck / "r" / "cosine_s0" / "train.log").read_text().count("\n$ ") == 1
