"""In-process prediction speed: single-image latency and batch throughput, ours against a naive baseline.

ours      evaluation.inference.predict_files: torchvision.io decode (C), the one eval_transform on a
          tensor, the evaluation loop's predict_logits.
baseline  the usual hand-written script: PIL.Image.open -> convert -> torchvision.transforms
          (Resize, ToTensor, Normalize) per image -> model call.
onnx      ours with the model exported by export.py (--dynamic_batch) and run by onnxruntime on the
          CPU, as ``predict.py --checkpoint model.onnx`` does (skipped with --no_onnx).

Both use the same model, the same PNG files and the same threads, measured in one run, and
their top-1 labels are checked to agree. Without --checkpoint the model is the Custom CNN with
its default config (width 32, depth 3) on 8x8 grayscale digits-sized input; untrained weights
time the same as trained ones.

Examples:
    python bench/predict_latency.py                                  # the documented numbers
    python bench/predict_latency.py --image_size 32 --channels 3     # CIFAR-sized RGB
    python bench/predict_latency.py --checkpoint checkpoints/custom_digits/best.pt --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifacts.checkpoint import save_checkpoint  # noqa: E402
from artifacts.model_io import load_model_from_checkpoint  # noqa: E402
from common.spelling import plural  # noqa: E402
from evaluation.export import export_onnx  # noqa: E402
from evaluation.inference import predict_files  # noqa: E402
from models import build_model  # noqa: E402
from settings import config as config_mod  # noqa: E402


def synthetic_checkpoint(folder: Path, image_size: int, channels: int, num_classes: int) -> Path:
    """A default-config Custom CNN checkpoint (random weights) describing ``image_size`` input."""
    cfg = config_mod.Config()
    model = build_model(cfg.model, num_classes, channels, image_size, **config_mod.model_args(cfg))
    pre = {
        "input_size": [image_size, image_size],
        "channels": channels,
        "mean": [0.5] * channels,
        "std": [0.25] * channels,
    }
    path = folder / "bench.pt"
    save_checkpoint(
        {
            "model": model.state_dict(),
            "config": config_mod.to_dict(cfg),
            "class_names": [str(i) for i in range(num_classes)],
            "preprocessing": pre,
        },
        path,
    )
    return path


def write_images(folder: Path, n: int, size: tuple[int, int], channels: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(arr[..., 0] if channels == 1 else arr).save(path)
        paths.append(path)
    return paths


def baseline(loaded):
    """The naive per-image path: PIL decode + torchvision.transforms + a plain model call."""
    from PIL import Image
    from torchvision import transforms

    pre = loaded.preprocessing
    tf = transforms.Compose(
        [
            transforms.Resize(tuple(pre["input_size"]), antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(pre["mean"], pre["std"]),
        ]
    )
    mode = "L" if loaded.channels == 1 else "RGB"

    @torch.no_grad()
    def predict(paths: list[Path]) -> torch.Tensor:
        x = torch.stack([tf(Image.open(p).convert(mode)) for p in paths]).to(loaded.device)
        return loaded.model(x).softmax(1).cpu()

    return predict


def ours(loaded, batch_size: int):
    def predict(paths: list[Path]) -> torch.Tensor:
        return torch.stack([p.probs for p in predict_files(loaded, paths, batch_size)])

    return predict


def single_latency(fns: dict, paths: list[Path], calls: int) -> dict[str, tuple[float, float]]:
    """Median and p90 in ms of ``calls`` one-image predictions per function, after a warm-up.

    The functions take turns call by call, so load from other processes hits them alike.
    """
    for p in paths[:20]:
        for fn in fns.values():
            fn([p])
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(calls):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn([paths[i % len(paths)]])
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: (statistics.median(t), float(np.percentile(t, 90))) for name, t in times.items()}


def throughput(fns: dict, paths: list[Path], batch_size: int, repeats: int) -> dict[str, float]:
    """Images/s per function, best of ``repeats`` alternating passes (best: least disturbed by other load)."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for i in range(0, len(paths), batch_size):
                fn(paths[i : i + batch_size])
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(paths) / t for name, t in best.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="", help="time this checkpoint instead of a default Custom CNN")
    p.add_argument("--image_size", type=int, default=8)
    p.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--calls", type=int, default=200, help="single-image predictions timed")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--images", type=int, default=512, help="images in the throughput pass")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no_onnx", action="store_true", help="leave out the onnxruntime column")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = (
            Path(args.checkpoint) if args.checkpoint else synthetic_checkpoint(tmp, args.image_size, args.channels, 10)
        )
        loaded = load_model_from_checkpoint(ckpt, torch.device(args.device))
        size = tuple(loaded.preprocessing["input_size"])
        paths = write_images(tmp, args.images, size, loaded.channels)
        mine, base = ours(loaded, args.batch_size), baseline(loaded)
        agree = (mine(paths).argmax(1) == base(paths).argmax(1)).float().mean().item()
        fns = {"ours": mine, "baseline": base}
        if not args.no_onnx:
            export_onnx(load_model_from_checkpoint(ckpt, torch.device("cpu")), tmp / "model.onnx", True)
            fns["onnx"] = ours(load_model_from_checkpoint(tmp / "model.onnx", torch.device("cpu")), args.batch_size)
            onnx_agree = (fns["onnx"](paths).argmax(1) == mine(paths).argmax(1)).float().mean().item()
        single = single_latency(fns, paths, args.calls)
        rate = throughput(fns, paths, args.batch_size, 3)
        rows = {name: (*single[name], rate[name]) for name in fns}

    params = sum(x.numel() for x in loaded.model.parameters())
    print(
        f"model {loaded.cfg.model} ({params:,} parameters), input {loaded.channels}x{size[0]}x{size[1]} PNG, "
        f"device {args.device}, {plural(torch.get_num_threads(), 'thread')}, torch {torch.__version__}"
    )
    print(f"{'':34}" + "".join(f"{name:>12}" for name in rows))
    print(f"{'single image, median (ms)':34}" + "".join(f"{r[0]:12.2f}" for r in rows.values()))
    print(f"{'single image, p90 (ms)':34}" + "".join(f"{r[1]:12.2f}" for r in rows.values()))
    print(f"{f'batch of {args.batch_size}, throughput (img/s)':34}" + "".join(f"{r[2]:12.0f}" for r in rows.values()))
    print(
        f"({args.calls} single-image calls; throughput: best of 3 passes over {args.images} images; "
        f"top-1 agreement ours vs baseline {agree:.1%}"
        + ("" if args.no_onnx else f", onnx vs ours {onnx_agree:.1%}")
        + "; baseline = PIL + torchvision.transforms per image)"
    )


if __name__ == "__main__":
    main()
