"""Does training under torchrun go faster here? 1 process vs 2 gloo processes, same global batch.

Runs the real ``train.py`` (Custom CNN width 16, digits resized to 28 px, global batch 128) as:
one process with 1 thread, one process with 2 threads, and ``torchrun --nproc_per_node 2`` with
1 thread per process (batch 64 each). Throughput is the median over epochs 2.. of the images per
second in ``metrics.csv`` (epoch 1 includes warm-up), so process start and imports do not count.
"CPU s" is the CPU time of the whole command (all processes, imports included): on a shared
machine a run that gets a bigger share of the cores looks faster without using them better.

    python bench/ddp_scaling.py              # ~3 min on 2 cores
    python bench/ddp_scaling.py --epochs 5
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "--device",
    "cpu",
    "--width",
    "16",
    "--depth",
    "3",
    "--image_size",
    "28",
    "--dropout",
    "0",
    "--augment",
    "none",
]
N_TRAIN = 1257  # digits' training split


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(label: str, launcher: list[str], threads: int, batch: int, epochs: int, root: Path) -> tuple[float, float]:
    cmd = [
        *launcher,
        "train.py",
        *COMMON,
        "--threads",
        str(threads),
        "--batch_size",
        str(batch),
        "--epochs",
        str(epochs),
        "--checkpoint_dir",
        str(root),
        "--run_name",
        label,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cpu = cpu_seconds()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    cpu = cpu_seconds() - cpu
    if done.returncode != 0:
        sys.exit(f"{label} failed:\n{done.stderr[-2000:]}")
    with open(root / label / "metrics.csv") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)][1:]
    return N_TRAIN / statistics.median(seconds), cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = [
            ("1 process x 1 thread, batch 128", run("p1t1", [sys.executable], 1, 128, args.epochs, root)),
            ("1 process x 2 threads, batch 128", run("p1t2", [sys.executable], 2, 128, args.epochs, root)),
            ("torchrun 2 processes x 1 thread, batch 64 each", run("p2t1", torchrun, 1, 64, args.epochs, root)),
        ]
    base = results[0][1][0]
    print(f"{'configuration (global batch 128)':48s} {'img/s':>7s} {'vs 1x1':>7s} {'CPU s':>6s}")
    for label, (rate, cpu) in results:
        print(f"{label:48s} {rate:7.0f} {rate / base:6.2f}x {cpu:6.1f}")


if __name__ == "__main__":
    main()
