"""Draw learning-rate schedules without training: the LR of every optimizer update.

The LRs come from schedulers/simulate.py, which drives the same ``build_scheduler`` and warmup
wrapper the trainer uses with the same two events, and the flags are parsed by settings/config.py's
rules (``--scheduler_<param> VALUE``, checked against the registry) -- what you see is what
training does.

Examples:
    python plot_schedule.py --list                                # the catalog, torch's aliases, the presets
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
from pathlib import Path
from typing import Sequence

from common.cli import ArgParser, cli_parser
from common.errors import UsageError, run_cli
from common.figures import pyplot, save_figure
from common.fileio import write_atomic
from common.monitors import MONITORS
from settings.config import Config, apply_overrides, scheduler_flags
from settings.validate import check_warmup

DEFAULTS = Config()


def get_args_parser() -> ArgParser:
    p = cli_parser(__doc__)
    p.add_argument("--scheduler", metavar="NAME", help="any catalog name or preset (see --list)")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help=f"base LR (default: {DEFAULTS.lr})")
    p.add_argument("--epochs", type=int, help="epochs of training")
    p.add_argument("--steps_per_epoch", type=int, help="optimizer updates per epoch (batches / accum_steps)")
    p.add_argument("--warmup_epochs", type=float, default=0.0, help="warmup length in epochs (fractional allowed)")
    p.add_argument("--warmup_steps", type=int, default=0, help="or warmup length in updates")
    p.add_argument("--warmup_mode", default=DEFAULTS.warmup_mode, choices=("linear", "exponential", "cosine", "constant"),
                   help="shape of the warmup rise")
    p.add_argument("--warmup_start_factor", type=float, default=DEFAULTS.warmup_start_factor,
                   help=f"first update's LR as a fraction of the handover LR (default: {DEFAULTS.warmup_start_factor})")
    p.add_argument("--val_losses", metavar="V1,V2,...", default="",
                   help="per-epoch values of the monitored metric for metric-driven schedules (default: no "
                        "improvement)")
    p.add_argument("--monitor", default=DEFAULTS.monitor, choices=tuple(MONITORS),
                   help="what --val_losses are: val_acc makes plateau's mode max, as in training")
    p.add_argument("--csv", metavar="OUT.csv", help="write step,epoch,lr: one row per update (both 1-based)")
    p.add_argument("--png", metavar="OUT.png", help="draw the curve(s)")
    p.add_argument("--compare", nargs="+", metavar="NAME2", default=[],
                   help="more schedules on the same plot, with their default hyperparameters")
    p.add_argument("--list", action="store_true", help="print the catalog, torch's argument names and the presets")
    p.add_argument("--markdown", action="store_true", help="with --list: print the README tables")
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


def draw(curves: dict[str, list], title: str, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(8, 4.2), dpi=90)
    for label, points in curves.items():
        ax.plot([p.epoch for p in points], [p.lr for p in points], label=label, linewidth=1.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(curves) > 4 else 1)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_args_parser()
    ns, rest = parser.parse_known_args(argv)
    from schedulers.listing import catalog_markdown, catalog_text, presets_markdown
    if ns.list:
        print(catalog_markdown() + "\n\n" + presets_markdown() if ns.markdown else catalog_text())
        return 0
    missing = [f"--{k}" for k in ("scheduler", "epochs", "steps_per_epoch") if getattr(ns, k) is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)} (or use --list)")
    if ns.epochs < 1 or ns.steps_per_epoch < 1 or ns.lr <= 0:
        raise UsageError("--epochs and --steps_per_epoch must be >= 1, --lr > 0")
    cfg = apply_overrides(DEFAULTS, {"scheduler": ns.scheduler, "lr": ns.lr, "epochs": ns.epochs,
                                     "monitor": ns.monitor,
                                     "warmup_epochs": ns.warmup_epochs, "warmup_steps": ns.warmup_steps,
                                     "warmup_mode": ns.warmup_mode, "warmup_start_factor": ns.warmup_start_factor,
                                     **scheduler_flags(rest, parser)}, source="command line")
    check_warmup(cfg)

    from schedulers import make_plan, resolve_params
    from schedulers.simulate import simulate
    for name in (cfg.scheduler, *ns.compare):  # all names checked first; presets scale with --epochs
        resolve_params(name, cfg.scheduler_params if name == cfg.scheduler else {}, cfg.epochs, cfg.monitor)
    plan = make_plan(cfg.epochs, ns.steps_per_epoch, cfg.warmup_epochs, cfg.warmup_steps)
    losses = _losses(ns.val_losses)
    curves = {}
    for name in (cfg.scheduler, *ns.compare):
        params = cfg.scheduler_params if name == cfg.scheduler else {}
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        curves[label] = simulate(name, params, cfg.epochs, ns.steps_per_epoch, plan.warmup_steps, cfg.lr, losses,
                                 cfg.warmup_mode, cfg.warmup_start_factor, monitor=cfg.monitor)
    main_points = next(iter(curves.values()))
    if ns.csv:
        write_csv(main_points, ns.steps_per_epoch, Path(ns.csv))
    if ns.png:
        warm = f", {cfg.warmup_mode} warmup {plan.warmup_steps} updates" if plan.warmup_steps else ""
        draw(curves, f"lr {cfg.lr:g}, {cfg.epochs} epochs x {ns.steps_per_epoch} updates{warm}", Path(ns.png))
    lrs = [p.lr for p in main_points]
    print(f"{cfg.scheduler}: {len(lrs)} updates, LR first {lrs[0]:.4g}, max {max(lrs):.4g}, min {min(lrs):.4g}, "
          f"last {lrs[-1]:.4g}" + "".join(f"; wrote {f}" for f in (ns.csv, ns.png) if f))
    return 0


if __name__ == "__main__":
    run_cli(main)
