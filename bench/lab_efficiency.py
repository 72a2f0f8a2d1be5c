"""Pruning that pays: the full grid against the pruned study over the same grid, in one process tree.

Both are ordinary ``sweep.py`` runs on the same data (digits), schedules and seeds, in fresh folders:
the full grid (no pruner) and the same grid with a pruner (ASHA by default; each trial runs its seeds
in turn and is judged on the mean over the seeds done). Printed: the epochs each trained (the robust
measure of compute on a shared machine), their wall time, and whether the pruned study's best
schedule is in the full grid's best/tied set (paired 95 % t-intervals over seeds of test accuracy,
as the leaderboard's verdict column gives them).

    python bench/lab_efficiency.py                              # 8 schedules x 3 seeds x 6 epochs
    python bench/lab_efficiency.py --epochs 8 --pruner median --jobs 2
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = ["step", "cosine", "onecycle", "plateau", "constant", "linear", "exponential", "warm_restarts"]


def run_sweep(out: Path, name: str, args, pruner: str) -> float:
    cmd = [sys.executable, str(ROOT / "sweep.py"), "--schedulers", *args.schedulers, "--seeds", *map(str, args.seeds),
           "--jobs", str(args.jobs), "--name", name, "--pruner", pruner, "--",
           "--checkpoint_dir", str(out), "--epochs", str(args.epochs), "--width", str(args.width), "--threads", "1",
           "--device", "cpu", "--amp", "off", "--channels_last", "off"]
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


def test_acc(sweep_dir: Path) -> dict[str, dict[int, float]]:
    """schedule -> seed -> test accuracy of best.pt, for the finished runs."""
    import json
    out: dict[str, dict[int, float]] = {}
    for summary in sweep_dir.glob("*/summary.json"):
        label, seed = summary.parent.name.rsplit("_s", 1)
        out.setdefault(label, {})[int(seed)] = json.loads(summary.read_text())["test_acc"]
    return out


def best_set(acc: dict[str, dict[int, float]]) -> tuple[str, set[str]]:
    """(the top schedule by mean, the schedules tied with it): paired t-interval over the seeds both
    have; tied when the 95 % interval of the difference contains 0 (scipy.stats.t)."""
    from scipy import stats
    top = max(acc, key=lambda s: statistics.fmean(acc[s].values()))
    tied = {top}
    for s, runs in acc.items():
        seeds = sorted(set(runs) & set(acc[top]))
        diffs = [runs[k] - acc[top][k] for k in seeds]
        if s == top or len(diffs) < 2:
            continue
        sd = statistics.stdev(diffs)
        half = stats.t.ppf(0.975, len(diffs) - 1) * sd / len(diffs) ** 0.5
        if statistics.fmean(diffs) + half >= 0:
            tied.add(s)
    return top, tied


def pruned_best(sweep_dir: Path) -> str:
    with open(sweep_dir / "leaderboard.csv", newline="") as f:
        return next(csv.DictReader(f))["schedule"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schedulers", nargs="+", default=SCHEDULES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time in each sweep (default: 1)")
    p.add_argument("--pruner", default="asha", choices=("median", "asha", "hyperband"))
    p.add_argument("--out", type=Path, default=None, help="folder for both sweeps (default: a temporary one)")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lab-efficiency-"))
    full_s = run_sweep(out, "full", args, "none")
    pruned_s = run_sweep(out, "pruned", args, args.pruner)
    full_e, pruned_e = epochs_trained(out / "full"), epochs_trained(out / "pruned")
    top, tied = best_set(test_acc(out / "full"))
    chosen = pruned_best(out / "pruned")
    print(f"{len(args.schedulers)} schedules x {len(args.seeds)} seeds x {args.epochs} epochs (digits, width "
          f"{args.width}, {args.jobs} run(s) at a time); folders in {out}")
    print("| sweep | epochs trained | wall time | best |")
    print("|---|---:|---:|---|")
    print(f"| full grid | {full_e} | {full_s:.0f} s | {top} (tied: {', '.join(sorted(tied - {top})) or 'none'}) |")
    print(f"| pruned ({args.pruner}) | {pruned_e} ({pruned_e / full_e:.2f}x) | {pruned_s:.0f} s "
          f"({pruned_s / full_s:.2f}x) | {chosen} |")
    print(f"same answer: {'yes' if chosen in tied else 'NO'} (the pruned study's best is "
          f"{'in' if chosen in tied else 'not in'} the full grid's best/tied set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
