"""Per-step time of the recipe models in float32 vs bfloat16, NCHW vs channels_last, with GFLOP/s.

What ``amp: auto`` / ``channels_last: auto`` decide (runtime/autotune.py) and why: on a CPU with
native bfloat16 (AVX512_BF16/AMX) autocast is faster, on an AVX2 one it is many times slower.
Run it both ways on one machine (the second makes torch and oneDNN behave like an AVX2 CPU):

    python bench/amp_speed.py --threads 2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/amp_speed.py --threads 2

Each row is one training step (forward, loss, backward, AdamW step) on random inputs of the
recipe's batch shape, best of ``--steps`` after a warm-up step. GFLOP/s counts the step's
forward+backward FLOPs (torch.utils.flop_counter) over its time; the peak is the nominal
fp32 FMA rate of the cores used (cores x GHz x FLOPs/cycle), printed for scale. The last line
is the decision ``train.py`` makes here (measured afresh, not cached) and how long it took.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.spelling import plural  # noqa: E402
from models import build_model  # noqa: E402
from runtime import autotune  # noqa: E402
from runtime.runtime import set_threads  # noqa: E402
from settings.config import Config, apply_overrides, architecture_key, load_yaml, model_args  # noqa: E402

RECIPES = ["configs/fashion_mnist.yaml", "configs/fashion_mnist_best.yaml"]
SHAPE = (1, 28, 28)  # Fashion-MNIST
CLASSES = 10


def cpu_line() -> str:
    name = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    _, why = autotune.cpu_bf16()
    return f"CPU: {name} | torch.backends.cpu.get_cpu_capability() = {torch.backends.cpu.get_cpu_capability()} | {why}"


def nominal_peak_gflops(threads: int) -> float:
    """cores x GHz x fp32 FLOPs per cycle (2 FMA units x vector lanes x 2)."""
    mhz = next((float(ln.split(":")[1]) for ln in open("/proc/cpuinfo") if ln.startswith("cpu MHz")), 2000.0)
    lanes = 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8
    return threads * mhz / 1000 * 2 * lanes * 2


def model_of(cfg: Config) -> torch.nn.Module:
    return build_model(cfg.model, CLASSES, SHAPE[0], SHAPE[1], **model_args(cfg))


def step_flops(model: torch.nn.Module, batch: int) -> int:
    x = torch.randn(batch, *SHAPE)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_times(
    cfg: Config, batch: int, dtype: torch.dtype | None, cl: bool, steps: int, compile_it: bool = False
) -> list[float]:
    """Seconds of ``steps + 1`` training steps (forward, loss, backward, AdamW) on random inputs;
    the first is the warm-up (with ``compile_it``, the torch.compile cold start)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model_of(cfg).to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step_model = torch.compile(model, mode="default") if compile_it else model
    x = torch.randn(batch, *SHAPE).contiguous(memory_format=fmt)
    y = torch.randint(0, CLASSES, (batch,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext():
            loss = F.cross_entropy(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def time_train_step(cfg: Config, batch: int, dtype: torch.dtype | None, cl: bool, steps: int) -> float:
    """The best steady step, after one warm-up step."""
    return min(step_times(cfg, batch, dtype, cl, steps)[1:])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=RECIPES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps per row (after one warm-up)")
    p.add_argument("--batch", type=int, default=0, help="batch size (default: the recipe's)")
    p.add_argument("--skip_slow_bf16", action="store_true", help="time bfloat16 on 16 images only (AVX2: ~10x slow)")
    a = p.parse_args(argv)
    threads = set_threads(a.threads)
    peak = nominal_peak_gflops(threads)
    print(cpu_line())
    print(f"{plural(threads, 'thread')}, nominal fp32 peak {peak:.0f} GFLOP/s; torch {torch.__version__}")
    for path in a.configs:
        cfg = apply_overrides(Config(), load_yaml(path), path)
        batch = a.batch or cfg.batch_size
        model = model_of(cfg)
        gflop_img = step_flops(model, batch) / batch / 1e9
        shape = f"widths {cfg.widths}" if cfg.widths else f"width {cfg.width} depth {cfg.depth}"
        print(f"\n{path}: {cfg.model} {shape}, batch {batch}, {gflop_img * 1e3:.1f} MFLOP per image (forward+backward)")
        print(f"  {'kind':24s} {'ms/step':>9s} {'img/s':>8s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs fp32':>8s}")
        base = None
        for dname, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
            for cl in (False, True):
                b = 16 if (dtype and a.skip_slow_bf16) else batch
                t = time_train_step(cfg, b, dtype, cl, a.steps) * batch / b  # scaled to the recipe batch
                base = base or t
                gflops = gflop_img * batch / t
                print(
                    f"  {dname + (' channels_last' if cl else ''):24s} {t * 1e3:9.1f} {batch / t:8.0f} "
                    f"{gflops:8.1f} {100 * gflops / peak:6.1f}% {base / t:7.2f}x",
                    flush=True,
                )
        with tempfile.TemporaryDirectory() as tmp:
            import os

            os.environ["XDG_CACHE_HOME"] = tmp  # measure afresh
            t0 = time.perf_counter()
            choice = autotune.decide(
                "auto",
                "auto",
                "auto",
                device=torch.device("cpu"),
                threads=threads,
                model_fn=lambda cfg=cfg: model_of(cfg),
                model_key=architecture_key(cfg, CLASSES),
                shape=(batch, *SHAPE),
                num_classes=CLASSES,
            )
            print(f"  train.py's auto choice ({time.perf_counter() - t0:.1f} s to decide): {choice.line()}")


if __name__ == "__main__":
    main()
