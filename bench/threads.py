"""Does training collapse when another process is busy on one core? Threads x OpenMP wait policy.

Runs the project's training loop (Custom CNN, Fashion-MNIST-sized batches) in fresh processes,
with the machine idle and with one core kept busy by a spinning process, for: the default
(``--threads 0``: the cores not already busy when training starts, see
``runtime.runtime.default_threads``), every core (what a plain PyTorch script uses), and one thread.

    python bench/threads.py
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(threads: int, steps: int) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from torch import nn

    from bench.loop_overhead import make_batches
    from engine.loop import NonFiniteGuard, Updater, train_one_epoch
    from models import build_model
    from runtime.runtime import amp_policy, set_threads
    from schedulers import Plan, build_scheduler

    n = set_threads(threads)
    batches = make_batches(128 * steps, 128, channels_last=True)
    model = build_model("custom", 10, 1, 28, width=16, depth=3).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    amp = amp_policy(False, "auto", torch.device("cpu"))
    sched = build_scheduler(opt, "cosine", {}, Plan(2, len(batches)))
    updater = Updater(model, nn.CrossEntropyLoss(), opt, sched, amp.make_scaler(), amp, guard=NonFiniteGuard(3))
    train_one_epoch(updater, batches[:3], epoch=1, global_step=0, progress=False)  # warm-up
    start = time.perf_counter()
    train_one_epoch(updater, batches, epoch=2, global_step=0, progress=False)
    print(f"{n} {len(batches) * 128 / (time.perf_counter() - start):.0f}")


def spin() -> None:
    while True:
        pass


def measure(threads: int, steps: int) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(threads), str(steps)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="training batches timed per configuration")
    steps = p.parse_args().steps
    cores = len(os.sched_getaffinity(0))
    cases = [("default (--threads 0: cores not busy)", 0), ("all cores (plain PyTorch)", cores), ("1 thread", 1)]
    print(f"{os.cpu_count()} CPUs; img/s of the training loop, {steps} batches of 128 (higher is better)")
    print(f"{'configuration':<40}{'threads idle/busy':>18}{'idle':>8}{'1 core busy':>13}{'kept':>7}")
    for label, threads in cases:
        n, idle = measure(threads, steps)
        hog = mp.Process(target=spin, daemon=True)
        hog.start()
        try:
            n_busy, busy = measure(threads, steps)
        finally:
            hog.terminate()
            hog.join()
        print(f"{label:<40}{f'{n}/{n_busy}':>18}{idle:>8.0f}{busy:>13.0f}{100 * busy / idle:>6.0f}%")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
