"""The leaderboard: per schedule, the metric over seeds with its 95 % interval, and the paired
difference to the top schedule with a verdict. One function ranks for every caller -- a sweep
(leaderboard.md/.csv, printed), ``results.py best`` and the page.

Columns (``COLUMNS``), one row per schedule, best mean first:

* ``runs``, ``mean``, ``std`` (sample standard deviation over seeds), ``ci95_low``/``ci95_high``: the
  t-interval of the mean, ``scipy.stats.t.interval(0.95, n - 1, loc=mean, scale=std / sqrt(n))``;
* ``diff_vs_best``: mean over the seeds both schedules ran of (this schedule - the top one), so seed k
  is compared with seed k (same initial weights, same data order); ``diff_ci95_low``/``high``: the
  paired t-interval, ``scipy.stats.ttest_rel(this, top).confidence_interval(0.95)``;
* ``verdict``: ``best`` for the top row; ``tied`` when the paired interval contains 0 (the data cannot
  tell them apart); ``worse`` when it lies on the worse side. With fewer than two shared seeds there
  is no interval: the interval columns and the verdict are empty and a note says ``ONE_SEED``.

Only comparable runs are ranked: those with one comparability key (resultsdb/compare.py); the rest
are counted in ``Board.left_out`` and the notes say so. Read from the run folders (summary.json,
metrics.csv, config.yaml) for a sweep, so ``--results_db none`` still gets its leaderboard.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.run_files import read_summary

# metric -> (what it is, higher is better)
METRICS = {
    "test_acc": ("test accuracy of best.pt", True),
    "test_loss": ("test loss of best.pt", False),
    "val_acc": ("best validation accuracy", True),
    "val_loss": ("lowest validation loss", False),
}
DEFAULT_METRIC = "test_acc"
COLUMNS = (
    "schedule",
    "runs",
    "mean",
    "std",
    "ci95_low",
    "ci95_high",
    "diff_vs_best",
    "diff_ci95_low",
    "diff_ci95_high",
    "verdict",
)
ONE_SEED = "1 seed: no confidence interval; add --seeds 0 1 2"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Sample:
    """One run's value of the metric (None: it has none yet), with what identifies it."""

    schedule: str
    seed: int
    value: float | None
    key: str | None = None  # comparability key


@dataclass
class RunResult:
    schedule: str
    seed: int
    folder: Path
    test_acc: float | None  # best.pt on the test split (None: no test split, or not finished)
    test_loss: float | None
    best_val_acc: float
    best_val_loss: float
    best_epoch: int | None  # epoch of best.pt (the --monitor metric's best)
    epochs: int  # epochs trained
    seconds: float  # training time: the sum of the epochs' seconds (resumes included, restarts not)
    val_acc: list[float]  # per epoch
    finished: bool
    key: str | None = None  # comparability key of its config.yaml
    val_loss: list[float] = field(default_factory=list)  # per epoch

    def curve(self, metric: str) -> list[float]:
        """The per-epoch validation values a sweep prunes on for ``metric`` (accuracy or loss)."""
        return self.val_loss if metric.endswith("_loss") else self.val_acc

    def sample(self, metric: str) -> Sample:
        value = {
            "test_acc": self.test_acc,
            "test_loss": self.test_loss,
            "val_acc": self.best_val_acc,
            "val_loss": self.best_val_loss,
        }[metric]
        return Sample(self.schedule, self.seed, value, self.key)


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
    key = None
    if (folder / "config.yaml").is_file():
        from resultsdb.compare import comparability_key
        from resultsdb.importer import UnreadableRun, read_config

        try:
            key = comparability_key(read_config(folder), folder)
        except UnreadableRun:
            key = None  # no settings to compare by: never ranked with others
    val = [float(r["val_acc"]) for r in rows]
    loss = [float(r["val_loss"]) for r in rows]
    return RunResult(
        schedule,
        seed,
        folder,
        summary.get("test_acc"),
        summary.get("test_loss"),
        max(val),
        min(loss),
        summary.get("best_epoch"),
        len(rows),
        sum(float(r["seconds"]) for r in rows),
        val,
        bool(summary),
        key,
        loss,
    )


@dataclass
class Board:
    metric: str
    rows: list[dict]  # COLUMNS, best first
    key: str | None = None  # the comparability key of the ranked runs
    left_out: int = 0  # runs with another comparability key
    no_value: int = 0  # runs without the metric yet (unfinished, or no test split)
    repeats: int = 0  # further runs of a (schedule, seed) already counted: the newest is kept
    notes: list[str] = field(default_factory=list)


def _t_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    from scipy import stats

    n = len(values)
    if n < 2:
        return None, None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    if sd == 0:  # scipy gives nan for a zero scale; every seed agreed exactly
        return mean, mean
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return float(low), float(high)


def _paired(mine: dict[int, float], top: dict[int, float]) -> tuple[float | None, float | None, float | None]:
    """(mean difference, interval low, high) over the seeds both have; interval None below 2 pairs."""
    from scipy import stats

    seeds = sorted(set(mine) & set(top))
    if not seeds:
        return None, None, None
    diffs = [mine[s] - top[s] for s in seeds]
    mean = statistics.fmean(diffs)
    if len(seeds) < 2:
        return mean, None, None
    if len(set(diffs)) == 1:  # no spread: the t-interval is undefined, the difference is exact
        return mean, mean, mean
    ci = stats.ttest_rel([mine[s] for s in seeds], [top[s] for s in seeds]).confidence_interval(CONFIDENCE)
    return mean, float(ci.low), float(ci.high)


def _verdict(low: float | None, high: float | None, higher_better: bool) -> str:
    if low is None:
        return ""
    if low <= 0 <= high:
        return "tied"
    return "worse" if (high < 0) == higher_better else "better"  # better: only on other seeds than the top's


def rank(samples: Sequence[Sample], metric: str = DEFAULT_METRIC, key: str | None = None) -> Board:
    """Rank the schedules of ``samples`` by ``metric``, only over runs whose comparability key is ``key``
    (None: the most common key among them)."""
    if metric not in METRICS:
        from common.errors import UsageError

        raise UsageError(f"unknown metric '{metric}'; valid: {', '.join(METRICS)}")
    higher_better = METRICS[metric][1]
    if key is None:
        counts = Counter(s.key for s in samples)
        key = counts.most_common(1)[0][0] if counts else None
    same = [s for s in samples if s.key == key]
    board = Board(metric, [], key, left_out=len(samples) - len(same))
    by_schedule: dict[str, dict[int, float]] = {}
    for s in same:  # later samples win: callers list runs oldest first
        if s.value is None or (isinstance(s.value, float) and math.isnan(s.value)):
            board.no_value += 1
            continue
        values = by_schedule.setdefault(s.schedule, {})
        board.repeats += s.seed in values
        values[s.seed] = float(s.value)
    sign = 1 if higher_better else -1
    order = sorted(by_schedule, key=lambda name: (-sign * statistics.fmean(by_schedule[name].values()), name))
    for i, name in enumerate(order):
        values = list(by_schedule[name].values())
        low, high = _t_interval(values)
        row = {
            "schedule": name,
            "runs": len(values),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "ci95_low": low,
            "ci95_high": high,
        }
        if i == 0:
            row.update(diff_vs_best=0.0, diff_ci95_low=None, diff_ci95_high=None, verdict="best")
        else:
            diff, dlow, dhigh = _paired(by_schedule[name], by_schedule[order[0]])
            row.update(
                diff_vs_best=diff,
                diff_ci95_low=dlow,
                diff_ci95_high=dhigh,
                verdict=_verdict(dlow, dhigh, higher_better),
            )
        board.rows.append(row)
    board.notes = _notes(board)
    return board


def leaderboard(results: Sequence[RunResult], metric: str = DEFAULT_METRIC, key: str | None = None) -> Board:
    """A sweep's board from its run folders (see :func:`read_run`)."""
    return rank([r.sample(metric) for r in results], metric, key)


def _notes(board: Board) -> list[str]:
    notes = []
    if any(r["runs"] == 1 for r in board.rows) or (
        len(board.rows) > 1 and all(r["diff_ci95_low"] is None for r in board.rows[1:])
    ):
        notes.append(ONE_SEED)
    if board.left_out:
        notes.append(
            f"{board.left_out} run{'s' * (board.left_out != 1)} left out for differing settings "
            f"(comparability key other than '{board.key}')"
        )
    if board.no_value:
        notes.append(
            f"{board.no_value} run{'s' * (board.no_value != 1)} without a {board.metric} yet "
            f"(unfinished, or no test split: rank those by val_acc) left out"
        )
    if board.repeats:
        notes.append(
            f"{board.repeats} repeated run{'s' * (board.repeats != 1)} of a schedule and seed: the newest counted"
        )
    return notes


def _fmt(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    if metric.endswith("_acc"):  # percent, as people read accuracy
        return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def format_row(board: Board, row: dict) -> dict[str, str]:
    """A row as text: accuracies in percent (2 decimals), losses with 4 decimals, differences signed."""
    m = board.metric
    return {
        "schedule": row["schedule"],
        "runs": str(row["runs"]),
        "mean": _fmt(m, row["mean"]),
        "std": _fmt(m, row["std"]),
        "ci95_low": _fmt(m, row["ci95_low"]),
        "ci95_high": _fmt(m, row["ci95_high"]),
        "diff_vs_best": _fmt(m, row["diff_vs_best"], True),
        "diff_ci95_low": _fmt(m, row["diff_ci95_low"], True),
        "diff_ci95_high": _fmt(m, row["diff_ci95_high"], True),
        "verdict": row["verdict"],
    }


def describe(board: Board) -> str:
    what, higher = METRICS[board.metric]
    unit = " in %" if board.metric.endswith("_acc") else ""
    return (
        f"{board.metric} ({what}{unit}; {'higher' if higher else 'lower'} is better) over seeds; "
        f"runs compared: {board.key}"
    )


def to_markdown(board: Board, title: str) -> str:
    lines = [
        f"### {title}",
        "",
        describe(board),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 2) + "---|",
    ]
    for row in board.rows:
        lines.append("| " + " | ".join(format_row(board, row).values()) + " |")
    lines.append("")
    lines.append(
        "ci95: t-interval of the mean over seeds; diff_*: paired by seed with the best schedule "
        "(t-interval, scipy.stats.ttest_rel); verdict tied: that interval contains 0."
    )
    lines += board.notes
    return "\n".join(lines) + "\n"


def to_csv(board: Board) -> str:
    """The rows as CSV: raw values (accuracies as fractions, 6 significant digits), empty where none."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in board.rows:
        w.writerow({k: ("" if r[k] is None else f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})
    return buf.getvalue()
