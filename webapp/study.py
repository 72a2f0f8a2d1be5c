"""The Optuna studies of the sweeps under the checkpoint folder, and their trials with their states.

A sweep keeps its study in ``<sweep>/study.db`` (Optuna's SQLite storage, sweep.py's default). The
page finds those files through the folder boundary and reads them with Optuna's own API on a
read-only SQLite connection: the page never creates tables, upgrades a schema or writes a trial.
"""

from __future__ import annotations

import os
from typing import Any

from common.errors import AppError
from webapp.boundary import Boundary

STUDY_FILE = "study.db"


def find_studies(box: Boundary) -> list[str]:
    """Folders (relative to the checkpoint folder) that hold a study file; links to folders not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(box.root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if STUDY_FILE in filenames:
            rel = os.path.relpath(dirpath, box.root)
            try:
                if box.file(rel, STUDY_FILE):
                    found.append(rel)
            except AppError:  # a study file that is a link to outside: not offered
                continue
    return sorted(found)


def study_trials(box: Boundary, folder: str) -> list[dict[str, Any]]:
    """Every trial of every study in ``folder/study.db``: number, state, value, parameters, duration."""
    import optuna

    path = box.file(folder, STUDY_FILE)
    if path is None:
        return []
    name = f"{folder}/{STUDY_FILE}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(
            f"sqlite:///file:{path}?mode=ro&uri=true", skip_compatibility_check=True, skip_table_creation=True
        )
        rows = []
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for t in study.get_trials(deepcopy=False):
                seconds = t.duration.total_seconds() if t.duration is not None else None
                rows.append(
                    {
                        "study": summary.study_name,
                        "trial": t.number,
                        "state": t.state.name,
                        "value": None if t.value is None else round(t.value, 4),
                        "epochs reported": len(t.intermediate_values),
                        "seconds": None if seconds is None else round(seconds, 1),
                        **{k: v for k, v in sorted(t.params.items())},
                    }
                )
        return rows
    except Exception as e:  # SQLAlchemy and Optuna raise many types for a damaged or foreign file
        raise AppError(f"{name} cannot be read as an Optuna study ({box.one_line(e)})") from None
