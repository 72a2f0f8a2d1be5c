"""``--compile``: cold start and speed-up of torch.compile on a recipe model's training step.

    python bench/compile_speed.py --threads 2                       # Fashion-MNIST recipe model, CPU
    python bench/compile_speed.py --config configs/fashion_mnist_best.yaml --steps 20

Times, on the same model, initial weights and random batches of the recipe's shape, eager and
``torch.compile(mode="default")`` (what ``train.py --compile`` uses): the first step (for the
compiled model: tracing + code generation, the cold start), then the best of ``--steps`` steady
steps (forward, loss, backward, AdamW step), and how many steps it takes to earn the cold start
back. AMP and the memory format are the ones ``train.py`` would pick here (runtime/autotune.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.amp_speed import CLASSES, SHAPE, cpu_line, model_of, step_times  # noqa: E402
from common.spelling import plural  # noqa: E402
from runtime import autotune  # noqa: E402
from runtime.runtime import set_threads  # noqa: E402
from settings.config import Config, apply_overrides, architecture_key, load_yaml  # noqa: E402


def run(cfg: Config, batch: int, steps: int, compile_it: bool, dtype, cl: bool) -> tuple[float, float]:
    """(first step seconds, best steady step seconds)."""
    times = step_times(cfg, batch, dtype, cl, steps, compile_it)
    return times[0], min(times[1:])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/fashion_mnist.yaml")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args(argv)
    threads = set_threads(a.threads)
    cfg = apply_overrides(Config(), load_yaml(a.config), a.config)
    print(cpu_line())
    choice = autotune.decide(
        cfg.amp,
        cfg.amp_dtype,
        cfg.channels_last,
        device=torch.device("cpu"),
        threads=threads,
        model_fn=lambda: model_of(cfg),
        model_key=architecture_key(cfg, CLASSES),
        shape=(cfg.batch_size, *SHAPE),
        num_classes=CLASSES,
    )
    dtype = getattr(torch, choice.dtype) if choice.amp else None
    print(f"{a.config}: batch {cfg.batch_size}, {plural(threads, 'thread')}, {choice.line()}")
    eager_first, eager = run(cfg, cfg.batch_size, a.steps, False, dtype, choice.channels_last)
    comp_first, comp = run(cfg, cfg.batch_size, a.steps, True, dtype, choice.channels_last)
    print(f"  eager:    first step {eager_first:6.2f} s, steady {eager * 1e3:7.1f} ms/step")
    print(f"  compiled: first step {comp_first:6.2f} s (cold start), steady {comp * 1e3:7.1f} ms/step")
    gain = eager - comp
    print(
        f"  speed-up {eager / comp:.2f}x; the cold start is earned back after "
        f"{(comp_first - eager_first) / gain:.0f} steps"
        if gain > 0
        else f"  compiled is {comp / eager:.2f}x the eager step time: no gain here"
    )


if __name__ == "__main__":
    main()
