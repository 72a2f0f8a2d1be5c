"""Does training collapse when another process is busy on one core? Threads x OpenMP wait policy.

Runs the project's training loop (Custom CNN, Fashion-MNIST-sized batches) in fresh processes,
with the machine idle and with one core kept busy by a spinning process, for: the default
(``--threads 0`` = all cores, OMP_WAIT_POLICY=PASSIVE, set by ``engine/__init__.py``), the same
threads with OpenMP's spinning waits (what a plain PyTorch script gets), and one thread.

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
    from bench.loop_overhead import make_batches  # imports engine first: the wait policy applies
    import torch
    from torch import nn
    from engine.loop import NonFiniteGuard, train_one_epoch
    from engine.runtime import amp_policy, set_threads
    from models import build_model
    from schedulers import Plan, build_scheduler

    n = set_threads(threads)
    batches = make_batches(128 * steps, 128, channels_last=True)
    model = build_model("custom", 10, 1, 28, width=16, depth=3).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    amp = amp_policy(False, "auto", torch.device("cpu"))
    sched = build_scheduler(opt, "cosine", {}, Plan(2, len(batches)))
    args = (model, batches[:3], nn.CrossEntropyLoss(), opt, sched, amp.make_scaler(), amp)
    train_one_epoch(*args, epoch=1, global_step=0, guard=NonFiniteGuard(3), progress=False)  # warm-up
    start = time.perf_counter()
    train_one_epoch(*args[:1], batches, *args[2:], epoch=2, global_step=0, guard=NonFiniteGuard(3), progress=False)
    print(f"{n} {len(batches) * 128 / (time.perf_counter() - start):.0f}")


def spin() -> None:
    while True:
        pass


def measure(threads: int, policy: str, steps: int) -> tuple[int, float]:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, __file__, "--worker", str(threads), str(steps)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    steps = 40
    cases = [("default: all cores, passive waits", 0, "PASSIVE"),
             ("all cores, spinning waits (plain PyTorch)", 0, "ACTIVE"),
             ("1 thread", 1, "PASSIVE")]
    print(f"{os.cpu_count()} CPUs; img/s of the training loop, {steps} batches of 128 (higher is better)")
    print(f"{'configuration':<44}{'threads':>8}{'idle':>10}{'1 core busy':>14}{'kept':>8}")
    for label, threads, policy in cases:
        n, idle = measure(threads, policy, steps)
        hog = mp.Process(target=spin, daemon=True)
        hog.start()
        try:
            _, busy = measure(threads, policy, steps)
        finally:
            hog.terminate()
            hog.join()
        print(f"{label:<44}{n:>8}{idle:>10.0f}{busy:>14.0f}{100 * busy / idle:>7.0f}%")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
