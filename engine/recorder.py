"""The results-database sink of a training run: the run's row, one row per epoch, per-class test metrics.

The trainer calls four methods (``start``, ``epoch``, ``finish`` and the context manager around the
epoch loop that records a stop or a failure). The database is a convenience, never a reason to lose
a run: the first error (locked past the busy timeout, corrupt file, full disk) prints one warning and
the recorder turns itself off; metrics.csv stays the record and ``results.py import`` rebuilds.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from engine import config as config_mod
from engine.interrupt import Interrupted
from engine.trial_report import Pruned
from resultsdb.db import DB_ERRORS, DB_FILE, ResultsDB, as_json, now
from resultsdb.server import is_url

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
    return [{"class_id": i, "class_name": str(class_names[i]), "accuracy": float(r[i]), "precision": float(p[i]),
             "recall": float(r[i]), "f1_score": float(f[i]), "support": int(s[i])} for i in labels]


def safe_db_call(path: Path | None, what: str, fn) -> Any:
    """Run ``fn(db)`` on the database at ``path``; on failure warn once on stderr and return None."""
    if path is None:
        return None
    try:
        with ResultsDB(path, timeout=BUSY_TIMEOUT_S) as db:  # read at call time: tests shorten it
            return fn(db)
    except DB_ERRORS as e:
        print(f"warning: results database {path}: {e} ({what} not recorded; metrics.csv is unaffected, "
              f"`python results.py import` rebuilds the database)", file=sys.stderr)
        return None


class RunRecorder:
    """Records one run; after the first database error it stays silent and does nothing."""

    def __init__(self, cfg, run_dir: Path, timeout: float | None = None):
        self.path = db_path(cfg)
        self.run_dir = run_dir
        self.cfg = cfg
        self.timeout = BUSY_TIMEOUT_S if timeout is None else timeout
        self.db: ResultsDB | None = None
        self.run_id: int | None = None
        self.hyper = "{}"

    def _do(self, what: str, fn) -> None:
        if self.path is None:
            return
        try:
            if self.db is None:
                self.db = ResultsDB(self.path, timeout=self.timeout)
            fn(self.db)
        except DB_ERRORS as e:
            print(f"warning: results database {self.path}: {e}; training goes on without it (metrics.csv is "
                  f"the record; `python results.py import {self.run_dir.parent}` rebuilds the database)",
                  file=sys.stderr)
            self.path = None  # one warning, then nothing more
            self.close()

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except DB_ERRORS:
                pass
            self.db = None

    def start(self, model: torch.nn.Module | None, history: list[dict]) -> None:
        """A fresh run (``model`` given: its initial weights are hashed) or a resumed one (None)."""
        from schedulers import resolve_params
        cfg = self.cfg
        self.hyper = as_json(resolve_params(cfg.scheduler, cfg.scheduler_params, cfg.epochs, cfg.monitor))
        fields = dict(model_name=cfg.model, dataset=cfg.dataset, scheduler_type=cfg.scheduler, seed=cfg.seed,
                      config=as_json(config_mod.to_dict(cfg)), status="running", epochs=cfg.epochs,
                      monitor=cfg.monitor, ended=None)
        if model is not None:
            fields.update(started=now(), init_weights=weights_hash(model))

        def write(db: ResultsDB) -> None:
            self.run_id = db.upsert_run(self.run_dir, **fields)
            if model is not None:
                db.clear_run(self.run_id)
            for i in range(len(history)):  # a resumed run re-records its past: harmless (upsert), self-healing
                self._write_epoch(db, history[: i + 1])
        self._do("the run", write)

    def _write_epoch(self, db: ResultsDB, history: list[dict]) -> None:
        row, cfg = history[-1], self.cfg
        db.upsert_epoch(self.run_id, {
            "model_name": cfg.model, "scheduler_type": cfg.scheduler, "dataset": cfg.dataset, "epoch": row["epoch"],
            "accuracy": row["val_acc"], "loss": row["val_loss"], "best_accuracy": max(r["val_acc"] for r in history),
            "hyperparameters": self.hyper, "lr": row["lr"], "train_loss": row["train_loss"],
            "train_accuracy": row["train_acc"]})

    def epoch(self, history: list[dict]) -> None:
        if self.run_id is not None:
            self._do(f"epoch {history[-1]['epoch']}", lambda db: self._write_epoch(db, history))

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.end("pruned" if issubclass(exc_type, Pruned) else
                     "stopped" if issubclass(exc_type, (Interrupted, KeyboardInterrupt)) else "failed")

    def end(self, status: str) -> None:
        """A run that ends without a result: stopped (Ctrl-C, SIGTERM), pruned (its trial) or failed (an error)."""
        if self.run_id is not None:
            self._do("the run's end", lambda db: db.upsert_run(self.run_dir, status=status, ended=now()))
        self.close()

    def finish(self, summary: dict[str, Any], split: str) -> None:
        """The run's result, and the per-class metrics of best.pt on ``split`` (``summary["per_class"]``)."""
        if self.run_id is None:
            return
        cfg = self.cfg

        def write(db: ResultsDB) -> None:
            db.upsert_run(self.run_dir, status="finished", ended=now(), best_epoch=summary["best_epoch"],
                          best_metric=summary["best_metric"], test_accuracy=summary.get("test_acc"),
                          test_loss=summary.get("test_loss"))
            db.write_classes(self.run_id, [{**r, "split": split, "model_name": cfg.model,
                                            "scheduler_type": cfg.scheduler, "epoch": summary["best_epoch"]}
                                           for r in summary.get("per_class", [])])
        self._do("the result", write)
        self.close()


def record_evaluation(cfg, checkpoint: Path, epoch: int, split: str, per_class_metrics: dict[str, dict],
                      results_db: str | None) -> Path | str | None:
    """evaluate.py's per-class metrics into class_data, under the checkpoint's run (added if unknown).

    ``results_db``: the --results_db flag (None: the run's own setting, else <run folder>/../results.db,
    the checkpoint_dir it was trained in). Returns the database written, or None.
    """
    run_dir = checkpoint.resolve().parent
    path = _db_file(cfg.results_db if results_db is None else results_db, run_dir.parent)
    if path is None:
        return None
    rows = [{"class_id": i, "class_name": name, "accuracy": m["recall"], "precision": m["precision"],
             "recall": m["recall"], "f1_score": m["f1"], "support": m["support"], "split": split,
             "model_name": cfg.model, "scheduler_type": cfg.scheduler, "epoch": epoch}
            for i, (name, m) in enumerate(per_class_metrics.items())]

    def write(db: ResultsDB) -> Path | str:
        run_id = db.run_id_of(run_dir)
        if run_id is None:  # evaluated before any database existed: the run gets a row (no status)
            run_id = db.upsert_run(run_dir, model_name=cfg.model, dataset=cfg.dataset, scheduler_type=cfg.scheduler,
                                   seed=cfg.seed, config=as_json(config_mod.to_dict(cfg)), epochs=cfg.epochs)
        db.write_classes(run_id, rows)
        return path
    return safe_db_call(path, "per-class metrics", write)
