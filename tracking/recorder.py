"""The results-database sink of a training run: the run's row, one row per epoch, per-class test metrics.

A :class:`tracking.sink.Sink`: the run's row is ``running`` from ``start`` and ends with the status
``end`` gets. The database is a convenience, never a reason to lose a run: the first error (locked
past the busy timeout, corrupt file, full disk) prints one warning and the recorder turns itself
off; metrics.csv stays the record and ``results.py import`` rebuilds.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from resultsdb.compare import comparability_key
from resultsdb.db import DB_ERRORS, DB_FILE, ResultsDB, as_json, now
from resultsdb.server import is_url
from settings import config as config_mod
from tracking.sink import RunInfo, RunResult, Sink

BUSY_TIMEOUT_S = 30.0  # a sweep's jobs write a few rows per epoch: a lock is held for milliseconds


def db_path(cfg) -> Path | str | None:
    """``--results_db``: '' -> <checkpoint_dir>/results.db; 'none' -> no database; a URL as given."""
    return _db_file(cfg.results_db, Path(cfg.checkpoint_dir))


def _db_file(setting: str, default_dir: Path) -> Path | str | None:
    """A ``--results_db`` value: '' -> <default_dir>/results.db; 'none' -> None; a file, or a
    SQLAlchemy URL (``sqlite:///PATH``, ``postgresql://USER@HOST:PORT/DB``) kept as text."""
    if setting.lower() == "none":
        return None
    if is_url(setting):
        return setting
    return Path(setting) if setting else default_dir / DB_FILE


def weights_hash(model: torch.nn.Module) -> str:
    """A short digest of the weights: runs with the same seed and model must start from the same one."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype
    return h.hexdigest()[:16]


def class_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per-class accuracy (= recall: the share of the class's images predicted right), precision, F1."""
    from sklearn.metrics import precision_recall_fscore_support  # only at the end of a run: keep start-up light

    labels = list(range(len(class_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return [
        {
            "class_id": i,
            "class_name": str(class_names[i]),
            "accuracy": float(r[i]),
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1_score": float(f[i]),
            "support": int(s[i]),
        }
        for i in labels
    ]


def safe_db_call(path: Path | None, what: str, fn, rebuild_from: Path | None = None) -> Any:
    """Run ``fn(db)`` on the database at ``path``; on failure warn on stderr and return None.

    The database is a convenience, never a reason to lose a run or an evaluation: metrics.csv and
    the run folder stay the record, and ``results.py import`` rebuilds the database from them.
    """
    if path is None:
        return None
    try:
        with ResultsDB(path, timeout=BUSY_TIMEOUT_S) as db:  # read at call time: tests shorten it
            return fn(db)
    except DB_ERRORS as e:
        where = f" {rebuild_from}" if rebuild_from is not None else ""
        print(
            f"warning: results database {path}: {e} ({what} not recorded; metrics.csv is unaffected, "
            f"`python results.py import{where}` rebuilds the database)",
            file=sys.stderr,
        )
        return None


class RunRecorder(Sink):
    """The results-database sink; after the first database error it warns once and does nothing more."""

    def __init__(self, cfg, run_dir: Path):
        self.path = db_path(cfg)
        self.run_dir = run_dir
        self.cfg = cfg
        self.run_id: int | None = None
        self.hyper = "{}"
        self.history: list[dict] = []

    def _do(self, what: str, fn) -> None:
        ok = safe_db_call(self.path, what, lambda db: fn(db) or True, rebuild_from=self.run_dir.parent)
        if not ok:
            self.path = None  # one warning, then nothing more: training goes on without it

    def start(self, run: RunInfo) -> None:
        """A fresh run (``run.model`` given: its initial weights are hashed) or a resumed one."""
        from schedulers import resolve_params

        cfg, model = self.cfg, run.model
        self.history = list(run.history)
        self.hyper = as_json(resolve_params(cfg.scheduler, cfg.scheduler_params, cfg.epochs, cfg.monitor))
        config = config_mod.to_dict(cfg)
        fields = dict(
            model_name=cfg.model,
            dataset=cfg.dataset,
            scheduler_type=cfg.scheduler,
            seed=cfg.seed,
            config=as_json(config),
            status="running",
            epochs=cfg.epochs,
            monitor=cfg.monitor,
            ended=None,
            comparability_key=comparability_key(config, self.run_dir),
        )
        if model is not None:
            fields.update(started=now(), init_weights=weights_hash(model))

        def write(db: ResultsDB) -> None:
            self.run_id = db.upsert_run(self.run_dir, **fields)
            if model is not None:
                db.clear_run(self.run_id)
            for i in range(len(self.history)):  # a resumed run re-records its past: harmless (upsert), self-healing
                self._write_epoch(db, self.history[: i + 1])

        self._do("the run", write)

    def _write_epoch(self, db: ResultsDB, history: list[dict]) -> None:
        row, cfg = history[-1], self.cfg
        db.upsert_epoch(
            self.run_id,
            {
                "model_name": cfg.model,
                "scheduler_type": cfg.scheduler,
                "dataset": cfg.dataset,
                "epoch": row["epoch"],
                "accuracy": row["val_acc"],
                "loss": row["val_loss"],
                "best_accuracy": max(r["val_acc"] for r in history),
                "hyperparameters": self.hyper,
                "lr": row["lr"],
                "train_loss": row["train_loss"],
                "train_accuracy": row["train_acc"],
            },
        )

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.run_id is not None:
            self._do(f"epoch {row['epoch']}", lambda db: self._write_epoch(db, self.history))

    def finish(self, result: RunResult) -> None:
        """The run's result, and the per-class metrics of best.pt on the final split."""
        if self.run_id is None:
            return
        cfg, summary = self.cfg, result.summary

        def write(db: ResultsDB) -> None:
            db.upsert_run(
                self.run_dir,
                best_epoch=summary["best_epoch"],
                best_metric=summary["best_metric"],
                test_accuracy=summary.get("test_acc"),
                test_loss=summary.get("test_loss"),
            )
            db.write_classes(
                self.run_id,
                [
                    {
                        **r,
                        "split": result.split,
                        "model_name": cfg.model,
                        "scheduler_type": cfg.scheduler,
                        "epoch": summary["best_epoch"],
                    }
                    for r in summary.get("per_class", [])
                ],
            )

        self._do("the result", write)

    def end(self, status: str) -> None:
        """The run's status (finished, stopped, interrupted, failed) and when it ended."""
        if self.run_id is not None:
            self._do("the run's end", lambda db: db.upsert_run(self.run_dir, status=status, ended=now()))


def record_evaluation(
    cfg, checkpoint: Path, epoch: int, split: str, per_class_metrics: dict[str, dict], results_db: str | None
) -> Path | None:
    """evaluate.py's per-class metrics into class_data, under the checkpoint's run (added if unknown).

    ``results_db``: the --results_db flag (None: the run's own setting, else <run folder>/../results.db,
    the checkpoint_dir it was trained in). Returns the database written, or None.
    """
    run_dir = checkpoint.resolve().parent
    path = _db_file(cfg.results_db if results_db is None else results_db, run_dir.parent)
    if path is None:
        return None
    rows = [
        {
            "class_id": i,
            "class_name": name,
            "accuracy": m["recall"],
            "precision": m["precision"],
            "recall": m["recall"],
            "f1_score": m["f1"],
            "support": m["support"],
            "split": split,
            "model_name": cfg.model,
            "scheduler_type": cfg.scheduler,
            "epoch": epoch,
        }
        for i, (name, m) in enumerate(per_class_metrics.items())
    ]

    def write(db: ResultsDB) -> Path:
        run_id = db.run_id_of(run_dir)
        if run_id is None:  # evaluated before any database existed: the run gets a row (no status)
            config = config_mod.to_dict(cfg)
            run_id = db.upsert_run(
                run_dir,
                model_name=cfg.model,
                dataset=cfg.dataset,
                scheduler_type=cfg.scheduler,
                seed=cfg.seed,
                config=as_json(config),
                epochs=cfg.epochs,
                comparability_key=comparability_key(config, run_dir),
            )
        db.write_classes(run_id, rows)
        return path

    return safe_db_call(path, "per-class metrics", write)
