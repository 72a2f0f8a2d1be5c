"""Evaluate a checkpoint (or an ensemble of them) on its dataset's val or test split.

The model, classes, preprocessing and dataset all come from the checkpoint; no model flags.
Several ``--checkpoint``s of the same classes form an ensemble: each member reads the images with
its own preprocessing, their probabilities are averaged, and each member is reported beside it.

Examples:
    python evaluate.py --checkpoint checkpoints/custom_digits/best.pt            # test split
    python evaluate.py --checkpoint checkpoints/exp1/best.pt --split val --output_dir reports/exp1_val
    python evaluate.py --checkpoint run/best.pt --data_dir /data/moved           # dataset moved since training
    python evaluate.py --checkpoint run/best.pt --explain 20                     # + top_losses.png
    python evaluate.py --checkpoint custom/best.pt --checkpoint effnet/best.pt   # ensemble of two
    python evaluate.py --checkpoint run/best.pt --amp off                        # float32, whatever the run used

Writes to OUT (default ``<run folder>/eval_<split>/``, ``eval_<split>_ensemble/`` for an ensemble):
metrics.json, confusion_matrix.csv, confusion_matrix.png, misclassified.csv, reliability.png; with
``--explain K`` also top_losses.png (the K mistakes with the highest loss: input | Grad-CAM heat map).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.cli import cli_parser
from common.errors import UsageError, run_cli
from common.fileio import check_writable
from common.spelling import plural


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        metavar="PATH",
        help="a .pt file written by train.py (or .onnx from export.py); repeat for an ensemble",
    )
    p.add_argument(
        "--split",
        choices=("val", "test"),
        default=None,
        help="split to evaluate (default: test, or val when the dataset has no test split)",
    )
    p.add_argument("--data_dir", default=None, metavar="D", help="dataset location, if not the one used in training")
    p.add_argument("--output_dir", default=None, metavar="OUT", help="default: <run folder>/eval_<split>/")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument(
        "--amp",
        choices=("auto", "on", "off"),
        default="auto",
        help="autocast: auto = the run's own mode (the default: reproduces its summary.json), "
        "on = bfloat16 on CPU / the run's dtype on GPU, off = float32",
    )
    p.add_argument("--batch_size", type=int, default=256, metavar="N", help="images per forward pass (default: 256)")
    p.add_argument(
        "--results_db",
        default=None,
        metavar="PATH|none",
        help="where per-class metrics are recorded (default: the run's own results database; not for an ensemble)",
    )
    p.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="K",
        help="also draw top_losses.png: the K mistakes with the highest loss, with their Grad-CAMs",
    )
    p.add_argument(
        "--method",
        choices=("gradcam", "gradcam++", "eigencam"),
        default="gradcam",
        help="CAM method for --explain (default: gradcam)",
    )
    p.add_argument("--layer", default=None, metavar="NAME", help="layer for --explain's CAMs (default: automatic)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.output_dir:  # the default, next to the checkpoint, is checked once the split is known
        check_writable(args.output_dir, "--output_dir", folder=True)
    # Heavy imports only once the command line is known to be good.
    import torch

    from evaluation.ensemble import check_same_samples, load_members, score_split
    from evaluation.inference import precision
    from evaluation.metrics import evaluate_predictions
    from evaluation.report import EVAL_FILES, format_evaluation, format_members, write_evaluation
    from runtime.runtime import resolve_device

    members = load_members(args.checkpoint, resolve_device(args.device), args.amp)
    scored = [score_split(m, args.data_dir, args.split, args.batch_size) for m in members]
    check_same_samples(members, scored)
    first, ref = members[0], scored[0]
    if not ref.complete:
        print(
            f"warning: {len(ref.split) - len(ref.labels)} unreadable files were skipped; misclassified.csv "
            f"numbers the samples that were read instead of naming them"
        )
    names, labels = first.class_names, ref.labels.numpy()
    probs = torch.stack([s.probs for s in scored]).mean(0).numpy()
    ensemble = len(members) > 1
    suffix = "_ensemble" if ensemble else ""
    out_dir = (
        Path(args.output_dir)
        if args.output_dir
        else Path(args.checkpoint[0]).resolve().parent / f"eval_{ref.split_name}{suffix}"
    )
    check_writable(out_dir, "--output_dir", folder=True)
    ev = evaluate_predictions(labels, probs, names)
    if ensemble:
        member_evs = [evaluate_predictions(labels, s.probs.numpy(), names) for s in scored]
        print(format_members(members, member_evs, ev, ref.split_name))
        ev.metrics["members"] = [
            {"checkpoint": str(m.path), "model": m.cfg.model, **_headline(e)} for m, e in zip(members, member_evs)
        ]
        print()
    what = " + ".join(f"{m.cfg.model} ({m.path})" for m in members)
    print(
        f"{'ensemble of ' if ensemble else ''}{what} on {first.cfg.dataset} ({ref.split_name} split, "
        f"{precision(first)})"
    )
    print(format_evaluation(ev, names, ref.split_name))
    write_evaluation(ev, names, ref.ids, out_dir)
    print(f"wrote {', '.join(EVAL_FILES)} to {out_dir}")
    if not ensemble and not first.is_onnx:  # one PyTorch checkpoint: its run's class_data
        from tracking.recorder import record_evaluation

        db = record_evaluation(
            first.cfg, Path(first.path), first.epoch, ref.split_name, ev.metrics["per_class"], args.results_db
        )
        if db is not None:
            print(f"recorded per-class metrics in {db} (python results.py classes ...)")
    if args.explain > 0:
        _top_losses(first, ref, probs, labels, args, out_dir)
    return 0


def _headline(ev) -> dict:
    return {k: ev.metrics[k] for k in ("accuracy", "top5_accuracy", "macro_f1", "ece")}


def _top_losses(loaded, scored, probs, labels, args, out_dir: Path) -> None:
    """CAMs of the first member (a PyTorch checkpoint) for the ``--explain`` K highest-loss mistakes."""
    from evaluation.cam import Explainer
    from evaluation.explain import split_image, top_loss_indices, write_top_losses

    if not scored.complete:
        print("warning: --explain skipped: unreadable files were skipped, so samples cannot be matched")
        return
    idx = top_loss_indices(probs, labels, args.explain)
    if len(idx) == 0:
        print("no misclassified samples: no top_losses.png")
        return
    try:
        explainer = Explainer(loaded, args.method, args.layer)
    except UsageError as e:  # an .onnx first member: the evaluation itself is written, say why no picture
        print(f"warning: --explain skipped: {e}")
        return
    images = [split_image(scored.split, int(i), loaded.channels) for i in idx]
    empty = write_top_losses(explainer, images, probs, labels, idx, scored.ids, out_dir / "top_losses.png")
    n = len(idx)
    print(
        f"wrote top_losses.png (the {plural(n, 'mistake')} with the highest loss"
        f"{'' if n == args.explain else f'; only {n} of the {args.explain} asked for exist'}) to {out_dir}"
    )
    if empty:
        print(f"warning: {empty}")


if __name__ == "__main__":
    run_cli(main)
