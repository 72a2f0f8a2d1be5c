"""Rebuild the results database from run folders (``results.py import DIR``).

The run folder is the source of truth: ``config.yaml`` (the resolved config), ``metrics.csv`` (one row
per epoch), ``summary.json`` (the result and best.pt's per-class metrics, once the run finished) and
``eval_<split>/metrics.json`` (written by evaluate.py). Importing is idempotent: rows are upserted by
run folder and epoch, so importing twice, or into a database the runs already wrote, changes nothing.

Two things the folders do not hold exactly: a run without a valid summary.json is recorded as ``stopped``
(``running`` if it is still being trained cannot be told from the files), and ``hyperparameters``
are the schedule's parameters as configured, without the defaults the trainer would have filled in.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from common.errors import AppError, first_line
from common.run_files import read_summary
from resultsdb.compare import comparability_key
from resultsdb.db import ResultsDB, as_json


def find_runs(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) holding both config.yaml and metrics.csv."""
    return sorted({p.parent for p in root.rglob("metrics.csv") if (p.parent / "config.yaml").is_file()})


class UnreadableRun(AppError):
    """A run folder whose config.yaml or metrics.csv cannot be read: skipped by import_dir, with a warning."""


def read_config(folder: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_bytes().decode("utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UnreadableRun(f"config.yaml cannot be read ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(cfg, dict):
        raise UnreadableRun("config.yaml does not hold a mapping of settings")
    block = cfg.get("scheduler")
    if isinstance(block, dict):  # saved as {name: ..., <param>: ...}; flatten to the Config's shape
        block = dict(block)
        cfg["scheduler"] = block.pop("name", "")
        cfg["scheduler_params"] = block
    return cfg


def _read_metrics(folder: Path) -> list[dict[str, float]]:
    try:
        text = (folder / "metrics.csv").read_bytes().decode("utf-8")
        rows = [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(io.StringIO(text, newline=""))
        ]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as e:
        raise UnreadableRun(f"metrics.csv cannot be read ({type(e).__name__}: {first_line(e)})") from None
    if any("epoch" not in row for row in rows):
        raise UnreadableRun("metrics.csv has a row without an epoch")
    return rows


def import_run(db: ResultsDB, folder: Path) -> int:
    """Upsert one run folder; returns its run_id."""
    cfg = read_config(folder)
    rows = _read_metrics(folder)
    summary = read_summary(folder)  # None unless finished: a cut or 0-byte summary.json is not a result
    fields: dict[str, Any] = dict(
        model_name=cfg.get("model"),
        dataset=cfg.get("dataset"),
        scheduler_type=cfg.get("scheduler"),
        seed=cfg.get("seed"),
        config=as_json(cfg),
        epochs=cfg.get("epochs"),
        monitor=cfg.get("monitor"),
        comparability_key=comparability_key(cfg, folder),
        status="finished" if summary else "stopped",
    )
    if summary:
        fields.update(
            best_epoch=summary.get("best_epoch"),
            best_metric=summary.get("best_metric"),
            test_accuracy=summary.get("test_acc"),
            test_loss=summary.get("test_loss"),
        )
    run_id = db.upsert_run(folder, **fields)
    hyper = as_json(cfg.get("scheduler_params", {}))
    best = 0.0
    for row in rows:
        best = max(best, row.get("val_acc", 0.0))
        db.upsert_epoch(
            run_id,
            {
                "model_name": cfg.get("model"),
                "scheduler_type": cfg.get("scheduler"),
                "dataset": cfg.get("dataset"),
                "epoch": int(row["epoch"]),
                "accuracy": row.get("val_acc"),
                "loss": row.get("val_loss"),
                "best_accuracy": best,
                "hyperparameters": hyper,
                "lr": row.get("lr"),
                "train_loss": row.get("train_loss"),
                "train_accuracy": row.get("train_acc"),
            },
        )
    common = {"model_name": cfg.get("model"), "scheduler_type": cfg.get("scheduler")}
    if summary and summary.get("per_class"):
        split = "test" if "test_acc" in summary else "val"
        db.write_classes(
            run_id, [{**r, **common, "split": split, "epoch": summary["best_epoch"]} for r in summary["per_class"]]
        )
    # eval_* rows are filed under best.pt's epoch, else the last one trained
    epoch = summary.get("best_epoch") if summary else (int(rows[-1]["epoch"]) if rows else 0)
    for metrics in sorted(folder.glob("eval_*/metrics.json")):
        per = _eval_per_class(metrics)
        db.write_classes(
            run_id,
            [
                {
                    **common,
                    "split": metrics.parent.name.removeprefix("eval_"),
                    "epoch": epoch,
                    "class_id": i,
                    "class_name": name,
                    "accuracy": m["recall"],
                    "precision": m["precision"],
                    "recall": m["recall"],
                    "f1_score": m["f1"],
                    "support": m["support"],
                }
                for i, (name, m) in enumerate(per.items())
            ],
        )
    return run_id


def _eval_per_class(path: Path) -> dict[str, dict]:
    """evaluate.py's per-class metrics in ``path``; {} with a warning when the file is damaged."""
    want = ("precision", "recall", "f1", "support")
    try:
        per = json.loads(path.read_bytes().decode("utf-8")).get("per_class") or {}
        if all(isinstance(m, dict) and all(k in m for k in want) for m in per.values()):
            return per
        problem = "per_class rows lack precision/recall/f1/support"
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        problem = f"{type(e).__name__}: {first_line(e)}"
    print(f"warning: skipped {path} ({problem})", file=sys.stderr)
    return {}


def import_dir(db: ResultsDB, root: Path) -> list[Path]:
    """Import every run folder under ``root``; returns the folders imported. A folder whose files
    cannot be read is skipped with a warning on stderr: one damaged run must not stop a rebuild."""
    imported = []
    for folder in find_runs(root):
        try:
            import_run(db, folder)
        except UnreadableRun as e:
            print(f"warning: skipped {folder}: {e}", file=sys.stderr)
            continue
        imported.append(folder)
    return imported
