"""Time to accuracy on Fashion-MNIST: this project vs a typical torchvision pipeline.

Same model (the recipe's Custom CNN), optimizer, LR schedule, label smoothing, batch size and
training images; each side trains until its validation accuracy (same 6,000 held-out images)
reaches the target, timing training *and* the per-epoch evaluation it needs to know that.

(a) this project: the recipe config through the trainer's own functions -- uint8 data resident in
    memory with batched augmentation, channels_last, bfloat16 autocast, EMA, flip TTA;
(b) typical: ``torchvision.datasets.FashionMNIST`` + per-item PIL transforms (RandomCrop with
    padding, RandomHorizontalFlip, ToTensor, Normalize) + ``DataLoader`` workers, fp32, a plain loop.

    python bench/time_to_accuracy.py                                  # target 92 % val accuracy
    python bench/time_to_accuracy.py --config configs/fashion_mnist.yaml --target 0.92
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from common.spelling import plural  # noqa: E402
from data import prepare_data, preprocessing_of  # noqa: E402
from data.loader import Feed, make_loader  # noqa: E402
from data.split import SPLIT_SEED, stratified_split  # noqa: E402
from engine.loop import NonFiniteGuard, Updater, evaluate, train_one_epoch  # noqa: E402
from engine.setup import build_components, eval_model, runtime_choice  # noqa: E402
from runtime.runtime import amp_policy, seed_everything, set_threads  # noqa: E402
from settings.config import Config, apply_overrides, load_yaml  # noqa: E402

CPU = torch.device("cpu")


def project(cfg: Config, target: float) -> list[tuple[float, float]]:
    """(cumulative seconds, val accuracy) per epoch, using the trainer's functions."""
    seed_everything(cfg.seed)
    bundle = prepare_data(cfg)
    choice = runtime_choice(cfg, bundle, CPU, torch.get_num_threads(), None)  # train.py's auto choices
    print(f"  project  {choice.line()}")
    cfg = dataclasses.replace(
        cfg, amp="on" if choice.amp else "off", channels_last="on" if choice.channels_last else "off"
    )
    amp = amp_policy(choice.amp, choice.dtype, CPU)
    c = build_components(cfg, bundle, CPU, amp)
    pre = preprocessing_of(bundle)
    feed = Feed(pre, CPU, channels_last=choice.channels_last)
    train = make_loader(bundle.train, cfg.batch_size, feed, augment_preset=cfg.augment, shuffle=True, seed=cfg.seed)
    val = make_loader(bundle.val, 512, feed)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    out, elapsed, step = [], 0.0, 0
    updater = Updater(c.model, criterion, c.optimizer, c.scheduler, c.scaler, amp, guard=NonFiniteGuard(3), ema=c.ema)
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        train.set_epoch(epoch)
        _, step = train_one_epoch(updater, train, epoch=epoch, global_step=step, progress=False)
        _, acc = evaluate(eval_model(c), val, amp, tta=cfg.tta)
        c.scheduler.step_epoch(None)
        elapsed += time.perf_counter() - start
        out.append((elapsed, acc))
        print(f"  project  epoch {epoch:2d}: val acc {acc:.4f}  {elapsed:7.1f} s", flush=True)
        if acc >= target:
            break
    return out


def typical(cfg: Config, target: float, workers: int) -> list[tuple[float, float]]:
    """The same training written the common way: a torchvision dataset with per-item transforms."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms as T
    from torchvision.datasets import FashionMNIST

    seed_everything(cfg.seed)
    bundle = prepare_data(dataclasses.replace(cfg, dataset="fashion_mnist"))  # also unpacks the IDX files
    mean, std = bundle.mean, bundle.std
    root = Path(cfg.data_dir)
    train_aug = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    plain = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    full_train = FashionMNIST(root, train=True, transform=train_aug)
    full_val = FashionMNIST(root, train=True, transform=plain)
    tr, va, _ = stratified_split(full_train.targets.numpy(), cfg.val_split, 0.0, SPLIT_SEED)
    train = DataLoader(
        Subset(full_train, tr),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    val = DataLoader(Subset(full_val, va), batch_size=512, num_workers=workers, persistent_workers=workers > 0)
    plain_cfg = dataclasses.replace(cfg, channels_last="off", amp="off", ema=0.0)
    c = build_components(plain_cfg, bundle, CPU, amp_policy(False, "auto", CPU))
    model, opt, sched = c.model, c.optimizer, c.scheduler
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    out, elapsed = [], 0.0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        for x, y in train:
            loss = criterion(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step_update()
            loss.item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val:
                correct += (model(x).argmax(1) == y).sum().item()
        acc = correct / len(va)
        sched.step_epoch(None)
        elapsed += time.perf_counter() - start
        out.append((elapsed, acc))
        print(f"  typical  epoch {epoch:2d}: val acc {acc:.4f}  {elapsed:7.1f} s", flush=True)
        if acc >= target:
            break
    return out


def first_hit(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in curve if acc >= target), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/fashion_mnist.yaml")
    p.add_argument("--target", type=float, default=0.92, help="validation accuracy both sides must reach")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the typical pipeline")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    cfg = apply_overrides(Config(), load_yaml(a.config), a.config)
    threads = set_threads(a.threads)
    print(
        f"{a.config}: {cfg.model} width {cfg.width} depth {cfg.depth}, {cfg.epochs} epochs max, batch "
        f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, {cfg.scheduler}; {plural(threads, 'thread')}; target val acc "
        f"{a.target:.3f}"
    )
    ours = project(cfg, a.target)
    base = typical(cfg, a.target, a.workers)
    t_ours, t_base = first_hit(ours, a.target), first_hit(base, a.target)
    print(f"\n{'pipeline':<34}{'epochs':>8}{'seconds to target':>20}")
    for name, curve, t in (("typical torchvision + DataLoader", base, t_base), ("this project", ours, t_ours)):
        print(f"{name:<34}{len(curve):>8}{(f'{t:.1f}' if t else 'not reached'):>20}")
    if t_ours and t_base:
        print(f"this project reached {a.target:.1%} {t_base / t_ours:.1f}x sooner (target >= 3x)")


if __name__ == "__main__":
    main()
