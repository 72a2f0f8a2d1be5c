"""Show what a trained model looks at: a Grad-CAM figure per image (input | heat map | top-3 classes).

Uses the ``grad-cam`` package. The layer is found automatically (the Custom CNN's last conv block,
a timm model's last stage); ``--layer`` names another one.

Examples:
    python explain.py --checkpoint checkpoints/custom_digits/best.pt samples/
    python explain.py --checkpoint run/best.pt "shots/*.png" --method gradcam++ --target cat --output_dir cams/
    python explain.py --checkpoint run/best.pt one.png --method eigencam --layer features.10

Writes ``OUT/<stem>_cam.png`` per image (default OUT: ``<run folder>/explain/``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import cli_parser
from common.errors import AppError, run_cli
from common.fileio import check_writable
from common.progress import bar
from common.spelling import plural

METHODS = ("gradcam", "gradcam++", "eigencam")  # evaluation.cam.METHODS, without importing torch for --help


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a .pt file written by train.py")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or globs")
    p.add_argument("--method", choices=METHODS, default="gradcam", help="(default: gradcam)")
    p.add_argument(
        "--target",
        default="predicted",
        metavar="CLASS",
        help="'predicted' (each image's top-1, the default) or a class name",
    )
    p.add_argument("--layer", default=None, metavar="NAME", help="module to take the CAM at (default: automatic)")
    p.add_argument("--output_dir", default=None, metavar="OUT", help="default: <run folder>/explain/")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from artifacts.model_io import load_model_from_checkpoint
    from data.images import ImageError
    from evaluation.cam import Explainer, target_index
    from evaluation.explain import empty_warning, explain_file
    from evaluation.inputs import expand_inputs
    from runtime.runtime import resolve_device

    found = expand_inputs(args.inputs)
    if not found.paths:
        raise AppError(f"nothing to explain: no image files found in {', '.join(args.inputs)}")
    loaded = load_model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    target = target_index(args.target, loaded.class_names)
    explainer = Explainer(loaded, args.method, args.layer)
    out_dir = check_writable(
        args.output_dir if args.output_dir else Path(args.checkpoint).resolve().parent / "explain",
        "--output_dir",
        folder=True,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"{args.method} at layer {explainer.layer_name} of {loaded.cfg.model}; writing to {out_dir}")
    written, failed, explanations = 0, 0, []
    progress = bar(found.paths, total=len(found.paths), desc="explain", unit="images")
    for path in progress:
        try:
            out, ex = explain_file(explainer, path, target, out_dir)
        except (ImageError, OSError) as e:
            print(f"{path}  ERROR: {str(e).removeprefix(f'{path}: ')}", file=sys.stderr)
            failed += 1
            continue
        written += 1
        explanations.append(ex)
        progress.write(f"{path} -> {out}" + ("  (empty map)" if ex.empty else ""))
    print(
        f"wrote {plural(written, 'CAM figure')} to {out_dir}"
        + (f"; {plural(failed, 'file')} could not be read" if failed else "")
    )
    empty = empty_warning(explainer, explanations)
    if empty:
        print(f"warning: {empty}", file=sys.stderr)
    if not written:
        raise AppError(f"none of the {plural(failed, 'input')} could be read as an image")
    return 0


if __name__ == "__main__":
    run_cli(main)
