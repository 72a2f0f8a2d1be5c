"""Input pipeline speed: this project's loaders vs a plain torchvision Dataset + DataLoader with
per-item PIL transforms, in one run, plus the share of a training epoch spent waiting for data.

Data: Fashion-MNIST from Debian's IDX files (dataset-fashion-mnist), and a folder of JPEGs of
mixed sizes generated into a temp dir. Same augmentation on both sides (random shift + flip),
same batch size, same number of DataLoader workers. Targets: >= 10x the per-item baseline for
in-memory data; data wait < 5 % of an epoch.

    python bench/data_pipeline.py                       # about 1 minute on 2 CPU cores
    python bench/data_pipeline.py --threads 1           # on a machine shared with other jobs
    python bench/data_pipeline.py --images 54000 --jpegs 5000 --workers 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from data import (  # noqa: E402
    folder,
    load_dataset,
    preprocessing_of,  # noqa: E402
)
from data.disk_loader import resolve_workers  # noqa: E402
from data.loader import Feed, make_loader  # noqa: E402
from data.transforms import preset_params  # noqa: E402
from data.types import DataBundle, Split  # noqa: E402
from models import build_model  # noqa: E402
from runtime.runtime import set_threads  # noqa: E402

CPU = torch.device("cpu")


def images_per_second(loader, limit_batches: int | None = None) -> float:
    """One pass over ``loader`` (inputs materialised as float tensors), in images per second."""
    n, start = 0, time.perf_counter()
    for i, (x, _) in enumerate(loader):
        n += x.shape[0]
        if limit_batches and i + 1 >= limit_batches:
            break
    return n / (time.perf_counter() - start)


def subset(split: Split, n: int) -> Split:
    return Split(split.images[:n] if split.images is not None else None, split.labels[:n], split.ids[:n])


# --- baseline: what most training scripts do --------------------------------------------------
def pil_loader(dataset, size: int, mean, std, batch_size: int, workers: int, resize: bool):
    """torchvision Dataset (PIL image per item) + per-item transforms + DataLoader workers."""
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    pad, _ = preset_params("standard", size)
    steps = [T.Resize((size, size))] if resize else []
    dataset.transform = T.Compose(
        steps + [T.RandomCrop(size, padding=pad), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
    )
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)


def fashion_baseline(bundle: DataBundle, data_dir: str, n: int, batch_size: int, workers: int):
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(data_dir, train=True, download=False)  # reads the IDX cache load_dataset wrote
    ds.data, ds.targets = ds.data[:n], ds.targets[:n]
    return pil_loader(ds, 28, bundle.mean, bundle.std, batch_size, workers, resize=False)


# --- the generated JPEG folder ------------------------------------------------------------------
def make_jpegs(root: Path, count: int, classes: int = 10) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        c = i % classes
        h, w = rng.integers(96, 192, 2)
        img = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # JPEG-like blocks
        img[: h // 4] = (c * 25, 255 - c * 25, 128)
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"class_{c}" / f"{i:05d}.jpg", quality=90)
    return root


def data_wait_share(loader, model: nn.Module, max_batches: int) -> tuple[float, float]:
    """(share of the epoch spent inside the loader, training images/s) for a short epoch."""
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    model.train()
    waited, it = 0.0, iter(loader)
    start = time.perf_counter()
    n = 0
    for _ in range(max_batches):
        t0 = time.perf_counter()
        batch = next(it, None)
        waited += time.perf_counter() - t0
        if batch is None:
            break
        x, y = batch
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        n += x.shape[0]
    total = time.perf_counter() - start
    return waited / total, n / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20000, help="Fashion-MNIST images per measured pass")
    p.add_argument("--jpegs", type=int, default=2000, help="JPEGs in the generated folder")
    p.add_argument("--image_size", type=int, default=64, help="folder images are resized to this side")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--workers", type=int, default=-1, help="DataLoader workers for both sides (-1: auto)")
    p.add_argument("--train_batches", type=int, default=40, help="batches per data-wait measurement")
    p.add_argument("--data_dir", default="datasets")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: picks from the machine)")
    args = p.parse_args()
    threads = set_threads(args.threads)
    workers = resolve_workers(args.workers)
    print(
        f"torch threads {threads}, DataLoader workers {workers}, batch {args.batch_size}, augmentation: "
        f"random shift + horizontal flip on both sides\n"
    )
    rows = []

    fm = load_dataset("fashion_mnist", args.data_dir, val_split=0.1)
    n = min(args.images, len(fm.train))
    pre = preprocessing_of(fm)
    ours = images_per_second(
        make_loader(subset(fm.train, n), args.batch_size, Feed(pre, CPU), augment_preset="standard", shuffle=True)
    )
    base = images_per_second(fashion_baseline(fm, args.data_dir, n, args.batch_size, workers))
    rows.append(("Fashion-MNIST (in memory)", "uint8 cache + batch tensor ops", ours, base))

    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpegs(Path(tmp) / "jpegs", args.jpegs)
        t0 = time.perf_counter()
        mem = folder.load(
            str(root),
            val_split=0.1,
            test_split=0.0,
            image_size=args.image_size,
            data_mode="memory",
            num_workers=args.workers,
        )
        decode_rate = args.jpegs / (time.perf_counter() - t0)
        stream = folder.load(
            str(root),
            val_split=0.1,
            test_split=0.0,
            image_size=args.image_size,
            data_mode="stream",
            num_workers=args.workers,
        )
        pre_f = preprocessing_of(mem)
        from torchvision.datasets import ImageFolder

        base_f = images_per_second(
            pil_loader(
                ImageFolder(str(root)), args.image_size, mem.mean, mem.std, args.batch_size, workers, resize=True
            )
        )
        ours_mem = images_per_second(
            make_loader(mem.train, args.batch_size, Feed(pre_f, CPU), augment_preset="standard", shuffle=True)
        )
        stream_loader = make_loader(
            stream.train,
            args.batch_size,
            Feed(pre_f, CPU, num_workers=args.workers),
            augment_preset="standard",
            shuffle=True,
        )
        images_per_second(stream_loader, 2)  # start the persistent workers, as after epoch 1
        ours_stream = images_per_second(stream_loader)
        rows.append(
            (
                f"JPEG folder {args.jpegs} x ~96-192 px -> {args.image_size}",
                "decode once (first epoch)",
                decode_rate,
                base_f,
            )
        )
        rows.append(("", "in-memory cache, later epochs", ours_mem, base_f))
        rows.append(("", f"streamed: torchvision.io + v2 in {workers} workers", ours_stream, base_f))

        print("| data | this pipeline | images/s | per-item PIL DataLoader images/s | speed-up |")
        print("|---|---|---:|---:|---:|")
        for data, how, a, b in rows:
            print(f"| {data} | {how} | {a:,.0f} | {b:,.0f} | {a / b:.1f}x |")

        print("\n| training epoch (Custom CNN width 16, depth 2, batch 64) | data wait | train images/s |")
        print("|---|---:|---:|")
        waits = [
            (
                "Fashion-MNIST, in memory",
                make_loader(subset(fm.train, n), 64, Feed(pre, CPU), augment_preset="standard", shuffle=True),
                fm,
            ),
            (
                "JPEG folder, in memory",
                make_loader(mem.train, 64, Feed(pre_f, CPU), augment_preset="standard", shuffle=True),
                mem,
            ),
            (
                "JPEG folder, streamed",
                make_loader(
                    stream.train,
                    64,
                    Feed(pre_f, CPU, num_workers=args.workers),
                    augment_preset="standard",
                    shuffle=True,
                ),
                stream,
            ),
        ]
        for name, loader, bundle in waits:
            torch.manual_seed(0)
            model = build_model(
                "custom", len(bundle.class_names), bundle.channels, bundle.image_size[0], width=16, depth=2
            )
            share, rate = data_wait_share(loader, model, args.train_batches)
            print(f"| {name} | {share:.1%} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
