"""Evaluate a checkpoint on its dataset's val or test split: metrics, confusion matrix, errors, calibration.

The model, classes, preprocessing and dataset all come from the checkpoint; no model flags.

Examples:
    python evaluate.py --checkpoint checkpoints/custom_digits/best.pt            # test split
    python evaluate.py --checkpoint checkpoints/exp1/best.pt --split val --output_dir reports/exp1_val
    python evaluate.py --checkpoint run/best.pt --data_dir /data/moved           # dataset moved since training

Writes to OUT (default ``<run folder>/eval_<split>/``): metrics.json, confusion_matrix.csv,
confusion_matrix.png, misclassified.csv, reliability.png.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from common.errors import AppError, run_cli
from common.cli import cli_parser


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a .pt file written by train.py")
    p.add_argument("--split", choices=("val", "test"), default=None,
                   help="split to evaluate (default: test, or val when the dataset has no test split)")
    p.add_argument("--data_dir", default=None, metavar="D", help="dataset location, if not the one used in training")
    p.add_argument("--output_dir", default=None, metavar="OUT", help="default: <run folder>/eval_<split>/")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--batch_size", type=int, default=256, metavar="N", help="(default: 256)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Heavy imports only once the command line is known to be good.
    import torch

    from data.loader import make_loader
    from engine.loop import predict_logits
    from engine.runtime import resolve_device
    from data import prepare_data
    from engine.model_io import load_model_from_checkpoint
    from evaluation.metrics import evaluate_predictions
    from evaluation.report import EVAL_FILES, format_evaluation, write_evaluation

    device = resolve_device(args.device)
    loaded = load_model_from_checkpoint(args.checkpoint, device)
    cfg = loaded.cfg
    if args.data_dir is not None:
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    bundle = prepare_data(cfg)  # the same dataset, split and resize as in training
    if [str(c) for c in bundle.class_names] != loaded.class_names:
        raise AppError(f"dataset '{cfg.dataset}' in {cfg.data_dir} has classes {_preview(bundle.class_names)} but "
                       f"the checkpoint was trained on {_preview(loaded.class_names)}; pass the --data_dir it "
                       f"was trained on")
    split_name = args.split or ("test" if bundle.test is not None else "val")
    split = bundle.split(split_name)
    run_folder = Path(args.checkpoint).resolve().parent
    out_dir = Path(args.output_dir) if args.output_dir else run_folder / f"eval_{split_name}"

    # The training code's own loader: in-memory or streamed from disk, whichever the split is.
    loader = make_loader(split, max(1, args.batch_size), loaded.preprocessing, device,
                         num_workers=cfg.num_workers, strict=cfg.strict_data)
    logits, labels = predict_logits(loaded.model, loader, loaded.amp, tta=cfg.tta)
    ids = [split.sample_id(i) for i in range(len(split))]
    if len(labels) != len(split):  # a streamed split skipped unreadable files: positions no longer match
        print(f"warning: {len(split) - len(labels)} unreadable files were skipped; misclassified.csv numbers "
              f"the samples that were read instead of naming them")
        ids = [f"read sample {i}" for i in range(len(labels))]
    ev = evaluate_predictions(labels.numpy(), torch.softmax(logits, 1).numpy(), loaded.class_names)
    print(f"{cfg.model} from {args.checkpoint} on {cfg.dataset} ({split_name} split)")
    print(format_evaluation(ev, loaded.class_names, split_name))
    write_evaluation(ev, loaded.class_names, ids, out_dir)
    print(f"wrote {', '.join(EVAL_FILES)} to {out_dir}")
    return 0


def _preview(names: Sequence, limit: int = 6) -> str:
    names = [str(n) for n in names]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return "[" + ", ".join(names[:limit]) + more + "]"


if __name__ == "__main__":
    run_cli(main)
