"""The scheduler lab: train one model under several LR schedules (x seeds), or search settings, and rank them.

A sweep is an Optuna study. A grid (--schedulers x --seeds) is Optuna's GridSampler; --search FILE
samples settings (TPE by default) and prunes the trials that fall behind (ASHA by default). Each
trial runs its configuration on every seed, each a normal train.py run in
<checkpoint_dir>/<name>/<label>_s<seed>/ (log: train.log there), recorded in the results database.
The seed fixes the initial weights and the data order, so seed k of every schedule starts alike.

Examples:
    python sweep.py --schedulers step plateau cosine onecycle A0_021 -- --epochs 10
    python sweep.py --schedulers cosine onecycle --seeds 0 1 2 --jobs 2 --name fmnist -- --dataset fashion_mnist
    python sweep.py --all_presets --seeds 0 1 --name presets -- --epochs 10   # the 35 presets A0_001 ... A0_035
    python sweep.py --search configs/search.yaml --trials 30 --name search -- --epochs 8
    python sweep.py --schedulers cosine step --seeds 0 1 2 --metric val_loss --name by_loss
    python sweep.py --search configs/search.yaml --trials 30 --name search --storage postgresql://lab@db:5432/lab

Re-running the same command skips finished runs and resumes interrupted ones; --dry_run lists what it
would do. Ctrl-C stops every run after its current step, each resumable. Several sweep.py processes
with the same --name and --storage (on one machine or many) share the work; no run is trained twice.
At the end: a leaderboard (printed, and <name>/leaderboard.md, .csv), overlay plots <name>/lr.png and
val_acc.png, and Optuna's plots (optimization_history.png, ...). <name>/progress.txt shows progress live.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import ArgParser, cli_parser
from common.errors import UsageError, run_cli
from resultsdb.leaderboard import DEFAULT_METRIC, METRICS
from settings.config import parse_args

SET_BY_SWEEP = ("seed", "run_name", "resume")  # train.py flags the sweep sets per run (and scheduler in a grid)


def build_parser() -> ArgParser:
    p = cli_parser(
        __doc__,
        usage="python sweep.py (--schedulers S [S ...] [--all_presets] | --search FILE.yaml "
        "--trials N) [--seeds N [N ...]] [--jobs N] [--name NAME] [--storage URL] "
        "[--metric M] [--dry_run] -- [train.py flags]",
    )
    p.add_argument("--schedulers", nargs="+", default=[], metavar="S", help="schedule names or preset ids")
    p.add_argument("--all_presets", action="store_true", help="add the 35 presets A0_001 ... A0_035")
    p.add_argument(
        "--search",
        default="",
        metavar="FILE.yaml",
        help="a search space: train.py settings with a list of choices or {low, high[, log]}",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=0,
        metavar="N",
        help="configurations to try (default: the whole grid; needed with --sampler random/tpe)",
    )
    p.add_argument(
        "--sampler",
        choices=("grid", "random", "tpe"),
        default=None,
        help="(default: grid without --search, tpe with it)",
    )
    p.add_argument(
        "--pruner",
        choices=("none", "median", "asha", "hyperband"),
        default=None,
        help="stops trials that fall behind, at an epoch's end (default: none for grids, asha for searches)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        metavar="N",
        help="each configuration runs on every seed (default: 0)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="runs at a time (default: 1 on a GPU; on a CPU the free cores, threads split between jobs)",
    )
    p.add_argument(
        "--name",
        default="sweep",
        help="the sweep's folder under --checkpoint_dir and its study's name (default: sweep)",
    )
    p.add_argument(
        "--storage",
        default="",
        metavar="URL",
        help="the study's database (default: <name>/study.db, SQLite; postgresql://USER@HOST:PORT/DB for "
        "several machines; journal:PATH for Optuna's journal file)",
    )
    p.add_argument(
        "--confirm_seeds",
        type=int,
        default=0,
        metavar="K",
        help="after a search: run the top 3 configurations on K seeds and rank them",
    )
    p.add_argument(
        "--metric",
        choices=tuple(METRICS),
        default=DEFAULT_METRIC,
        help="what ranks the configurations and is each trial's value (default: test_acc, the test "
        "accuracy of best.pt; a run without a test split counts its validation value)",
    )
    p.add_argument("--dry_run", action="store_true", help="list every run as run, resume or skip; train nothing")
    return p


def schedule_list(names: Sequence[str], all_presets: bool) -> list[str]:
    out = list(names)
    if all_presets:
        from schedulers.presets import PRESETS

        out += list(PRESETS)
    if not out:
        raise UsageError("give --schedulers NAME ... and/or --all_presets, or --search FILE.yaml")
    return list(dict.fromkeys(out))  # order kept, duplicates dropped


def jobs_and_threads(device: str, runs: int, jobs: int) -> tuple[int, int]:
    """(parallel jobs, threads per job; 0 = train.py decides). ``jobs`` 0: automatic."""
    import torch

    from runtime.runtime import default_threads

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return jobs or 1, 0  # one GPU: parallel jobs would only queue on it
    cores = default_threads()  # the cores not busy with other work right now
    jobs = jobs or max(1, min(cores, runs))
    return jobs, max(1, cores // jobs)


def split_argv(argv: Sequence[str]):
    own, train_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args, extra = build_parser().parse_known_args(own)
    if extra:
        raise UsageError(
            f"unrecognized arguments: {' '.join(extra)} (train.py flags go after `--`: "
            f"python sweep.py --schedulers ... -- {' '.join(extra)})"
        )
    if args.jobs < 0 or args.trials < 0 or args.confirm_seeds < 0 or not args.name or "/" in args.name:
        raise UsageError("--jobs, --trials and --confirm_seeds must be >= 0 and --name a plain folder name")
    return args, list(train_args)


def main(argv: Sequence[str] | None = None) -> int:
    args, train_args = split_argv(list(sys.argv[1:] if argv is None else argv))
    cfg, script = parse_args(train_args)
    from lab import space as space_mod

    searching = bool(args.search)
    if searching and (args.schedulers or args.all_presets):
        raise UsageError("give either --schedulers/--all_presets (a grid) or --search FILE (put the schedules in it)")
    set_here = [*SET_BY_SWEEP, *(() if searching else ("scheduler",))]
    clash = [k for k in set_here if k in script["cli_keys"]]
    if clash:
        raise UsageError(
            f"the sweep sets --{', --'.join(clash)} for each run; leave {'it' if len(clash) == 1 else 'them'} "
            f"out of the train.py flags"
        )
    space = (
        space_mod.load_space(Path(args.search))
        if searching
        else space_mod.from_grid(schedule_list(args.schedulers, args.all_presets))
    )
    space_mod.check_space(space, train_args, script["cli_keys"], cfg.scheduler)
    sampler = args.sampler or ("tpe" if searching else "grid")
    pruner = args.pruner or ("asha" if searching else "none")
    trials = args.trials or space.size()
    if not trials:
        raise UsageError(f"--sampler {sampler} over ranges needs --trials N (how many configurations to try)")

    from lab import identity

    sweep_dir = Path(cfg.checkpoint_dir) / args.name
    settings = identity.settings_of(cfg, space.names())
    identity.check_or_write(sweep_dir, args.name, settings, write=not args.dry_run)
    from lab.plan import Plan

    plan = Plan(args, cfg, train_args, space, sweep_dir, settings, sampler, pruner, trials)
    if args.dry_run:
        return plan.dry_run()
    return plan.run()


if __name__ == "__main__":
    from common import prefork

    prefork.fork_helper_now()  # the runs' launcher, made before this process has threads
    run_cli(main)
