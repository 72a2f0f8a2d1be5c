"""One writer process of tests/test_results_db.py, in a module of its own: a spawned process imports
only this and the results database (not torch, as the test module would via conftest)."""

from __future__ import annotations

from resultsdb.db import ResultsDB


def write_one_run(args) -> int:
    path, i, barrier = args
    barrier.wait()  # every process opens the new file at the same moment
    with ResultsDB(path, timeout=20) as db:
        run_id = db.upsert_run(f"/runs/r{i}", status="running")
        for epoch in (1, 2, 3):
            db.upsert_epoch(run_id, {"epoch": epoch, "accuracy": 0.5, "loss": 1.0})
    return run_id
