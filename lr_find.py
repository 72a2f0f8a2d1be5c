"""LR range test: train briefly while the LR grows exponentially, and suggest the LR to train with.

Takes every train.py flag (same data, model, optimizer, AMP, batch size), plus its own. Nothing is
saved but the plot and the table: no checkpoint, no run folder. The suggestion is the LR where the
smoothed loss falls fastest; the minimum's LR / 10 is printed beside it. ``train.py --lr auto``
runs this same test first and trains with the suggestion.

Examples:
    python lr_find.py                                          # the Custom CNN on digits
    python lr_find.py --model resnet18 --image_size 32 --amp --num_iter 200
    python lr_find.py --dataset fashion_mnist --start_lr 1e-6 --end_lr 1 --output_dir reports/lr

Writes OUT/lr_find.csv (lr,loss,smoothed_loss) and OUT/lr_find.png; OUT defaults to
<checkpoint_dir>/lr_find/.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import ArgParser
from common.errors import UsageError, run_cli
from common.fileio import check_writable
from settings.config import LR_AUTO, parse_args
from settings.validate import check_config


def own_parser() -> ArgParser:
    p = ArgParser(description=__doc__, epilog="Any other flag is a train.py flag (python train.py --help).")
    p.add_argument("--start_lr", type=float, default=1e-7, help="first LR of the sweep (default: 1e-7)")
    p.add_argument("--end_lr", type=float, default=10.0, help="last LR of the sweep (default: 10)")
    p.add_argument("--num_iter", type=int, default=100, help="updates in the sweep (default: 100)")
    p.add_argument("--output_dir", default=None, metavar="OUT", help="default: <checkpoint_dir>/lr_find/")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, rest = own_parser().parse_known_args(argv)
    if not 0 < own.start_lr < own.end_lr:
        raise UsageError(f"need 0 < --start_lr < --end_lr (got {own.start_lr:g} and {own.end_lr:g})")
    if own.num_iter < 20:
        raise UsageError(f"--num_iter must be >= 20 (got {own.num_iter}): the smoothed loss needs that many points")
    cfg, _ = parse_args(rest, description=__doc__)
    if cfg.lr == LR_AUTO:  # the LR is what this finds; any number passes the check below
        cfg = dataclasses.replace(cfg, lr=own.start_lr)
    check_config(cfg)
    from data import prepare_data
    from engine.lr_finder import lr_range_test, report, write_outputs
    from engine.setup import resolve_runtime
    from runtime.runtime import resolve_device, seed_everything, set_threads

    seed_everything(cfg.seed, cfg.deterministic)
    threads = set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    bundle = prepare_data(cfg)
    cfg, choice, amp = resolve_runtime(cfg, bundle, device, threads, None)  # as train.py would train it
    print(choice.line())
    print(
        f"LR range test: {cfg.model} on {cfg.dataset}, {cfg.optimizer}, batch {cfg.batch_size}, device {device}, "
        f"{own.num_iter} updates from {own.start_lr:g} to {own.end_lr:g}"
    )
    out_dir = check_writable(own.output_dir or Path(cfg.checkpoint_dir) / "lr_find", "--output_dir", folder=True)
    result = lr_range_test(cfg, bundle, device, amp, own.start_lr, own.end_lr, own.num_iter)
    files = write_outputs(result, out_dir)
    print(report(result))
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
