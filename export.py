"""Export a trained checkpoint to ONNX or TorchScript, with its class names and preprocessing inside.

The file is verified against the PyTorch model on 32 real images of the run's dataset (onnxruntime
for ONNX, torch.jit.load for TorchScript): the largest |logit difference| is printed, and the
command fails above 1e-4. ``predict.py --checkpoint model.onnx`` then predicts with onnxruntime.

Examples:
    python export.py --checkpoint checkpoints/custom_digits/best.pt --format onnx
    python export.py --checkpoint run/best.pt --format onnx --dynamic_batch --output model.onnx
    python export.py --checkpoint run/best.pt --format torchscript

Default output: next to the checkpoint, ``<stem>.onnx`` or ``<stem>.torchscript.pt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.cli import cli_parser
from common.errors import AppError, UsageError, run_cli
from common.fileio import check_writable

FORMATS = ("onnx", "torchscript")


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a .pt file written by train.py")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--output", default=None, metavar="FILE", help="default: next to the checkpoint")
    p.add_argument(
        "--dynamic_batch",
        action="store_true",
        help="ONNX: any batch size (default: batch 1, which predict.py feeds image by image)",
    )
    p.add_argument("--data_dir", default=None, metavar="D", help="dataset location for the check, if moved")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dynamic_batch and args.format != "onnx":
        raise UsageError("--dynamic_batch applies to --format onnx (TorchScript traces any batch size)")
    import torch

    from artifacts.model_io import load_model_from_checkpoint
    from evaluation.export import FORMATS as SUFFIXES
    from evaluation.export import TOLERANCE, export_onnx, export_torchscript, verification_images, verify

    src = Path(args.checkpoint)
    if src.suffix.lower() == ".onnx":
        raise UsageError(f"{src} is already an export; give the .pt checkpoint it came from")
    out = check_writable(
        Path(args.output) if args.output else src.with_name(src.stem + SUFFIXES[args.format]), "--output"
    )
    loaded = load_model_from_checkpoint(src, torch.device("cpu"))
    x, what = verification_images(loaded, args.data_dir)  # before writing: a missing dataset costs nothing
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "onnx":
        export_onnx(loaded, out, args.dynamic_batch)
    else:
        export_torchscript(loaded, out)
    diff = verify(loaded, out, args.format, x)
    size_kb = out.stat().st_size / 1024
    print(
        f"wrote {out} ({args.format}, {size_kb:.0f} KiB, {len(loaded.class_names)} classes, input "
        f"{loaded.channels}x{'x'.join(map(str, loaded.preprocessing['input_size']))}"
        f"{', dynamic batch' if args.dynamic_batch else ''})"
    )
    print(f"verified on {what}: max |delta logit| vs PyTorch = {diff:.3g} (limit {TOLERANCE:g})")
    if not diff <= TOLERANCE:  # also catches NaN
        raise AppError(
            f"the exported model differs from the checkpoint by {diff:.3g} > {TOLERANCE:g}; "
            f"{out} is kept for inspection but should not be used"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
