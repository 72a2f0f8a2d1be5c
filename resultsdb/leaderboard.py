"""A sweep's leaderboard: per schedule, mean ± std over seeds of test and best validation accuracy.

Read from the run folders (summary.json, metrics.csv), not the database: the folders are the record,
and a sweep run with ``--results_db none`` still gets its leaderboard. Written as ``leaderboard.md``
and ``leaderboard.csv`` in the sweep folder.
"""
from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from common.run_files import read_summary


@dataclass
class RunResult:
    schedule: str
    seed: int
    folder: Path
    test_acc: float | None  # best.pt on the test split (None: no test split, or not finished)
    best_val_acc: float
    best_epoch: int | None  # epoch of best.pt (the --monitor metric's best)
    epochs: int  # epochs trained
    seconds: float  # training time: the sum of the epochs' seconds (resumes included, restarts not)
    val_acc: list[float]  # per epoch
    finished: bool


def read_run(schedule: str, seed: int, folder: Path) -> RunResult | None:
    """The result of one run folder, or None when it has no finished epoch yet."""
    try:
        with open(folder / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    if not rows:
        return None
    summary = read_summary(folder) or {}  # {} unless finished
    val = [float(r["val_acc"]) for r in rows]
    return RunResult(schedule, seed, folder, summary.get("test_acc"), max(val), summary.get("best_epoch"), len(rows),
                     sum(float(r["seconds"]) for r in rows), val, bool(summary))


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def leaderboard(results: Sequence[RunResult]) -> list[dict]:
    """One row per schedule, best mean test accuracy first (best val accuracy when there is no test split)."""
    by_schedule: dict[str, list[RunResult]] = {}
    for r in results:
        by_schedule.setdefault(r.schedule, []).append(r)
    rows = []
    for schedule, runs in by_schedule.items():
        tests = [r.test_acc for r in runs if r.test_acc is not None]
        t_mean, t_std = _mean_std(tests) if tests else (None, None)
        v_mean, v_std = _mean_std([r.best_val_acc for r in runs])
        best_epochs = [r.best_epoch for r in runs if r.best_epoch is not None]
        rows.append({"schedule": schedule, "runs": len(runs), "finished": sum(r.finished for r in runs),
                     "test_acc_mean": t_mean, "test_acc_std": t_std, "best_val_acc_mean": v_mean,
                     "best_val_acc_std": v_std,
                     "best_epoch_mean": statistics.fmean(best_epochs) if best_epochs else None,
                     "seconds_per_run": statistics.fmean(r.seconds for r in runs)})
    rows.sort(key=lambda r: (-(r["test_acc_mean"] if r["test_acc_mean"] is not None else -1), -r["best_val_acc_mean"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _pm(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


def to_markdown(rows: Sequence[dict], title: str) -> str:
    lines = [f"### {title}", "",
             "| rank | schedule | runs | test acc % (mean ± std) | best val acc % (mean ± std) | best.pt epoch | "
             "train s/run |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        epoch = "-" if r["best_epoch_mean"] is None else f"{r['best_epoch_mean']:.1f}"
        runs = f"{r['finished']}/{r['runs']}" if r["finished"] != r["runs"] else str(r["runs"])
        lines.append(f"| {r['rank']} | {r['schedule']} | {runs} | {_pm(r['test_acc_mean'], r['test_acc_std'])} | "
                     f"{_pm(r['best_val_acc_mean'], r['best_val_acc_std'])} | {epoch} | {r['seconds_per_run']:.1f} |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict]) -> str:
    cols = ["rank", "schedule", "runs", "finished", "test_acc_mean", "test_acc_std", "best_val_acc_mean",
            "best_val_acc_std", "best_epoch_mean", "seconds_per_run"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in cols})
    return buf.getvalue()
