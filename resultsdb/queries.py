"""The questions ``results.py`` answers, as SQL over the results database; each returns a list of rows.

``best``: the best schedule per (model, dataset) -- each schedule scored by its best epoch over all its
runs, then ranked. ``classes``: per-class metrics of a run (or of every run of a schedule).
``runs``: one line per run. ``compare``: runs side by side, with the settings in which they differ.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from common.errors import UsageError
from resultsdb.db import ResultsDB

METRICS = {"accuracy": "DESC", "loss": "ASC"}  # validation metric -> which end is better


def best(db: ResultsDB, dataset: str | None = None, model: str | None = None, metric: str = "accuracy",
         epoch_max: int | None = None, top: int = 1) -> list[dict[str, Any]]:
    """The ``top`` schedules per (model, dataset), by their best validation ``metric`` up to ``epoch_max``."""
    if metric not in METRICS:
        raise UsageError(f"unknown --metric '{metric}'; valid: {', '.join(METRICS)}")
    where, params = ["1 = 1"], []
    for column, value in (("dataset", dataset), ("model_name", model)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if epoch_max is not None:
        where.append("epoch <= ?")
        params.append(epoch_max)
    order = METRICS[metric]
    sql = f"""
    WITH e AS (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY model_name, dataset, scheduler_type
                                     ORDER BY {metric} {order}, epoch ASC) AS pick
        FROM scheduler_results WHERE {' AND '.join(where)}),
    ranked AS (
        SELECT *, RANK() OVER (PARTITION BY model_name, dataset ORDER BY {metric} {order}) AS rank
        FROM e WHERE pick = 1)
    SELECT model_name, dataset, rank, scheduler_type, {metric}, epoch, run_id, hyperparameters
    FROM ranked WHERE rank <= ? ORDER BY model_name, dataset, rank, scheduler_type"""
    rows = db.query(sql, [*params, top])
    # Runs behind each schedule's score (COUNT(DISTINCT) cannot be a window function in SQLite).
    counts = {(r["model_name"], r["dataset"], r["scheduler_type"]): r["n"] for r in db.query(
        f"SELECT model_name, dataset, scheduler_type, COUNT(DISTINCT run_id) AS n FROM scheduler_results "
        f"WHERE {' AND '.join(where)} GROUP BY 1, 2, 3", params)}
    for r in rows:
        r["runs"] = counts[(r["model_name"], r["dataset"], r["scheduler_type"])]
    return rows


def classes(db: ResultsDB, target: str, epoch: int | None = None) -> list[dict[str, Any]]:
    """Per-class metrics of run ``target`` (a run_id) or of every run of schedule ``target``.

    Without ``epoch``: each run's latest evaluated epoch (per split)."""
    if target.isdigit():
        cond, value = "c.run_id = ?", int(target)
    else:
        cond, value = "c.scheduler_type = ?", target
    sql = f"""SELECT c.run_id, c.scheduler_type, c.split, c.epoch, c.class_id, c.class_name, c.accuracy,
                     c.precision, c.recall, c.f1_score, c.support
              FROM class_data c WHERE {cond} AND c.epoch = COALESCE(?, (SELECT MAX(epoch) FROM class_data d
                                                  WHERE d.run_id = c.run_id AND d.split = c.split))
              ORDER BY c.run_id, c.split, c.class_id"""
    rows = db.query(sql, [value, epoch])
    if not rows:
        have = db.query("SELECT DISTINCT run_id, scheduler_type, epoch FROM class_data ORDER BY run_id")
        listing = ", ".join(f"run {r['run_id']} ({r['scheduler_type']}, epoch {r['epoch']})" for r in have)
        raise UsageError(f"no per-class metrics for {'run ' if target.isdigit() else 'schedule '}{target}"
                         f"{f' at epoch {epoch}' if epoch is not None else ''}; "
                         f"recorded: {listing or 'none (a run records them when it finishes; evaluate.py too)'}")
    return rows


def runs(db: ResultsDB) -> list[dict[str, Any]]:
    return db.query("""
        SELECT r.run_id, r.status, r.model_name, r.dataset, r.scheduler_type, r.seed,
               COUNT(s.epoch) || '/' || COALESCE(CAST(r.epochs AS TEXT), '?') AS epochs, r.best_epoch,
               MAX(s.accuracy) AS best_val_acc, r.test_accuracy, r.started, r.run_dir
        FROM runs r LEFT JOIN scheduler_results s ON s.run_id = r.run_id
        GROUP BY r.run_id ORDER BY r.run_id""")


def compare(db: ResultsDB, run_ids: Sequence[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per run: result and the config keys that differ; one row per epoch: val acc of each run)."""
    found = {r["run_id"]: r for r in runs(db) if r["run_id"] in run_ids}
    missing = [str(i) for i in run_ids if i not in found]
    if missing:
        raise UsageError(f"no run with id {', '.join(missing)}; see `python results.py runs`")
    configs = {}
    for i in run_ids:
        row = db.query("SELECT config FROM runs WHERE run_id = ?", [i])[0]
        configs[i] = _flat(json.loads(row["config"] or "{}"))
    keys = sorted({k for c in configs.values() for k in c})
    differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1
              and k not in ("run_name", "resume")]
    table = []
    for i in run_ids:
        r = found[i]
        table.append({"run_id": i, "status": r["status"], "scheduler_type": r["scheduler_type"],
                      **{k: configs[i].get(k) for k in differ if k != "scheduler"},
                      "epochs": r["epochs"], "best_epoch": r["best_epoch"], "best_val_acc": r["best_val_acc"],
                      "test_accuracy": r["test_accuracy"]})
    per_epoch: dict[int, dict[str, Any]] = {}
    for row in db.query(f"SELECT run_id, epoch, accuracy FROM scheduler_results WHERE run_id IN "
                        f"({','.join('?' * len(run_ids))}) ORDER BY epoch", run_ids):
        per_epoch.setdefault(row["epoch"], {"epoch": row["epoch"]})[f"run {row['run_id']} val_acc"] = row["accuracy"]
    return table, list(per_epoch.values())


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """Config with its scheduler parameters as ``scheduler_<param>`` keys (how the flags spell them)."""
    out = {k: v for k, v in config.items() if k != "scheduler_params"}
    for k, v in (config.get("scheduler_params") or {}).items():
        out[f"scheduler_{k}"] = v
    return out
