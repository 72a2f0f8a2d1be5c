"""``train.py`` under torchrun: 2 gloo processes on the CPU against 1 process, a stop, a failing rank.

Every test starts the real launcher (``python -m torch.distributed.run --standalone``) as a
subprocess. The model is timm's ``test_efficientnet_gn`` (GroupNorm, 100k parameters) with dropout
off: GroupNorm normalises each image alone, so 2 ranks x batch B compute exactly the function
1 process x batch 2B computes. (The Custom CNN's BatchNorm normalises over each rank's part of the
batch, as in every DDP run without ``--sync_bn``, and that is a different function, not a rounding
difference.) Moments are reached with common/faults.py holds, never by sleeping.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest
import torch
from conftest import ROOT, cli, cli_env, read_csv, signal_when_held

from artifacts.checkpoint import load_checkpoint

ARGS = [
    "--device",
    "cpu",
    "--amp",
    "off",
    "--channels_last",
    "off",
    "--threads",
    "1",
    "--model",
    "test_efficientnet_gn",
    "--dropout",
    "0",
    "--epochs",
    "2",
    "--seed",
    "3",
    "--save_every",
    "1",
]
B = 32  # per rank: 1257 images / (2 x 32) -> 20 updates per epoch, the last global batch split 21/20
pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals, gloo")]


def torchrun(*args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "train.py",
        *map(str, args),
    ]


def env(faults: str = "") -> dict:
    return {**cli_env(faults), "OMP_NUM_THREADS": "1"}


def run(cmd: list[str], faults: str = "", timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env(faults), capture_output=True, text=True, timeout=timeout)


def rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(run_dir / "metrics.csv")]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """The uninterrupted 2-process run (batch B per rank) the other runs are compared with."""
    root = tmp_path_factory.mktemp("ddp")
    done = run(torchrun(*ARGS, "--batch_size", B, "--checkpoint_dir", root, "--run_name", "ref"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("epoch   1/2 |") == 1  # one writer: only rank 0 prints
    assert "2 processes (gloo) x batch 32 = global batch 64, lr 0.003" in done.stdout
    return root / "ref"


def test_two_ranks_equal_one_process_with_the_global_batch(two_ranks, tmp_path):
    done = cli("train.py", *ARGS, "--batch_size", 2 * B, "--checkpoint_dir", tmp_path, "--run_name", "one", timeout=180)
    assert done.returncode == 0, done.stderr
    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(two_ranks / "last.pt")
    assert two["world_size"] == 2 and not any(k.startswith("module.") for k in two["model"])
    # Tolerances from float summation order, not from the algorithm: each gradient is the same sum
    # over the same 64 augmented images, added as 64 terms in one process but as 2 x 32 plus one
    # gloo addition here, and the validation sums are split likewise. That changes float32 results
    # in the last bits (~1e-7 relative per update); 40 AdamW updates amplify it to ~3e-5 in the
    # weights and ~4e-5 relative in the losses (measured). Any real difference -- one image or one
    # augmentation draw on the wrong rank -- changes a whole update, and an AdamW update moves a
    # weight by ~lr = 3e-3: far outside atol 5e-4 and rel 1e-3, which sit 10x above the rounding.
    for key, w in one["model"].items():
        torch.testing.assert_close(two["model"][key], w, atol=5e-4, rtol=0, msg=key)
    for a, b in zip(one["history"], two["history"], strict=True):
        for k in ("train_loss", "val_loss"):
            assert b[k] == pytest.approx(a[k], rel=1e-3), (a, b)
        for k in ("train_acc", "val_acc"):  # counts: a near-tie logit may flip one image at most
            assert b[k] == pytest.approx(a[k], abs=1.5 / 180), (a, b)

    from artifacts.model_io import load_model_from_checkpoint  # the one path evaluate/predict read it by

    load_model_from_checkpoint(two_ranks / "best.pt", torch.device("cpu"))


def test_sigterm_to_the_launcher_mid_epoch_then_resume_auto_is_exact(two_ranks, tmp_path):
    run_dir, marker = tmp_path / "r", tmp_path / "held"
    cmd = torchrun(*ARGS, "--batch_size", B, "--checkpoint_dir", tmp_path, "--run_name", "r", "--resume", "auto")
    # Both ranks hold after their 25th update (epoch 2, batch 5) until the signal has reached them.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(f"step#25=hold:{marker}"), text=True, stdout=PIPE, stderr=PIPE)
    stopped = signal_when_held(proc, marker, signal.SIGTERM, timeout=120)
    err = stopped.stderr
    assert stopped.returncode != 0
    assert "interrupted: SIGTERM at epoch 2" in err, err
    saved = load_checkpoint(run_dir / "last.pt")
    assert saved["epoch"] == 1 and saved["world_size"] == 2 and len(saved["rank_states"]) == 2
    assert all(s["partial"]["batches"] == saved["partial_epoch"]["batches"] >= 5 for s in saved["rank_states"])

    done = run(cmd)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note:" not in done.stdout  # same world size: exact, no caveat
    for name in ("epoch_001.pt", "epoch_002.pt", "last.pt"):
        ours, ref = load_checkpoint(run_dir / name)["model"], load_checkpoint(two_ranks / name)["model"]
        assert all(torch.equal(ours[k], v) for k, v in ref.items()), name
    assert rows(run_dir) == rows(two_ranks)


def test_a_rank_that_raises_ends_the_whole_job(tmp_path):
    # Rank 1 fails at its 3rd update; rank 0 is then waiting in the next all-reduce. The job must
    # end with an error within seconds, not sit in gloo's 30-minute collective timeout.
    start = time.monotonic()
    done = run(
        torchrun(
            "--device",
            "cpu",
            "--amp",
            "off",
            "--channels_last",
            "off",
            "--threads",
            "1",
            "--width",
            "8",
            "--depth",
            "2",
            "--epochs",
            "1",
            "--checkpoint_dir",
            tmp_path,
        ),
        faults="step#3@1=enospc",
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert done.returncode != 0
    assert "[rank1]: OSError: [Errno 28] No space left on device" in done.stderr  # torchrun names the rank
    assert elapsed < 60, f"the job took {elapsed:.0f} s to end after a rank failed"


def test_a_two_rank_checkpoint_resumes_in_one_process_from_its_epoch_boundary(two_ranks, tmp_path):
    done = cli(
        "train.py",
        "--threads",
        "1",
        "--resume",
        two_ranks / "epoch_001.pt",
        "--checkpoint_dir",
        tmp_path,
        "--run_name",
        "one",
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "note: 2 processes wrote this checkpoint, this run has 1: continuing from the end of epoch 1" in done.stdout
    assert "Detected call of `lr_scheduler.step()`" not in done.stderr
    history = load_checkpoint(tmp_path / "one" / "last.pt")["history"]
    assert [r["epoch"] for r in history] == [1, 2] and history[-1]["lr"] == 0  # the schedule ran to its end
