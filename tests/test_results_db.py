"""The results database: what train.py records, resume without duplicates, a locked or corrupt file,
and the rebuild from run folders (``results.py import``)."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from conftest import read_csv, train

from resultsdb.db import ResultsDB


def _rows(db_path, sql, *params):
    with ResultsDB(db_path) as db:
        return db.query(sql, params)


def test_train_records_run_epochs_and_classes_and_resume_does_not_duplicate(run_train, tmp_path):
    run_train("--epochs", "2", "--run_name", "r", "--save_every", "1", "--scheduler", "step")
    run_dir = tmp_path / "ck" / "r"
    db = tmp_path / "ck" / "results.db"
    # A crash during epoch 2 (last.pt still at epoch 1, no summary): --resume auto trains and records
    # epoch 2 again.
    shutil.copy(run_dir / "epoch_001.pt", run_dir / "last.pt")
    (run_dir / "summary.json").unlink()
    run_train("--run_name", "r", "--resume", "auto")
    metrics = read_csv(run_dir / "metrics.csv")
    summary = json.loads((run_dir / "summary.json").read_text())

    [run] = _rows(db, "SELECT * FROM runs")
    assert run["run_dir"] == str(run_dir.resolve()) and run["status"] == "finished"
    assert run["scheduler_type"] == "step" and run["model_name"] == "custom" and run["dataset"] == "digits"
    assert run["test_accuracy"] == pytest.approx(summary["test_acc"]) and run["best_epoch"] == summary["best_epoch"]
    assert json.loads(run["config"])["scheduler"] == "step" and len(run["init_weights"]) == 16

    epochs = _rows(db, "SELECT * FROM scheduler_results ORDER BY epoch")
    assert [e["epoch"] for e in epochs] == [1, 2]  # upserted on resume, not appended
    for e, m in zip(epochs, metrics):
        assert e["accuracy"] == pytest.approx(float(m["val_acc"]), abs=1e-6)
        assert e["loss"] == pytest.approx(float(m["val_loss"]), abs=1e-5)
        assert e["task"] == "img-classification" and e["run_id"] == run["run_id"]
        assert json.loads(e["hyperparameters"])["step_size"] >= 1
    assert epochs[-1]["best_accuracy"] == pytest.approx(max(float(m["val_acc"]) for m in metrics), abs=1e-6)

    classes = _rows(db, "SELECT * FROM class_data ORDER BY class_id")
    assert len(classes) == 10 and {c["split"] for c in classes} == {"test"}
    assert {c["epoch"] for c in classes} == {summary["best_epoch"]}
    # Per-class accuracy weighted by support is the overall test accuracy of best.pt.
    total = sum(c["support"] for c in classes)
    assert sum(c["accuracy"] * c["support"] for c in classes) / total == pytest.approx(summary["test_acc"], abs=1e-6)

    # Rebuild from the folder alone: the same epochs and classes.
    from resultsdb.importer import import_dir

    with ResultsDB(tmp_path / "rebuilt.db") as rebuilt:
        assert import_dir(rebuilt, tmp_path / "ck") == [run_dir]
        again = rebuilt.query("SELECT epoch, accuracy, loss FROM scheduler_results ORDER BY epoch")
        assert [(e["epoch"], round(e["accuracy"], 5)) for e in again] == [
            (e["epoch"], round(e["accuracy"], 5)) for e in epochs
        ]
        assert rebuilt.query("SELECT COUNT(*) AS n FROM class_data")[0]["n"] == 10
        assert rebuilt.query("SELECT status FROM runs")[0]["status"] == "finished"
        # the importer's key (from config.yaml) is the one the run recorded (from its Config)
        assert rebuilt.query("SELECT comparability_key FROM runs")[0]["comparability_key"] == run[
            "comparability_key"
        ] and run["comparability_key"].startswith("digits custom 2ep ")
        import_dir(rebuilt, tmp_path / "ck")  # idempotent
        assert rebuilt.query("SELECT COUNT(*) AS n FROM scheduler_results")[0]["n"] == 2


@pytest.mark.parametrize("damage", ["locked", "corrupt"])
def test_unusable_database_warns_once_and_training_goes_on(tmp_path, capsys, monkeypatch, damage):
    import tracking.recorder

    monkeypatch.setattr(tracking.recorder, "BUSY_TIMEOUT_S", 0.05)
    db = tmp_path / "ck" / "results.db"
    db.parent.mkdir(parents=True)
    holder = None
    if damage == "locked":
        ResultsDB(db).close()
        holder = sqlite3.connect(db)
        holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock for the whole run
    else:
        db.write_bytes(b"this is not a database" * 100)
    try:
        train(tmp_path, "--epochs", "2", "--run_name", "r")
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    err = capsys.readouterr().err
    assert err.count("warning: results database") == 1, err
    assert len(read_csv(tmp_path / "ck" / "r" / "metrics.csv")) == 2
    assert (tmp_path / "ck" / "r" / "summary.json").is_file()


def test_results_db_none_writes_no_database(run_train, tmp_path):
    run_train("--epochs", "1", "--results_db", "none")
    assert not (tmp_path / "ck" / "results.db").exists()
    assert list((tmp_path / "ck").glob("*/summary.json"))


@pytest.mark.parametrize("error, status", [("interrupt", "stopped"), ("crash", "failed"), (None, "finished")])
def test_run_status_follows_how_the_epoch_loop_ended(tmp_path, error, status):
    from runtime.interrupt import Interrupted
    from settings.config import Config
    from tracking.recorder import RunRecorder
    from tracking.sink import Lifecycle, RunInfo

    cfg = Config(checkpoint_dir=str(tmp_path))
    raised = {"interrupt": Interrupted("SIGINT at epoch 1", 2), "crash": RuntimeError("boom"), None: None}[error]
    with pytest.raises(type(raised)) if raised else _nothing():
        with Lifecycle([RunRecorder(cfg, tmp_path / "run")]) as life:
            life.start(RunInfo(cfg, tmp_path / "run", []))
            [run] = _rows(tmp_path / "results.db", "SELECT status, ended FROM runs")
            assert run["status"] == "running" and run["ended"] is None
            if raised:
                raise raised
    [run] = _rows(tmp_path / "results.db", "SELECT status, ended FROM runs")
    assert run["status"] == status and run["ended"] is not None


def _nothing():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.slow  # writer processes
def test_parallel_writers_on_a_new_file_never_lose_a_row(tmp_path):
    """A sweep's jobs create and write one database at once: every run and epoch row arrives."""
    import multiprocessing as mp

    from db_writer import write_one_run

    ctx = mp.get_context("spawn")
    n = 6
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            ids = pool.map(write_one_run, [(tmp_path / "new.db", i, barrier) for i in range(n)])
    assert len(set(ids)) == n
    with ResultsDB(tmp_path / "new.db") as db:
        assert db.query("SELECT COUNT(*) AS n FROM runs")[0]["n"] == n
        assert db.query("SELECT COUNT(*) AS n FROM scheduler_results")[0]["n"] == 3 * n


# --- the comparability key ------------------------------------------------------------------------
def _config(**changes):
    from settings.config import Config, to_dict

    return to_dict(Config(**{"epochs": 5, **changes}))


@pytest.mark.parametrize(
    "changes",
    [
        {"scheduler": "step", "scheduler_params": {"step_size": 2}},
        {"seed": 7},
        {"warmup_epochs": 1.0},
        {"warmup_steps": 9, "warmup_mode": "cosine", "warmup_start_factor": 0.1},
        {"run_name": "x"},
        {"checkpoint_dir": "elsewhere"},
        {"resume": "auto"},
        {"results_db": "none"},
        {"save_every": 1},
        {"keep_last": 2},
        {"tensorboard": True},
        {"device": "cuda"},
        {"threads": 1},
        {"num_workers": 3},
        {"data_mode": "stream"},
        {"amp": "on"},
        {"amp_dtype": "float16"},
        {"channels_last": "on"},
        {"compile": True},
        {"deterministic": True},
        {"max_nonfinite": 9},
        {"strict_data": True},
        {"data_dir": "cache"},
        {"scheduler": "schedule_free", "optimizer": "adamw_schedulefree"},
    ],
)
def test_comparability_key_ignores_the_schedule_the_seed_and_how_a_run_is_executed(changes):
    from resultsdb.compare import comparability_key, first_difference

    assert comparability_key(_config(**changes)) == comparability_key(_config())
    assert first_difference(_config(**changes), _config()) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"dataset": "fashion_mnist"},
        {"model": "efficientnet_b0"},
        {"epochs": 6},
        {"lr": 0.01},
        {"batch_size": 32},
        {"optimizer": "sgd"},
        {"weight_decay": 0.0},
        {"augment": "none"},
        {"width": 16},
        {"val_split": 0.2},
        {"label_smoothing": 0.1},
        {"early_stopping": 3},
        {"monitor": "val_acc"},
        {"ema": 0.99},
        {"dropout": 0.2},
        {"dataset": "folder", "data_dir": "a"},
    ],
)
def test_comparability_key_changes_with_every_other_setting(changes):
    from resultsdb.compare import comparability_key, first_difference

    key = comparability_key(_config(**changes))
    assert key != comparability_key(_config())
    assert key.split()[:3] == [
        changes.get("dataset", "digits"),
        changes.get("model", "custom"),
        f"{changes.get('epochs', 5)}ep",
    ]
    assert first_difference(_config(), _config(**changes)).split(":")[0] in changes


def test_an_older_database_gains_the_key_column_filled_from_each_runs_config(tmp_path):
    from resultsdb.compare import comparability_key
    from resultsdb.db import SCHEMA

    path = tmp_path / "old.db"
    import re

    old_schema = re.sub(r",(\s*--[^\n]*)?\n\s*comparability_key TEXT[^\n]*", r"\1", SCHEMA)  # the previous version's
    assert "comparability_key" not in old_schema.split("CREATE TABLE IF NOT EXISTS scheduler_results")[0]
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute("INSERT INTO runs (run_dir, config) VALUES ('/a', ?), ('/b', NULL)", (json.dumps(_config()),))
    conn.commit()
    conn.close()
    rows = _rows(path, "SELECT run_dir, comparability_key FROM runs ORDER BY run_dir")
    assert rows == [
        {"run_dir": "/a", "comparability_key": comparability_key(_config())},
        {"run_dir": "/b", "comparability_key": None},
    ]


def test_runs_given_lr_auto_compare_as_lr_auto_whatever_their_range_test_chose(tmp_path):
    from resultsdb.compare import comparability_key

    for name in ("a", "b"):
        (tmp_path / name / "lr_find").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    a, b = comparability_key(_config(lr=0.0123), tmp_path / "a"), comparability_key(_config(lr=0.0456), tmp_path / "b")
    assert a == b != comparability_key(_config(lr=0.0123), tmp_path / "c") == comparability_key(_config(lr=0.0123))
