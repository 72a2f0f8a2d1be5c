"""The results database: one SQLite file that every run, evaluation and sweep writes into.

Three tables. ``runs``: one row per run folder (resuming a run updates its row), with its
``comparability_key`` (resultsdb/compare.py; added to older files when they are opened). ``scheduler_results``:
one row per (run, epoch), upserted, so a resumed run that replays an epoch never duplicates it.
``class_data``: per-class metrics of a checkpoint on a split, one row per (run, split, epoch, class).

Parallel writers (a sweep's jobs) are normal: WAL lets readers and one writer proceed together, and
the busy timeout makes a second writer wait for the lock instead of failing at once. metrics.csv,
config.yaml and summary.json in the run folder stay the source of truth: ``results.py import DIR``
rebuilds this file from them (see resultsdb/importer.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common.errors import AppError, first_line
from resultsdb.server import ServerConnection, ServerError, create_schema, is_url, sqlite_path

TASK = "img-classification"
DB_FILE = "results.db"  # the database's name in a --checkpoint_dir, unless --results_db says otherwise
DB_ERRORS = (sqlite3.Error, OSError, ServerError)  # what a database call can raise: callers catch these
STATUSES = ("running", "finished", "stopped", "interrupted", "pruned", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        INTEGER PRIMARY KEY,
    run_dir       TEXT NOT NULL UNIQUE,   -- absolute path of the run folder
    model_name    TEXT,
    dataset       TEXT,
    scheduler_type TEXT,
    seed          INTEGER,
    config        TEXT,                   -- the resolved config, JSON
    status        TEXT,                   -- running | finished | stopped | interrupted | pruned | failed
    started       TEXT,
    ended         TEXT,
    epochs        INTEGER,                -- planned epochs
    best_epoch    INTEGER,
    best_metric   REAL,
    monitor       TEXT,
    test_accuracy REAL,
    test_loss     REAL,
    init_weights  TEXT,                   -- hash of the initial weights: equal across a sweep's schedules
    comparability_key TEXT                -- equal for runs that differ only in schedule and seed (compare.py)
);
CREATE TABLE IF NOT EXISTS scheduler_results (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    model_name    TEXT,
    scheduler_type TEXT,
    dataset       TEXT,
    task          TEXT,
    epoch         INTEGER NOT NULL,
    accuracy      REAL,                   -- validation accuracy
    loss          REAL,                   -- validation loss
    best_accuracy REAL,                   -- best validation accuracy up to this epoch
    hyperparameters TEXT,                 -- the schedule's resolved parameters, JSON
    lr            REAL,
    train_loss    REAL,
    train_accuracy REAL,
    timestamp     TEXT,
    UNIQUE (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS class_data (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    split         TEXT NOT NULL,
    model_name    TEXT,
    scheduler_type TEXT,
    class_id      INTEGER NOT NULL,
    class_name    TEXT,
    accuracy      REAL,                   -- share of the class's images predicted right (= recall)
    precision     REAL,
    recall        REAL,
    f1_score      REAL,
    support       INTEGER,
    epoch         INTEGER NOT NULL,
    timestamp     TEXT,
    UNIQUE (run_id, split, epoch, class_id)
);
CREATE INDEX IF NOT EXISTS scheduler_results_by_group ON scheduler_results (dataset, model_name, scheduler_type);
"""

RUN_COLUMNS = (
    "model_name",
    "dataset",
    "scheduler_type",
    "seed",
    "config",
    "status",
    "started",
    "ended",
    "epochs",
    "best_epoch",
    "best_metric",
    "monitor",
    "test_accuracy",
    "test_loss",
    "init_weights",
    "comparability_key",
)
EPOCH_COLUMNS = (
    "model_name",
    "scheduler_type",
    "dataset",
    "task",
    "epoch",
    "accuracy",
    "loss",
    "best_accuracy",
    "hyperparameters",
    "lr",
    "train_loss",
    "train_accuracy",
    "timestamp",
)
CLASS_COLUMNS = (
    "split",
    "model_name",
    "scheduler_type",
    "class_id",
    "class_name",
    "accuracy",
    "precision",
    "recall",
    "f1_score",
    "support",
    "epoch",
    "timestamp",
)


def now() -> str:
    """Local time, ISO 8601 to the second: sorts as text."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def unusable(path: str | Path, e: sqlite3.Error, rebuild_from: str = "checkpoints") -> AppError:
    """The one line for a database file SQLite cannot use, with what to do about it."""
    text = first_line(e)
    if "readonly" in text or "read-only" in text:
        fix = "make it writable (chmod u+w), or copy it somewhere writable and pass --results_db COPY"
    else:
        fix = (
            f"it is damaged or not a results database; rebuild one from the run folders into a new file: "
            f"python results.py import {rebuild_from} --results_db NEW.db"
        )
    return AppError(f"results database {path} cannot be used ({text}): {fix}")


class ResultsDB:
    """A connection to the database (created with its schema on first use): a file path, or a
    SQLAlchemy URL -- ``sqlite:///PATH`` or a server's, ``postgresql://USER@HOST:PORT/DB``."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        if is_url(path) and sqlite_path(str(path)) is None:
            self.path = str(path)
            self.conn = ServerConnection(str(path), timeout)
            create_schema(self.conn, SCHEMA, timeout)
            return
        self.path = Path(sqlite_path(str(path)) or path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # IMMEDIATE: a write transaction takes the write lock when it begins, waiting up to the busy
        # timeout; a deferred one that reads first and then writes can get SQLITE_BUSY at once in WAL
        # mode when another process committed in between (no waiting can resolve that upgrade).
        self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level="IMMEDIATE")
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        # Two processes creating the file at once: switching to WAL and creating the tables can
        # report "locked" without waiting for the busy timeout, so the set-up is retried until it.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")  # readers never block the writer, nor it them
                with self.conn:
                    self.conn.executescript(SCHEMA)
                    self._migrate()
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _migrate(self) -> None:
        """Bring a database written by an older version up to SCHEMA (inside the set-up transaction)."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        if "comparability_key" not in columns:
            self.conn.execute("ALTER TABLE runs ADD COLUMN comparability_key TEXT")
        # Runs recorded before the key existed get it from their saved config.
        from resultsdb.compare import comparability_key

        for run_id, run_dir, config in self.conn.execute(
            "SELECT run_id, run_dir, config FROM runs WHERE comparability_key IS NULL AND config IS NOT NULL"
        ):
            self.conn.execute(
                "UPDATE runs SET comparability_key = ? WHERE run_id = ?",
                (comparability_key(json.loads(config), run_dir), run_id),
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writers -----------------------------------------------------------------------------------
    def upsert_run(self, run_dir: str | Path, **fields: Any) -> int:
        """Insert the run folder's row, or update the given fields of the existing one; returns run_id."""
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown runs columns: {sorted(unknown)}")
        key = str(Path(run_dir).resolve())
        with self.conn:
            self.conn.execute("INSERT INTO runs (run_dir) VALUES (?) ON CONFLICT (run_dir) DO NOTHING", (key,))
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                self.conn.execute(f"UPDATE runs SET {sets} WHERE run_dir = ?", (*fields.values(), key))
            return int(self.conn.execute("SELECT run_id FROM runs WHERE run_dir = ?", (key,)).fetchone()[0])

    def clear_run(self, run_id: int) -> None:
        """Forget a run's epochs and class rows: a fresh run is starting in a folder used before."""
        with self.conn:
            self.conn.execute("DELETE FROM scheduler_results WHERE run_id = ?", (run_id,))
            self.conn.execute("DELETE FROM class_data WHERE run_id = ?", (run_id,))

    def upsert_epoch(self, run_id: int, row: dict[str, Any]) -> None:
        """One epoch of one run; writing the same epoch again replaces it (resume replays, imports)."""
        values = {k: row.get(k) for k in EPOCH_COLUMNS}
        values["task"] = values["task"] or TASK
        values["timestamp"] = values["timestamp"] or now()
        cols = ", ".join(("run_id",) + EPOCH_COLUMNS)
        marks = ", ".join("?" * (len(EPOCH_COLUMNS) + 1))
        updates = ", ".join(f"{k} = excluded.{k}" for k in EPOCH_COLUMNS if k != "epoch")
        with self.conn:
            self.conn.execute(
                f"INSERT INTO scheduler_results ({cols}) VALUES ({marks}) "
                f"ON CONFLICT (run_id, epoch) DO UPDATE SET {updates}",
                (run_id, *values.values()),
            )

    def write_classes(self, run_id: int, rows: Iterable[dict[str, Any]]) -> None:
        """Per-class rows of one evaluation; evaluating the same checkpoint again replaces them."""
        cols = ", ".join(("run_id",) + CLASS_COLUMNS)
        marks = ", ".join("?" * (len(CLASS_COLUMNS) + 1))
        updates = ", ".join(f"{k} = excluded.{k}" for k in CLASS_COLUMNS)
        stamp = now()
        with self.conn:
            for row in rows:
                values = [row.get(k) for k in CLASS_COLUMNS]
                values[CLASS_COLUMNS.index("timestamp")] = row.get("timestamp") or stamp
                self.conn.execute(
                    f"INSERT INTO class_data ({cols}) VALUES ({marks}) "
                    f"ON CONFLICT (run_id, split, epoch, class_id) DO UPDATE SET {updates}",
                    (run_id, *values),
                )

    # --- readers -----------------------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return [{k: r[k] for k in r.keys()} for r in self.conn.execute(sql, tuple(params)).fetchall()]

    def run_id_of(self, run_dir: str | Path) -> int | None:
        row = self.conn.execute("SELECT run_id FROM runs WHERE run_dir = ?", (str(Path(run_dir).resolve()),)).fetchone()
        return int(row[0]) if row else None
