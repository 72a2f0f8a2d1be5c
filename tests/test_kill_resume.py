"""Nothing lost: kill or interrupt ``train.py`` at chosen moments, re-run one command, get the same run.

Each test starts the real CLI as a subprocess and compares it with one uninterrupted run of the
same seeded CPU configuration: final ``model`` weights bit for bit, every ``epoch_NNN.pt``, and the
``metrics.csv`` rows (all columns but the wall-clock ``seconds``).

The moments are reached deterministically, not by sleeping: ``IMGCLF_FAULTS`` (common/faults.py)
makes the child stop at a named point -- the N-th optimizer update, halfway through the N-th write
of ``last.pt``, right after the N-th epoch was saved -- and create a marker file. The test waits
for the marker, then sends its signal. A held child continues only once it has received a signal.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Started, cli, cli_env, read_csv, signal_when_held, wait_for_file

from artifacts.checkpoint import load_checkpoint

# 1257 training images / batch 64 -> 20 updates per epoch: update 30 is the middle of epoch 2.
# CPU, float32 and NCHW pinned: exactness is compared with a reference run made in another test's
# cache folder, so nothing here may depend on a measured auto choice (or on a GPU being present).
ARGS = [
    "--width",
    "8",
    "--depth",
    "2",
    "--epochs",
    "4",
    "--threads",
    "1",
    "--save_every",
    "1",
    "--seed",
    "5",
    "--device",
    "cpu",
    "--amp",
    "off",
    "--channels_last",
    "off",
]
pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.slow,
]  # several train.py processes each: ~1 min together on 2 cores


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run everything is compared with, trained in-process: only the interrupted
    runs are about the command line."""
    import train as train_script

    root = tmp_path_factory.mktemp("reference")
    train_script.main([*ARGS, "--checkpoint_dir", str(root), "--run_name", "ref"])
    return root / "ref"


def run_until(args: list, hold_at: str, tmp_path: Path, sig: int) -> subprocess.CompletedProcess:
    """Start ``train.py ARGS``, wait until it holds at ``hold_at`` (faults.py syntax), send ``sig``."""
    marker = tmp_path / f"held-{hold_at.replace(':', '_').replace('#', '_')}"
    done = signal_when_held(Started("train.py", *args, env=cli_env(f"{hold_at}=hold:{marker}")), marker, sig)
    marker.unlink()
    return done


def assert_every_checkpoint_loads(run_dir: Path) -> None:
    for path in run_dir.glob("*.pt"):
        load_checkpoint(path)  # raises on a truncated or otherwise broken file


def assert_same_as_reference(run_dir: Path, reference: Path) -> None:
    names = sorted(p.name for p in reference.glob("*.pt"))
    assert sorted(p.name for p in run_dir.glob("*.pt")) == names
    for name in names:  # epoch_001..004, best, last: pins down the first epoch that diverged
        ours, ref = load_checkpoint(run_dir / name), load_checkpoint(reference / name)
        assert ours["epoch"] == ref["epoch"], name
        for key, tensor in ref["model"].items():
            assert torch.equal(ours["model"][key], tensor), f"{name}: {key}"

    def rows(folder):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(folder / "metrics.csv")]

    assert rows(run_dir) == rows(reference)
    assert not list(run_dir.glob(".*.tmp-*"))  # stale partial writes were cleaned up


def test_sigkill_anywhere_then_resume_auto_is_exact(reference, tmp_path):
    run_dir = tmp_path / "ck" / "r"
    args = [*ARGS, "--checkpoint_dir", tmp_path / "ck", "--run_name", "r", "--resume", "auto"]

    # Killed mid-epoch 1, before any checkpoint: leaves a folder that must not block the re-run.
    done = run_until(args, "step#5", tmp_path, signal.SIGKILL)
    assert done.returncode == -signal.SIGKILL
    assert "starting the run fresh" in done.stdout
    assert run_dir.is_dir() and not list(run_dir.glob("*.pt"))

    # Same command: starts fresh, saves epoch 1, killed halfway through writing epoch 2's last.pt.
    done = run_until(args, "write:last.pt#2", tmp_path, signal.SIGKILL)
    assert "starting the run fresh" in done.stdout
    assert list(run_dir.glob(".last.pt.tmp-*"))  # the half-written temp file is really there
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert_every_checkpoint_loads(run_dir)

    # Same command: resumes at epoch 1, killed right after epoch 3 was saved.
    done = run_until(args, "epoch_end#2", tmp_path, signal.SIGKILL)
    assert "resuming" in done.stdout and "(epoch 1)" in done.stdout
    assert "removed .last.pt.tmp-" in done.stdout
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 3
    assert_every_checkpoint_loads(run_dir)

    # Same command, to the end.
    done = cli("train.py", *args)
    assert done.returncode == 0, done.stderr
    assert "(epoch 3)" in done.stdout
    assert_same_as_reference(run_dir, reference)


def resume_args(stderr: str) -> list[str]:
    """The command the interrupted run printed, as arguments after ``python train.py``."""
    line = stderr.strip().splitlines()[-1]
    command = shlex.split(line.split("Resume with: ", 1)[1])
    assert command[:2] == ["python", "train.py"], line
    return command[2:]


def test_sigint_mid_epoch_and_sigterm_at_epoch_end_resume_exactly(reference, tmp_path):
    run_dir = tmp_path / "ck" / "r"
    done = run_until(
        [*ARGS, "--checkpoint_dir", tmp_path / "ck", "--run_name", "r"], "step#30", tmp_path, signal.SIGINT
    )
    assert done.returncode == 130, done.stderr
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"interrupted: SIGINT at epoch 2, batch 10/20; saved {run_dir / 'last.pt'}")
    saved = load_checkpoint(run_dir / "last.pt")  # mid-epoch: 1 epoch done + 10 batches of epoch 2
    assert saved["epoch"] == 1 and saved["partial_epoch"]["batches"] == 10 and saved["global_step"] == 30
    command = resume_args(done.stderr)

    # The printed command, stopped by SIGTERM right after epoch 3 (its 2nd epoch end).
    done = run_until(command, "epoch_end#2", tmp_path, signal.SIGTERM)
    assert done.returncode == 143, done.stderr
    assert "(epoch 1 + 10 batches of epoch 2)" in done.stdout
    assert "interrupted: SIGTERM at the end of epoch 3" in done.stderr
    assert resume_args(done.stderr) == command  # the same command works after any interruption
    assert_every_checkpoint_loads(run_dir)

    done = cli("train.py", *command)
    assert done.returncode == 0, done.stderr
    assert_same_as_reference(run_dir, reference)


def test_second_ctrl_c_exits_at_once_and_leaves_whole_files(reference, tmp_path):
    """First Ctrl-C mid-epoch 2; the second arrives while that interrupt's last.pt is half written."""
    run_dir = tmp_path / "ck" / "r"
    first, second = tmp_path / "first", tmp_path / "second"
    proc = Started(
        "train.py",
        *ARGS,
        "--checkpoint_dir",
        tmp_path / "ck",
        "--run_name",
        "r",
        env=cli_env(f"step#25=hold:{first};write:last.pt#2=hold:{second}"),
    )
    try:
        wait_for_file(first, proc)
        proc.send_signal(signal.SIGINT)
        wait_for_file(second, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "SIGINT again: exiting now" in err
    assert list(run_dir.glob(".last.pt.tmp-*"))  # the aborted write stayed a temp file ...
    ckpt = load_checkpoint(run_dir / "last.pt")  # ... and last.pt is still epoch 1, whole
    assert ckpt["epoch"] == 1 and ckpt["partial_epoch"] is None
    assert_every_checkpoint_loads(run_dir)
    ref = load_checkpoint(reference / "epoch_001.pt")["model"]
    assert all(torch.equal(ckpt["model"][k], v) for k, v in ref.items())
