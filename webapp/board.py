"""The page's leaderboard: the results database's ``runs`` table, one comparability group at a time.

The database is found through the folder boundary (a ``results.db`` that is a link to outside is
refused), opened read-only, and only the columns it has are read, so a database written by another
version, or being written by a running training, never breaks the page. Runs are compared only
within one group: the database's ``comparability_key`` when it has that column, else dataset and
model. Run folders are shown relative to the checkpoint folder; rows for folders outside it are
counted, not shown.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any
from urllib.request import pathname2url

from common.errors import AppError
from resultsdb.db import DB_FILE
from resultsdb.leaderboard import Board as Leaderboard
from resultsdb.leaderboard import Sample, rank
from webapp.boundary import Boundary

COLUMNS = (
    "run_dir",
    "model_name",
    "dataset",
    "scheduler_type",
    "seed",
    "status",
    "epochs",
    "best_epoch",
    "monitor",
    "best_metric",
    "test_accuracy",
    "test_loss",
    "comparability_key",
)
SORT_COLUMN = "test acc"  # shown first, so the order is visible however narrow the window


def pct(value: float | None) -> str:
    """A fraction as the page writes every accuracy and probability: 99.99%."""
    return "-" if value is None else f"{100 * value:.2f}%"


def pct_number(value: float | None) -> float | None:
    """The same rounding as :func:`pct`, as a number (tables sort numerically)."""
    return None if value is None else round(100 * float(value), 2)


@dataclass
class Board:
    rows: list[dict[str, Any]] = field(default_factory=list)  # each with "run", "group", "key"
    outside: int = 0  # rows whose run folder is not inside the checkpoint folder
    by_key: bool = False  # grouped by the database's comparability_key (else dataset and model)

    def keys(self, group: str) -> dict[str, int]:
        """The comparability keys within a dataset·model group, with their run counts, largest first."""
        counts: dict[str, int] = {}
        for r in self.rows:
            if r["group"] == group:
                counts[r["key"]] = counts.get(r["key"], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def table(self, group: str, key: str | None = None) -> list[dict[str, Any]]:
        """The leaderboard of one group (and key), best test accuracy first, its sort column first."""
        rows = [r for r in self.rows if r["group"] == group and (key is None or r["key"] == key)]
        rows.sort(
            key=lambda r: (
                r.get("test_accuracy") is None,
                -(r.get("test_accuracy") or 0),
                -(r.get("best_metric") or 0),
                r["run"],
            )
        )
        return [
            {
                SORT_COLUMN: pct_number(r.get("test_accuracy")),
                "run": r["run"],
                "schedule": r.get("scheduler_type"),
                "seed": r.get("seed"),
                "status": r.get("status"),
                "epochs": r.get("epochs"),
                "best epoch": r.get("best_epoch"),
                "best " + (r.get("monitor") or "metric"): _metric(r.get("monitor"), r.get("best_metric")),
                "test loss": None if r.get("test_loss") is None else round(r["test_loss"], 4),
            }
            for r in rows
        ]

    def schedules(self, group: str, key: str | None = None) -> Leaderboard:
        """The schedules of one group (and key) ranked as ``results.py best`` ranks them: test accuracy
        over seeds, paired intervals and verdicts (resultsdb.leaderboard); finished runs only."""
        rows = [
            r
            for r in self.rows
            if r["group"] == group and (key is None or r["key"] == key) and r.get("status", "finished") == "finished"
        ]
        samples = [
            Sample(str(r.get("scheduler_type") or "?"), int(r.get("seed") or 0), r.get("test_accuracy"), r["key"])
            for r in rows
        ]
        return rank(samples, "test_acc", key)


def summary_table(runs) -> list[dict[str, Any]]:
    """The leaderboard without a database: each run's summary.json, best test accuracy first.

    Chosen fields only: a summary also holds the run folder's absolute path, which the page never shows.
    """

    def acc(r):
        return r.summary.get("test_acc", r.summary.get("val_acc"))

    ordered = sorted(runs, key=lambda r: (acc(r) is None, -(acc(r) or 0), r.name))
    return [
        {
            SORT_COLUMN: pct_number(r.summary.get("test_acc")),
            "run": r.name,
            "status": "finished" if r.summary else "unfinished",
            "best epoch": r.summary.get("best_epoch"),
            "best " + str(r.summary.get("monitor") or "metric"): _metric(
                r.summary.get("monitor"), r.summary.get("best_metric")
            ),
            "stop reason": r.summary.get("stop_reason"),
        }
        for r in ordered
    ]


def _metric(monitor: str | None, value: float | None) -> float | None:
    """A monitored value in the page's format: accuracies as percentages, losses to 4 decimals."""
    if value is None:
        return None
    return pct_number(value) if monitor and "acc" in monitor else round(value, 4)


def read_board(box: Boundary) -> Board | None:
    """The results database's runs, or None when the checkpoint folder has no database."""
    path = box.file(DB_FILE)
    if path is None:
        return None
    try:
        conn = sqlite3.connect(f"file:{pathname2url(str(path))}?mode=ro", uri=True, timeout=2)
        try:
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            cols = [c for c in COLUMNS if c in have]
            fetched = conn.execute(f"SELECT {', '.join(cols)} FROM runs").fetchall() if "run_dir" in cols else []
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise AppError(
            f"{DB_FILE} cannot be read ({box.one_line(e)}); rebuild it with: "
            f"python results.py import <checkpoint folder> --results_db new.db"
        ) from None
    board = Board(by_key="comparability_key" in cols)
    for values in fetched:
        row = dict(zip(cols, values, strict=True))
        run = box.relative(str(row["run_dir"]))
        if run is None:
            board.outside += 1
            continue
        row["run"] = run
        row["group"] = f"{row.get('dataset') or '?'} · {row.get('model_name') or '?'}"
        row["key"] = str(row.get("comparability_key") or row["group"]) if board.by_key else row["group"]
        board.rows.append(row)
    return board
