"""Draw learning-rate schedules without training: the LR of every optimizer update.

The LRs come from schedulers/simulate.py, which drives the same ``build_scheduler`` and warmup
wrapper the trainer uses with the same two events, and the flags are parsed by settings/config.py's
rules (``--scheduler_<param> VALUE``, checked against the registry) -- what you see is what
training does.

Examples:
    python plot_schedule.py --list                                # the catalog, torch's aliases, the presets
    python plot_schedule.py --png lr.png                          # the default run's schedule (cosine, 15 x 20)
    python plot_schedule.py --scheduler step_default --epochs 10 --steps_per_epoch 20 --png p.png   # preset A0_007
    python plot_schedule.py --scheduler cosine --scheduler_T_max 5 --epochs 10 --steps_per_epoch 20  # torch's name
    python plot_schedule.py --scheduler cosine --warmup_epochs 1 --epochs 10 --steps_per_epoch 50 --png lr.png
    python plot_schedule.py --scheduler step --scheduler_step_size 3 --epochs 10 --steps_per_epoch 20 --csv lr.csv
    python plot_schedule.py --scheduler plateau --scheduler_patience 1 --epochs 8 --steps_per_epoch 10 \\
        --val_losses 1.0,0.8,0.7,0.7,0.7,0.7,0.7,0.7 --png plateau.png
    python plot_schedule.py --scheduler onecycle --compare cosine hf_linear warmup_stable_decay \\
        --warmup_epochs 1 --epochs 20 --steps_per_epoch 25 --png docs/schedules.png
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from common.cli import ArgParser, cli_parser
from common.errors import UsageError, run_cli
from common.figures import pyplot, save_figure
from common.fileio import write_atomic
from common.spelling import plural
from settings.config import LR_AUTO, Config, add_config_flags, apply_overrides, scheduler_flags
from settings.validate import check_schedule, check_warmup

# Updates per epoch of the default training run: the bundled digits' 1,257 training images in
# batches of 64 (tests/test_plot_schedule.py checks it against the data).
DEFAULT_STEPS_PER_EPOCH = 20
# The settings this script shares with train.py: same flags, types, defaults and help.
SHARED = ("scheduler", "lr", "epochs", "warmup_epochs", "warmup_steps", "warmup_mode", "warmup_start_factor", "monitor")
# Overlaid curves differ in dash, marker and width (the first drawn widest), so that curves that
# coincide -- several schedules hold the base LR for a while -- all stay visible.
DASHES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 and 4 dashes: 28 curves before a pair repeats


def get_args_parser() -> ArgParser:
    p = cli_parser(__doc__)
    add_config_flags(p, SHARED)
    p.add_argument(
        "--steps_per_epoch",
        type=int,
        default=DEFAULT_STEPS_PER_EPOCH,
        metavar="N",
        help=f"optimizer updates per epoch: training images / batch_size / accum_steps, rounded up "
        f"(train.py prints it; default: {DEFAULT_STEPS_PER_EPOCH}, the default run's: 1,257 "
        f"digits images in batches of 64)",
    )
    p.add_argument(
        "--val_losses",
        metavar="V1,V2,...",
        default="",
        help="per-epoch values of the monitored metric for metric-driven schedules (default: no improvement)",
    )
    p.add_argument(
        "--csv", metavar="OUT.csv", help="write --scheduler's curve: step,epoch,lr, one row per update (both 1-based)"
    )
    p.add_argument("--png", metavar="OUT.png", help="draw the curves")
    p.add_argument(
        "--log_y",
        action="store_true",
        help="LR on a log axis: decays over orders of magnitude (step, plateau) stay apart instead of "
        "all lying on 0; updates at LR 0 are left out",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="NAME2",
        default=[],
        help="more schedules on the same plot, with their default hyperparameters",
    )
    p.add_argument("--list", action="store_true", help="print the catalog, torch's argument names and the presets")
    p.add_argument("--markdown", action="store_true", help="with --list: print the tables of docs/schedules.md")
    p.epilog = "Schedule hyperparameters: --scheduler_<param> VALUE (see --list)."
    return p


def _losses(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--val_losses must be numbers separated by commas, got '{text}'") from None


def write_csv(points, steps_per_epoch: int, path: Path) -> None:
    """One row per optimizer update: its 1-based number, its 1-based epoch, the LR it used."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["step", "epoch", "lr"])
    for p in points:
        w.writerow([p.step + 1, p.step // steps_per_epoch + 1, repr(p.lr)])
    write_atomic(buf.getvalue().encode(), Path(path))


def figure(curves: dict[str, list], title: str, steps_per_epoch: int, epochs: int, log_y: bool = False):
    """The LR of every update against the epoch, numbered from 1: epoch k runs from k to k + 1."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = pyplot().subplots(figsize=(9, 4.2))
    n = len(curves)
    for i, (label, points) in enumerate(curves.items()):
        every = max(1, len(points) // 10)
        ax.plot(
            [1 + p.step / steps_per_epoch for p in points],
            [p.lr for p in points],
            label=label,
            linestyle=DASHES[i % len(DASHES)],
            linewidth=3.0 - 1.8 * i / max(n - 1, 1),
            marker=MARKERS[i % len(MARKERS)],
            markersize=5,
            markevery=(i * every // n, every),
        )
    ax.set_xlim(1, epochs + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate (log scale)" if log_y else "learning rate")
    if log_y:
        ax.set_yscale("log", nonpositive="mask")  # LR 0 (a cosine's last update) has no place on it
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside, never on a curve
    return fig


def summary(label: str, points) -> str:
    lrs = [p.lr for p in points]
    return (
        f"{label}: {plural(len(lrs), 'update')}, LR first {lrs[0]:.4g}, max {max(lrs):.4g}, "
        f"min {min(lrs):.4g}, last {lrs[-1]:.4g}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_args_parser()
    ns, rest = parser.parse_known_args(argv)
    from schedulers.listing import catalog_markdown, catalog_text, presets_markdown

    if ns.list:
        print(catalog_markdown() + "\n\n" + presets_markdown() if ns.markdown else catalog_text())
        return 0
    given = {k: v for k, v in vars(ns).items() if k in SHARED}
    cfg = apply_overrides(Config(), {**given, **scheduler_flags(rest, parser)}, source="command line")
    if cfg.lr == LR_AUTO:
        raise UsageError(f"--lr {LR_AUTO} needs training data (python lr_find.py); give a number here")
    if cfg.epochs < 1 or ns.steps_per_epoch < 1 or cfg.lr <= 0:
        raise UsageError("--epochs and --steps_per_epoch must be >= 1, --lr > 0")
    check_warmup(cfg)
    check_schedule(cfg, also=ns.compare)  # every name checked before anything is simulated

    from schedulers import make_plan
    from schedulers.simulate import simulate

    plan = make_plan(cfg.epochs, ns.steps_per_epoch, cfg.warmup_epochs, cfg.warmup_steps)
    losses = _losses(ns.val_losses)
    curves = {}
    for name in (cfg.scheduler, *ns.compare):
        params = cfg.scheduler_params if name == cfg.scheduler else {}
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        curves[label] = simulate(
            name,
            params,
            cfg.epochs,
            ns.steps_per_epoch,
            plan.warmup_steps,
            cfg.lr,
            losses,
            cfg.warmup_mode,
            cfg.warmup_start_factor,
            monitor=cfg.monitor,
        )
    if ns.csv:
        write_csv(next(iter(curves.values())), ns.steps_per_epoch, Path(ns.csv))
    if ns.png:
        warm = f", {cfg.warmup_mode} warmup {plural(plan.warmup_steps, 'update')}" if plan.warmup_steps else ""
        title = (
            f"LR of every update: base lr {cfg.lr:g}, {plural(cfg.epochs, 'epoch')} x "
            f"{plural(ns.steps_per_epoch, 'update')}{warm}"
        )
        save_figure(figure(curves, title, ns.steps_per_epoch, cfg.epochs, ns.log_y), ns.png, dpi=90, tight=True)
    for label, points in curves.items():
        print(summary(label, points))
    for f in (ns.csv, ns.png):
        if f:
            print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
