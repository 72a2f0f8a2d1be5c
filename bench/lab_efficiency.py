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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common.spelling import plural  # noqa: E402

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
    top, tied = best_set(board(out / "full"))
    chosen = board(out / "pruned")[0]["schedule"]
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
        f"{'in' if chosen in tied else 'not in'} the full grid's best/tied set)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
