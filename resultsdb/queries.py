"""The questions ``results.py`` answers, as SQL over the results database; each returns a list of rows.

``run_values``: per run, the value of a metric with its schedule, seed and comparability key (what
``best`` ranks with resultsdb/leaderboard.py); ``key_groups``: the keys among them. ``classes``: per-class
metrics of a run (or of every run of a schedule).
``runs``: one line per run. ``compare``: runs side by side, with the settings in which they differ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.errors import UsageError
from resultsdb.db import ResultsDB

# --metric -> its SQL over a run (r: runs, s: its epochs); only finished runs have a value
METRIC_SQL = {
    "test_acc": "r.test_accuracy",
    "test_loss": "r.test_loss",
    "val_acc": "MAX(s.accuracy)",
    "val_loss": "MIN(s.loss)",
}


def run_values(
    db: ResultsDB,
    metric: str,
    dataset: str | None = None,
    model: str | None = None,
    epochs: int | None = None,
    sweep: str | None = None,
    key: str | None = None,
    epoch_max: int | None = None,
) -> list[dict[str, Any]]:
    """One row per run that matches the filters, oldest first: its schedule, seed, comparability key
    and ``value`` of ``metric`` (None unless finished). ``sweep``: runs in a folder of that name (a
    sweep's runs are <checkpoint_dir>/<sweep>/<schedule>_s<seed>); ``key``: a comparability key or a
    prefix of its hash; ``epoch_max``: val_* metrics count epochs 1..N only."""
    if metric not in METRIC_SQL:
        raise UsageError(f"unknown --metric '{metric}'; valid: {', '.join(METRIC_SQL)}")
    if epoch_max is not None and metric.startswith("test_"):
        raise UsageError(f"--epoch_max applies to --metric val_acc or val_loss; {metric} is best.pt's score")
    where, params = ["1 = 1"], []
    for column, value in (("r.dataset", dataset), ("r.model_name", model), ("r.epochs", epochs)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    rows = db.query(
        f"""
        SELECT r.run_id, r.run_dir, r.scheduler_type, r.seed, r.comparability_key, r.dataset, r.model_name,
               r.epochs, CASE WHEN r.status = 'finished' THEN {METRIC_SQL[metric]} END AS value
        FROM runs r LEFT JOIN scheduler_results s ON s.run_id = r.run_id AND s.epoch <= COALESCE(?, s.epoch)
        WHERE {" AND ".join(where)} GROUP BY r.run_id ORDER BY r.run_id""",
        [epoch_max, *params],
    )
    if sweep is not None:
        rows = [r for r in rows if Path(r["run_dir"]).parent.name == sweep]
    if key is not None:
        rows = [
            r
            for r in rows
            if r["comparability_key"] == key or (r["comparability_key"] or "").rsplit(" ", 1)[-1].startswith(key)
        ]
    return rows


def key_groups(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparability keys among ``rows`` (from run_values), most runs first."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(
            r["comparability_key"],
            {
                "comparability_key": r["comparability_key"],
                "dataset": r["dataset"],
                "model": r["model_name"],
                "epochs": r["epochs"],
                "runs": 0,
                "schedules": set(),
                "seeds": set(),
            },
        )
        g["runs"] += 1
        g["schedules"].add(r["scheduler_type"])
        g["seeds"].add(r["seed"])
    out = sorted(groups.values(), key=lambda g: (-g["runs"], str(g["comparability_key"])))
    for g in out:
        g["schedules"], g["seeds"] = len(g["schedules"]), len(g["seeds"])
    return out


def classes(
    db: ResultsDB, target: str, epoch: int | None = None, same_schedule: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Per-class metrics of run ``target`` (a run_id) or of every run of schedule ``target`` (or of the
    ``same_schedule`` names: a preset's id, name and specification name select the same runs).

    Without ``epoch``: each run's latest evaluated epoch (per split)."""
    if target.isdigit():
        cond, values = "c.run_id = ?", [int(target)]
    else:
        values = list(dict.fromkeys([target, *same_schedule]))
        cond = f"c.scheduler_type IN ({','.join('?' * len(values))})"
    sql = f"""SELECT c.run_id, c.scheduler_type, c.split, c.epoch, c.class_id, c.class_name, c.accuracy,
                     c.precision, c.recall, c.f1_score, c.support
              FROM class_data c WHERE {cond} AND c.epoch = COALESCE(?, (SELECT MAX(epoch) FROM class_data d
                                                  WHERE d.run_id = c.run_id AND d.split = c.split))
              ORDER BY c.run_id, c.split, c.class_id"""
    rows = db.query(sql, [*values, epoch])
    if not rows:
        have = db.query("SELECT DISTINCT run_id, scheduler_type, epoch FROM class_data ORDER BY run_id")
        listing = ", ".join(f"run {r['run_id']} ({r['scheduler_type']}, epoch {r['epoch']})" for r in have)
        raise UsageError(
            f"no per-class metrics for {'run ' if target.isdigit() else 'schedule '}{target}"
            f"{f' at epoch {epoch}' if epoch is not None else ''}; "
            f"recorded: {listing or 'none (a run records them when it finishes; evaluate.py too)'}"
        )
    return rows


def runs(db: ResultsDB) -> list[dict[str, Any]]:
    return db.query("""
        SELECT r.run_id, r.status, r.model_name, r.dataset, r.scheduler_type, r.seed,
               COUNT(s.epoch) || '/' || COALESCE(CAST(r.epochs AS TEXT), '?') AS epochs, r.best_epoch,
               MAX(s.accuracy) AS best_val_acc, r.test_accuracy, r.started, r.comparability_key, r.run_dir
        FROM runs r LEFT JOIN scheduler_results s ON s.run_id = r.run_id
        GROUP BY r.run_id ORDER BY r.run_id""")


def compare(db: ResultsDB, run_ids: Sequence[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(one row per run: result and the settings that differ; one row per epoch: val acc of each run;
    notes). Only runs with the first run's comparability key are compared; the notes say which were
    left out and the first setting in which each differs."""
    from resultsdb.compare import first_difference

    found = {r["run_id"]: r for r in runs(db) if r["run_id"] in run_ids}
    missing = [str(i) for i in run_ids if i not in found]
    if missing:
        raise UsageError(f"no run with id {', '.join(missing)}; see `python results.py runs`")
    saved = {
        i: json.loads(db.query("SELECT config FROM runs WHERE run_id = ?", [i])[0]["config"] or "{}") for i in run_ids
    }
    ref = run_ids[0]
    left = [i for i in run_ids if found[i]["comparability_key"] != found[ref]["comparability_key"]]
    notes = (
        [
            f"{len(left)} run{'s' * (len(left) != 1)} left out for differing settings (compared: the settings of "
            f"run {ref}, {found[ref]['comparability_key']}): "
            + "; ".join(f"run {i}: {first_difference(saved[ref], saved[i])}" for i in left)
        ]
        if left
        else []
    )
    run_ids = [i for i in run_ids if i not in left]
    configs = {i: _flat(saved[i]) for i in run_ids}
    keys = sorted({k for c in configs.values() for k in c})
    differ = [
        k
        for k in keys
        if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1 and k not in ("run_name", "resume")
    ]
    table = []
    for i in run_ids:
        r = found[i]
        table.append(
            {
                "run_id": i,
                "status": r["status"],
                "scheduler_type": r["scheduler_type"],
                **{k: configs[i].get(k) for k in differ if k != "scheduler"},
                "epochs": r["epochs"],
                "best_epoch": r["best_epoch"],
                "best_val_acc": r["best_val_acc"],
                "test_accuracy": r["test_accuracy"],
            }
        )
    per_epoch: dict[int, dict[str, Any]] = {}
    for row in db.query(
        f"SELECT run_id, epoch, accuracy FROM scheduler_results WHERE run_id IN "
        f"({','.join('?' * len(run_ids))}) ORDER BY epoch",
        run_ids,
    ):
        per_epoch.setdefault(row["epoch"], {"epoch": row["epoch"]})[f"run {row['run_id']} val_acc"] = row["accuracy"]
    return table, list(per_epoch.values()), notes


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """Config with its scheduler parameters as ``scheduler_<param>`` keys (how the flags spell them)."""
    out = {k: v for k, v in config.items() if k != "scheduler_params"}
    for k, v in (config.get("scheduler_params") or {}).items():
        out[f"scheduler_{k}"] = v
    return out
