"""Loop overhead: this project's ``train_one_epoch`` vs a bare hand-written PyTorch loop.

Both train the same model (identical initial weights) on the same pre-built batches with the
same optimizer and a per-update cosine schedule; the two are alternated so machine noise hits
both alike. Prints seconds per epoch of each, and the ratio. Target: overhead <= 1 %.

    python bench/loop_overhead.py --amp --channels_last   # bench/RESULTS.md's numbers (25,600 28x28 images)
    python bench/loop_overhead.py --rounds 4 --images 12800  # quicker, noisier
    python bench/loop_overhead.py --device cuda --amp --channels_last --width 16 --depth 4 --batch_size 256
        # on a GPU (float16 + GradScaler): the bare loop's images/s is the ceiling for train.py's
        # (bench/gpu_check.sh compares them)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from common.spelling import plural  # noqa: E402
from engine.loop import NonFiniteGuard, Updater, train_one_epoch  # noqa: E402
from models import build_model  # noqa: E402
from runtime.runtime import amp_policy, set_threads  # noqa: E402
from schedulers import Plan, build_scheduler  # noqa: E402


def make_batches(
    images: int, batch_size: int, channels_last: bool, device: str = "cpu"
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pre-built batches, already on ``device``: no input pipeline at all."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(images // batch_size):
        x = torch.randn(batch_size, 1, 28, 28, generator=g)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append((x.to(device), torch.randint(0, 10, (batch_size,), generator=g).to(device)))
    return out


def bare_epoch(model, batches, optimizer, scheduler, amp) -> float:
    """The loop people write by hand: forward/loss under autocast, backward, step, schedule."""
    model.train()
    scaler = amp.make_scaler()  # float16 on a GPU needs loss scaling; otherwise a no-op
    start = time.perf_counter()
    for x, y in batches:
        with amp.autocast():
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss.item()  # hand-written loops log the loss too
    _sync(x.device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def project_epoch(model, batches, optimizer, scheduler, amp, epoch) -> float:
    scaler = amp.make_scaler()
    start = time.perf_counter()
    train_one_epoch(
        Updater(model, nn.CrossEntropyLoss(), optimizer, scheduler, scaler, amp, guard=NonFiniteGuard(3)),
        batches,
        epoch=epoch,
        global_step=0,
        progress=False,
    )
    _sync(batches[0][0].device)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--images", type=int, default=25600)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CPU, float16 + GradScaler on CUDA")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    threads = set_threads(a.threads)
    device = torch.device(a.device)
    amp = amp_policy(a.amp, "auto", device)
    batches = make_batches(a.images, a.batch_size, a.channels_last, a.device)
    torch.manual_seed(0)
    base = build_model("custom", 10, 1, 28, width=a.width, depth=a.depth, dropout=0.0).to(device)
    if a.channels_last:
        base = base.to(memory_format=torch.channels_last)
    epochs = a.rounds + 1
    plan = Plan(epochs, len(batches))
    runs = {}
    for kind in ("project", "bare"):
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        if kind == "project":
            sched = build_scheduler(opt, "cosine", {}, plan)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=plan.total_steps - 1)
        runs[kind] = (model, opt, sched, [])
    print(
        f"{a.images} images/epoch, batch {a.batch_size}, custom CNN width {a.width} depth {a.depth}, {device}, "
        f"{plural(threads, 'thread')}, amp={str(amp.dtype).removeprefix('torch.') if a.amp else 'off'}, "
        f"channels_last={a.channels_last}; cpu capability {torch.backends.cpu.get_cpu_capability()}; "
        f"round 0 is warm-up, not counted"
    )
    for r in range(epochs):
        for kind in ("project", "bare") if r % 2 == 0 else ("bare", "project"):
            model, opt, sched, times = runs[kind]
            dt = (
                project_epoch(model, batches, opt, sched, amp, r + 1)
                if kind == "project"
                else bare_epoch(model, batches, opt, sched, amp)
            )
            if r > 0:
                times.append(dt)
    proj, bare = statistics.median(runs["project"][3]), statistics.median(runs["bare"][3])
    print(f"{'loop':<10}{'s/epoch (median)':>18}{'images/s':>10}  all rounds")
    n = len(batches) * a.batch_size
    for kind, med in (("bare", bare), ("project", proj)):
        print(f"{kind:<10}{med:>18.3f}{n / med:>10.0f}  {'  '.join(f'{t:.3f}' for t in runs[kind][3])}")
    print(f"overhead: {100 * (proj / bare - 1):+.2f} %  (target <= 1 %)")


if __name__ == "__main__":
    main()
