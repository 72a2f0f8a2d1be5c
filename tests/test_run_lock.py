"""One writer per run folder (common/runlock.py): a second writer is refused at once, nothing mixes.

The concurrency test starts two real ``train.py --run_name same --resume auto`` with different
``--lr``: the first pauses at its first update (a common/faults.py ``pause``) once it holds the
lock, the second is started then and must exit 2 naming the folder and the first one's pid; after
the first is let go, every file of the run is from the first one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from catalogue_util import assert_refused
from conftest import FAST, ROOT, Started, cli, cli_env, read_csv, wait_for_file

from common.runlock import LOCK_NAME, RunLock, RunLocked, holder_pid, is_locked


def test_lock_probe_and_release(tmp_path):
    folder = tmp_path / "run"
    assert holder_pid(folder) is None and not is_locked(folder)
    with RunLock(folder) as lock:
        assert lock.held and is_locked(folder)
        with RunLock(folder):  # the same process again (an in-process sweep job, then fit): no deadlock
            pass
        assert is_locked(folder)  # the inner release left the outer lock in place
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from common.runlock import *\n"
                f"try: RunLock({str(folder)!r}).acquire()\n"
                "except RunLocked as e: print(e.pid); sys.exit(e.exit_code)",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert other.returncode == 2 and other.stdout.strip() == str(holder_pid(folder))
    assert not is_locked(folder) and (folder / LOCK_NAME).read_text() == ""


def test_a_dead_holder_leaves_no_lock(tmp_path):
    folder = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import os; from common.runlock import RunLock\nRunLock({str(folder)!r}).acquire(); os._exit(9)",
        ],
        cwd=ROOT,
    )
    assert done.returncode == 9 and (folder / LOCK_NAME).read_text().strip()  # its pid is still written
    assert not is_locked(folder)
    RunLock(folder).acquire().release()


def test_wait_blocks_until_the_holder_ends(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from common.runlock import RunLock\n"
            f"RunLock({str(folder)!r}).acquire(); print('held', flush=True); sys.stdin.readline()",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert holder_pid(folder) == holder.pid
        holder.stdin.write("go\n")  # the holder ends; the blocking acquire returns only after that
        holder.stdin.flush()
        with RunLock(folder).acquire(wait=True):
            assert holder.poll() is not None or holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()


def test_refusal_names_folder_and_pid(tmp_path):
    err = RunLocked(tmp_path / "r", 4242)
    assert err.exit_code == 2 and str(tmp_path / "r") in str(err) and "process 4242" in str(err)


@pytest.mark.slow  # two real train.py processes
def test_two_trainings_on_one_run_name_never_mix(tmp_path):
    run_dir = tmp_path / "ck" / "same"
    marker = tmp_path / "first_paused"
    common = [
        "train.py",
        "--checkpoint_dir",
        tmp_path / "ck",
        "--run_name",
        "same",
        "--resume",
        "auto",
        *FAST,
        "--threads",
        "1",
        "--epochs",
        "2",
        "--results_db",
        "none",
    ]
    first = Started(*common, "--lr", "0.003", env=cli_env(f"step#1=pause:{marker}"))
    try:
        wait_for_file(marker, first)  # the first holds the lock and has started training
        second = cli(*common[:1], *common[1:], "--lr", "0.02")
        line = assert_refused(second, codes=(2,), says=(str(run_dir), f"process {first.pid}"))
        assert "Traceback" not in line
        marker.unlink()
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert "starting the run fresh" in out and "starting" not in second.stdout
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["lr"] == 0.003
    from artifacts.checkpoint import load_checkpoint

    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(run_dir / name)["config"]["lr"] == 0.003
    assert [int(r["epoch"]) for r in read_csv(run_dir / "metrics.csv")] == [1, 2]
    assert (run_dir / "summary.json").is_file() and not is_locked(run_dir)
