"""Pruning that pays: the full grid against the pruned study over the same grid, in one process tree.

Both are ordinary ``sweep.py`` runs on the same data (digits), schedules and seeds, in fresh folders:
the full grid (no pruner) and the same grid with a pruner (ASHA by default; each trial runs its seeds
in turn and is judged on the mean over the seeds done). Printed: the epochs each trained (the robust
measure of compute on a shared machine), their wall time, and whether the pruned study's best
schedule is in the full grid's best/tied set (paired 95 % t-intervals over seeds of test accuracy,
as the leaderboard's verdict column gives them).

One pruned study is one sample: what it trains depends on the order its grid sampler tries the
configurations in (an early late-bloomer is never pruned, and every later trial must beat it).
``--replays N`` replays N random orders of the grid on the full grid's recorded validation curves,
through the sweep's own pruner and per-epoch reports (mean over the seeds done), and prints the
epochs each would have trained: the expected cost, not only one draw of it.

    python bench/lab_efficiency.py                              # 8 schedules x 3 seeds x 6 epochs
    python bench/lab_efficiency.py --epochs 8 --pruner median --jobs 2
    python bench/lab_efficiency.py --out /tmp/lab --replays 200    # reuses the sweeps in /tmp/lab
    python bench/lab_efficiency.py --all_presets                # the 35 presets: sweep.py --all_presets
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common.spelling import plural  # noqa: E402
from tracking.trial import make_pruner, mean_over_seeds, trial_step  # noqa: E402

SCHEDULES = ["step", "cosine", "onecycle", "plateau", "constant", "linear", "exponential", "warm_restarts"]


def run_sweep(out: Path, name: str, args, pruner: str) -> float:
    cmd = [
        sys.executable,
        str(ROOT / "sweep.py"),
        "--schedulers",
        *args.schedulers,
        "--seeds",
        *map(str, args.seeds),
        "--jobs",
        str(args.jobs),
        "--name",
        name,
        "--pruner",
        pruner,
        "--",
        "--checkpoint_dir",
        str(out),
        "--epochs",
        str(args.epochs),
        "--width",
        str(args.width),
        "--threads",
        "1",
        "--device",
        "cpu",
        "--amp",
        "off",
        "--channels_last",
        "off",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"error: sweep {name} failed (exit {done.returncode}); see {out / f'{name}.log'}")
    return seconds


def epochs_trained(sweep_dir: Path) -> int:
    total = 0
    for metrics in sweep_dir.glob("*/metrics.csv"):
        with open(metrics, newline="") as f:
            total += sum(1 for _ in csv.DictReader(f))
    return total


def board(sweep_dir: Path) -> list[dict[str, str]]:
    """The sweep's leaderboard.csv rows (resultsdb.leaderboard's columns), best first."""
    with open(sweep_dir / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


def best_set(rows: list[dict[str, str]]) -> tuple[str, set[str]]:
    """(the top schedule, the schedules its paired interval cannot tell from it): the verdict column."""
    return rows[0]["schedule"], {r["schedule"] for r in rows if r["verdict"] in ("best", "tied")}


def val_curve(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(r["val_acc"]) for r in csv.DictReader(f)]


def replay(full: Path, args, rows: list[dict[str, str]], orders: int) -> list[tuple[int, str]]:
    """(epochs trained, best finished schedule) of the pruned study for ``orders`` random grid orders,
    replayed on the full grid's curves: each trial reports as a live one does (lab/trials.py)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = {(s, k): val_curve(full / f"{s}_s{k}") for s in args.schedulers for k in args.seeds}
    score = {r["schedule"]: float(r["mean"]) for r in rows}
    rng, out = random.Random(0), []
    for _ in range(orders):
        study = optuna.create_study(
            direction="maximize", pruner=make_pruner(args.pruner, args.epochs * len(args.seeds))
        )
        epochs, finished = 0, []
        for schedule in rng.sample(args.schedulers, len(args.schedulers)):
            trial, pruned, done = study.ask(), False, []
            for k, seed in enumerate(args.seeds):
                for e, value in enumerate(curves[schedule, seed], 1):
                    epochs += 1
                    trial.report(mean_over_seeds(done, e, value), trial_step(k, args.epochs, e))
                    if trial.should_prune():
                        pruned = True
                        break
                if pruned:
                    break
                done.append(curves[schedule, seed])
            if pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, statistics.fmean(c[-1] for c in done))
                finished.append(schedule)
        out.append((epochs, max(finished, key=score.__getitem__)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schedulers", nargs="+", default=SCHEDULES)
    p.add_argument("--all_presets", action="store_true", help="the grid of sweep.py --all_presets (35 presets)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time in each sweep (default: 1)")
    p.add_argument("--pruner", default="asha", choices=("median", "asha", "hyperband"))
    p.add_argument("--out", type=Path, default=None, help="folder for both sweeps (default: a temporary one)")
    p.add_argument("--replays", type=int, default=100, help="grid orders replayed on the full grid's curves (0: none)")
    args = p.parse_args()
    if args.all_presets:
        from schedulers.registry import PRESET_IDS

        args.schedulers = sorted(set(PRESET_IDS.values()))
    out = args.out or Path(tempfile.mkdtemp(prefix="lab-efficiency-"))
    # A sweep re-run on its folder trains nothing new (sweep.py resumes), so --out reuses both halves;
    # their wall times are then only the re-runs' and printed as such.
    full_s = run_sweep(out, "full", args, "none")
    pruned_s = run_sweep(out, "pruned", args, args.pruner)
    full_e, pruned_e = epochs_trained(out / "full"), epochs_trained(out / "pruned")
    full_board = board(out / "full")
    top, tied = best_set(full_board)
    chosen = board(out / "pruned")[0]["schedule"]
    ranked = [r["schedule"] for r in full_board]
    print(
        f"{len(args.schedulers)} schedules x {len(args.seeds)} seeds x {args.epochs} epochs (digits, width "
        f"{args.width}, {plural(args.jobs, 'run')} at a time); folders in {out}"
    )
    print("| sweep | epochs trained | wall time | best |")
    print("|---|---:|---:|---|")
    print(f"| full grid | {full_e} | {full_s:.0f} s | {top} (tied: {', '.join(sorted(tied - {top})) or 'none'}) |")
    print(
        f"| pruned ({args.pruner}) | {pruned_e} ({pruned_e / full_e:.2f}x) | {pruned_s:.0f} s "
        f"({pruned_s / full_s:.2f}x) | {chosen} |"
    )
    print(
        f"same answer: {'yes' if chosen in tied else 'NO'} (the pruned study's best is "
        f"{'in' if chosen in tied else 'not in'} the full grid's best/tied set of {len(tied)} of "
        f"{len(ranked)} schedules; it ranks {ranked.index(chosen) + 1} of {len(ranked)} there by mean)"
    )
    if args.replays > 0:
        runs = replay(out / "full", args, full_board, args.replays)
        spent = [e for e, _ in runs]
        same = sum(best in tied for _, best in runs)
        print(
            f"{args.replays} grid orders replayed on the full grid's curves ({args.pruner}): epochs mean "
            f"{statistics.fmean(spent):.1f} ({statistics.fmean(spent) / full_e:.2f}x), min {min(spent)} "
            f"({min(spent) / full_e:.2f}x), max {max(spent)} ({max(spent) / full_e:.2f}x); "
            f"same answer in {same} of {args.replays}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
