"""A checkpoint's logits per autocast mode against its ONNX export, on the run's own validation images.

For ``--amp off`` (float32) and ``--amp on`` (bfloat16 on CPU): the largest |logit difference| from
the ``.onnx`` file (onnxruntime, float32), how many top-1 labels agree with float32, the largest
top-1 probability difference, and the forward-pass throughput of each mode measured in one run.
This is the evidence behind predict.py's float32 default (docs/evaluation.md).

Example:
    python export.py --checkpoint checkpoints/custom_digits/best.pt --format onnx --dynamic_batch
    python bench/amp_agreement.py --checkpoint checkpoints/custom_digits/best.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifacts.model_io import load_model_from_checkpoint  # noqa: E402
from data import prepare_data  # noqa: E402
from data.transforms import eval_transform  # noqa: E402
from engine.loop import predict_logits  # noqa: E402
from evaluation.inference import precision  # noqa: E402


def logits_of(loaded, x: torch.Tensor, batch: int) -> tuple[torch.Tensor, float]:
    """Logits of preprocessed ``x`` and the images/s of the forward passes (after one warm-up batch)."""
    batches = [
        (x[i : i + batch], torch.zeros(len(x[i : i + batch]), dtype=torch.long)) for i in range(0, len(x), batch)
    ]
    predict_logits(loaded.model, batches[:1], loaded.amp, tta=loaded.cfg.tta)
    start = time.perf_counter()
    logits, _ = predict_logits(loaded.model, batches, loaded.amp, tta=loaded.cfg.tta)
    return logits, len(x) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--onnx", default=None, help="default: the checkpoint's path with .onnx")
    p.add_argument("--split", default="val")
    p.add_argument("--batch_size", type=int, default=64)
    args = p.parse_args()
    cpu = torch.device("cpu")
    onnx = load_model_from_checkpoint(args.onnx or Path(args.checkpoint).with_suffix(".onnx"), cpu)
    split = prepare_data(onnx.cfg, onnx.class_names).split(args.split)
    x = eval_transform(split.images, onnx.preprocessing)
    ref, _ = logits_of(onnx, x, args.batch_size)
    float32 = None
    print(
        f"{args.checkpoint} on {len(x)} {args.split} images, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    )
    print("| mode | max abs logit diff vs .onnx | top-1 agreeing with float32 | max top-1 prob diff | images/s |")
    print("|---|---|---|---|---|")
    for amp in ("off", "on"):
        loaded = load_model_from_checkpoint(args.checkpoint, cpu, amp)
        logits, speed = logits_of(loaded, x, args.batch_size)
        float32 = logits if float32 is None else float32
        agree = int((logits.argmax(1) == float32.argmax(1)).sum())
        p_diff = (logits.softmax(1).max(1).values - ref.softmax(1).max(1).values).abs().max()
        print(
            f"| --amp {amp} ({precision(loaded)}) | {(logits - ref).abs().max():.2e} | {agree}/{len(x)} | "
            f"{p_diff:.2e} | {speed:.0f} |"
        )


if __name__ == "__main__":
    main()
