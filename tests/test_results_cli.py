"""``results.py`` queries on a database written by two tiny real runs (cosine and step)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import FAST, read_csv

import results as results_script


@pytest.fixture(scope="module")
def ck(tmp_path_factory) -> Path:
    import train as train_script
    root = tmp_path_factory.mktemp("results") / "ck"
    for schedule in ("cosine", "step"):
        train_script.main(["--checkpoint_dir", str(root), *FAST, "--epochs", "2", "--scheduler", schedule,
                           "--run_name", schedule])
    return root


def query(ck: Path, capsys, *args: str) -> str:
    capsys.readouterr()
    assert results_script.main([*args, "--results_db", str(ck / "results.db")]) == 0
    return capsys.readouterr().out


def val_accs(ck: Path, run: str) -> list[float]:
    return [float(r["val_acc"]) for r in read_csv(ck / run / "metrics.csv")]


def test_best_ranks_schedules_by_their_best_epoch(ck, capsys):
    rows = json.loads(query(ck, capsys, "best", "--top", "2", "--format", "json"))
    best = {run: max(val_accs(ck, run)) for run in ("cosine", "step")}
    expected = sorted(best, key=lambda s: -best[s])
    assert [r["scheduler_type"] for r in rows] == expected and [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["accuracy"] == pytest.approx(best[expected[0]], abs=1e-6)
    assert (rows[0]["model_name"], rows[0]["dataset"], rows[0]["runs"]) == ("custom", "digits", 1)
    # --epoch_max 1: only the first epoch counts; --top defaults to 1 (schedules that tie share the rank)
    first = json.loads(query(ck, capsys, "best", "--epoch_max", "1", "--format", "json"))
    assert {(r["epoch"], r["rank"]) for r in first} == {(1, 1)}
    assert first[0]["accuracy"] == pytest.approx(max(val_accs(ck, r)[0] for r in ("cosine", "step")), abs=1e-6)
    by_loss = json.loads(query(ck, capsys, "best", "--metric", "loss", "--top", "2", "--format", "json"))
    losses = [min(float(r["val_loss"]) for r in read_csv(ck / run / "metrics.csv")) for run in ("cosine", "step")]
    assert by_loss[0]["loss"] == pytest.approx(min(losses), abs=1e-5)
    assert query(ck, capsys, "best", "--dataset", "nothing").strip() == "(no rows)"


def test_classes_by_run_id_and_by_schedule(ck, capsys):
    runs = json.loads(query(ck, capsys, "runs", "--format", "json"))
    assert [(r["scheduler_type"], r["status"], r["epochs"]) for r in runs] == [("cosine", "finished", "2/2"),
                                                                              ("step", "finished", "2/2")]
    step_id = str(runs[1]["run_id"])
    rows = list(csv.DictReader(io.StringIO(query(ck, capsys, "classes", step_id, "--format", "csv"))))
    summary = json.loads((ck / "step" / "summary.json").read_text())
    assert [r["class_name"] for r in rows] == [c["class_name"] for c in summary["per_class"]]
    assert [float(r["f1_score"]) for r in rows] == pytest.approx([c["f1_score"] for c in summary["per_class"]])
    table = query(ck, capsys, "classes", "step")
    assert table.splitlines()[0].split()[:4] == ["run_id", "scheduler_type", "split", "epoch"]
    assert len(table.splitlines()) == 2 + 10
    with pytest.raises(Exception, match="no per-class metrics for run 99"):
        results_script.main(["classes", "99", "--results_db", str(ck / "results.db")])


def test_compare_and_errors(ck, capsys):
    out = json.loads(query(ck, capsys, "compare", "1", "2", "--format", "json"))
    assert [r["scheduler_type"] for r in out["runs"]] == ["cosine", "step"]
    assert [e["epoch"] for e in out["epochs"]] == [1, 2]
    assert out["epochs"][1]["run 2 val_acc"] == pytest.approx(val_accs(ck, "step")[1], abs=1e-6)
    assert "validation accuracy per epoch" in query(ck, capsys, "compare", "1", "2")
    from common.errors import UsageError
    with pytest.raises(UsageError, match="no run with id 7"):
        results_script.main(["compare", "1", "7", "--results_db", str(ck / "results.db")])
    with pytest.raises(UsageError, match="no results database at"):
        results_script.main(["runs", "--results_db", str(ck / "missing.db")])


def test_evaluate_records_per_class_metrics_of_its_split(ck, capsys):
    import evaluate
    assert evaluate.main(["--checkpoint", str(ck / "step" / "best.pt"), "--split", "val"]) == 0
    assert "recorded per-class metrics in" in capsys.readouterr().out
    rows = json.loads(query(ck, capsys, "classes", "step", "--format", "json"))
    val = [r for r in rows if r["split"] == "val"]
    metrics = json.loads((ck / "step" / "eval_val" / "metrics.json").read_text())["per_class"]
    assert [r["class_name"] for r in val] == list(metrics)
    assert [r["recall"] for r in val] == pytest.approx([m["recall"] for m in metrics.values()])
    assert {r["split"] for r in rows} == {"val", "test"}  # the end of training recorded test already
