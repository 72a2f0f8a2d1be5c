"""Predict classes for image files with a trained checkpoint: files, folders (recursive) or glob patterns.

Images go through exactly the checkpoint's evaluation preprocessing (its channel count, input
size and normalisation), so grayscale, RGBA, palette and 16-bit files all work with any model.
One row per image: path, the top-k classes with probabilities, and the per-image latency.
Several ``--checkpoint``s of the same classes form an ensemble (probabilities averaged, each member
with its own preprocessing); an ``.onnx`` file from export.py runs through onnxruntime.
An unreadable file gets an error row and the others are still predicted; the exit status is
non-zero only when nothing could be predicted.

Examples:
    python predict.py --checkpoint checkpoints/custom_digits/best.pt photos/
    python predict.py --checkpoint run/best.pt "shots/**/*.png" one.jpg --topk 3 --output preds.csv
    python predict.py --checkpoint run/best.pt img/ --output preds.json --batch_size 64 --device cpu
    python predict.py --checkpoint run/best.onnx img/                                  # onnxruntime
    python predict.py --checkpoint custom/best.pt --checkpoint effnet/best.pt img/     # ensemble
    python predict.py --checkpoint run/best.pt img/ --amp on                           # bfloat16 autocast
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from common.cli import cli_parser
from common.errors import AppError, UsageError, run_cli
from common.fileio import check_writable


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        metavar="PATH",
        help="a .pt file written by train.py (or .onnx from export.py); repeat for an ensemble",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or globs")
    p.add_argument("--topk", type=int, default=5, metavar="K", help="classes shown per image (default: 5)")
    p.add_argument("--output", default=None, metavar="FILE", help="also write the rows to FILE.csv or FILE.json")
    p.add_argument("--batch_size", type=int, default=32, metavar="N", help="images per forward pass (default: 32)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument(
        "--amp",
        choices=("auto", "on", "off"),
        default="off",
        help="autocast: off = float32 (the default: the same numbers as the .onnx export and on every "
        "machine), on = bfloat16 on CPU / the run's dtype on GPU, auto = the run's own mode",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.topk < 1 or args.batch_size < 1:
        raise UsageError("--topk and --batch_size must be at least 1")
    if args.output and not args.output.lower().endswith((".csv", ".json")):
        # Checked before any work: a typo should not cost a whole run.
        raise UsageError(f"--output must end in .csv or .json, got '{args.output}'")
    if args.output:
        check_writable(args.output, "--output")

    from evaluation.ensemble import ensemble_predictions, load_members
    from evaluation.inference import NO_SUCH_FILE, precision, warm_up
    from evaluation.inputs import expand_inputs
    from evaluation.report import format_prediction, latency_summary, write_predictions
    from runtime.runtime import resolve_device

    found = expand_inputs(args.inputs)
    for raw in found.empty:
        print(f"warning: no image files in {raw}", file=sys.stderr)
    if not found.paths:
        raise AppError(f"nothing to predict: no image files found in {', '.join(args.inputs)}")
    members = load_members(args.checkpoint, resolve_device(args.device), args.amp)
    names, k = members[0].class_names, min(args.topk, len(members[0].class_names))
    warmup_s = warm_up(members, min(args.batch_size, len(found.paths)))

    preds = []
    start = time.perf_counter()
    for pred in ensemble_predictions(members, found.paths, args.batch_size):
        print(format_prediction(pred, names, k), flush=True)
        preds.append(pred)
    seconds = time.perf_counter() - start
    print(latency_summary(preds, seconds, args.batch_size, warmup_s, precision(members[0])))
    if args.output:
        write_predictions(preds, names, k, args.output)
        print(f"wrote {args.output}")
    if all(p.error for p in preds):
        missing = sum(p.error == NO_SUCH_FILE for p in preds)
        if missing == len(preds):
            raise AppError(
                f"no input path exists ({len(preds)} given); check the spelling, or quote a "
                f"glob pattern so predict.py expands it"
            )
        raise AppError(
            f"no input could be read as an image ({len(preds)} given, {missing} missing); "
            f"give image files, folders of them, or glob patterns"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
