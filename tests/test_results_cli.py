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
        train_script.main(
            ["--checkpoint_dir", str(root), *FAST, "--epochs", "2", "--scheduler", schedule, "--run_name", schedule]
        )
    return root


def query(ck: Path, capsys, *args: str) -> str:
    capsys.readouterr()
    assert results_script.main([*args, "--results_db", str(ck / "results.db")]) == 0
    return capsys.readouterr().out


def val_accs(ck: Path, run: str) -> list[float]:
    return [float(r["val_acc"]) for r in read_csv(ck / run / "metrics.csv")]


def test_best_ranks_schedules_by_the_test_accuracy_of_best_pt(ck, capsys):
    out = json.loads(query(ck, capsys, "best", "--format", "json"))
    tests = {run: json.loads((ck / run / "summary.json").read_text())["test_acc"] for run in ("cosine", "step")}
    assert [r["schedule"] for r in out["rows"]] == sorted(tests, key=lambda s: (-tests[s], s))
    assert out["rows"][0]["mean"] == pytest.approx(max(tests.values())) and out["rows"][0]["verdict"] == "best"
    assert out["comparability_key"].startswith("digits custom 2ep ") and out["notes"] == [
        "1 seed: no confidence interval; add --seeds 0 1 2"
    ]
    # val_loss over epochs 1..1 only: each run's first epoch
    by_loss = json.loads(query(ck, capsys, "best", "--metric", "val_loss", "--epoch_max", "1", "--format", "json"))
    first = {run: float(read_csv(ck / run / "metrics.csv")[0]["val_loss"]) for run in ("cosine", "step")}
    assert by_loss["rows"][0]["mean"] == pytest.approx(min(first.values()), abs=1e-5)
    table = query(ck, capsys, "best")
    assert table.splitlines()[1].split() == [
        "schedule",
        "runs",
        "mean",
        "std",
        "ci95_low",
        "ci95_high",
        "diff_vs_best",
        "diff_ci95_low",
        "diff_ci95_high",
        "verdict",
    ]
    assert query(ck, capsys, "best", "--dataset", "nothing").strip() == "(no rows)"


# --- fabricated databases: the statistics and the groups, without training ----------------------------
def fabricate(path: Path, runs: list[tuple[str, str, int, float, dict]]) -> None:
    """Finished runs: (run folder, schedule, seed, test accuracy, settings other than the defaults)."""
    from resultsdb.compare import comparability_key
    from resultsdb.db import ResultsDB, as_json
    from settings.config import Config, to_dict

    with ResultsDB(path) as db:
        for folder, schedule, seed, acc, changes in runs:
            cfg = to_dict(Config(**{"epochs": 5, "scheduler": schedule, "seed": seed, **changes}))
            db.upsert_run(
                folder,
                model_name=cfg["model"],
                dataset=cfg["dataset"],
                scheduler_type=schedule,
                seed=seed,
                config=as_json(cfg),
                status="finished",
                epochs=cfg["epochs"],
                test_accuracy=acc,
                comparability_key=comparability_key(cfg),
            )


@pytest.fixture
def lab(tmp_path) -> Path:
    """Sweep 'lab' (3 schedules x 3 seeds, 5 epochs), a 15-epoch run and a 2-epoch run at another LR."""
    path = tmp_path / "results.db"
    accs = {"cosine": [0.97, 0.95, 0.96], "step": [0.96, 0.93, 0.95], "StepLR_default": [0.90, 0.91, 0.89]}
    fabricate(
        path,
        [(f"/ck/lab/{s}_s{seed}", s, seed, a, {}) for s, v in accs.items() for seed, a in enumerate(v)]
        + [
            ("/ck/custom_digits", "cosine", 0, 0.99, {"epochs": 15}),
            ("/ck/trial", "cosine", 0, 0.50, {"epochs": 2, "lr": 0.1}),
        ],
    )
    return path


def best_json(db: Path, capsys, *args: str) -> dict:
    capsys.readouterr()
    assert results_script.main(["best", *args, "--results_db", str(db), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_best_without_a_filter_lists_the_groups_instead_of_mixing_them(lab, capsys):
    capsys.readouterr()
    results_script.main(["best", "--results_db", str(lab)])
    out = capsys.readouterr().out
    assert out.startswith("11 runs in 3 groups of comparable settings (not ranked together)")
    groups = best_json(lab, capsys)
    got = [(g["epochs"], g["runs"], g["schedules"], g["seeds"]) for g in groups]
    assert got[0] == (5, 9, 3, 3) and sorted(got[1:]) == [(2, 1, 1, 1), (15, 1, 1, 1)]  # most runs first


def test_best_ranks_one_group_and_says_how_many_runs_it_left_out(lab, capsys):
    by_dataset = best_json(lab, capsys, "--dataset", "digits")
    assert by_dataset["comparability_key"].startswith("digits custom 5ep ")
    assert [r["schedule"] for r in by_dataset["rows"]] == ["cosine", "step", "StepLR_default"]
    assert "2 runs left out for differing settings" in by_dataset["notes"][0]
    assert [r["runs"] for r in by_dataset["rows"]] == [3, 3, 3]  # not the 15- or 2-epoch cosine runs
    assert best_json(lab, capsys, "--sweep", "lab")["rows"] == by_dataset["rows"]
    assert best_json(lab, capsys, "--sweep", "lab")["notes"] == []
    assert best_json(lab, capsys, "--epochs", "5")["rows"] == by_dataset["rows"]
    assert [r["mean"] for r in best_json(lab, capsys, "--epochs", "15")["rows"]] == [0.99]
    key = by_dataset["comparability_key"].split()[-1]
    assert best_json(lab, capsys, "--key", key[:5])["rows"] == by_dataset["rows"]
    verdicts = [r["verdict"] for r in by_dataset["rows"]]
    assert verdicts[0] == "best" and verdicts[2] == "worse"  # 6 points below on every seed


def test_compare_leaves_out_runs_with_other_settings_and_names_the_first_difference(lab, capsys):
    capsys.readouterr()
    assert results_script.main(["compare", "1", "2", "11", "--results_db", str(lab), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in out["runs"]] == [1, 2]
    assert out["notes"] == [
        f"1 run left out for differing settings (compared: the settings of run 1, "
        f"{out['notes'][0].split('run 1, ')[1].split(')')[0]}): run 11: epochs: 5 vs 2"
    ]


def test_a_presets_three_names_are_one_schedule(tmp_path, capsys):
    path = tmp_path / "results.db"
    fabricate(
        path,
        [
            ("/ck/s/a", "A0_007", 0, 0.9, {}),
            ("/ck/s/b", "StepLR_default", 1, 0.8, {}),
            ("/ck/s/c", "step_default", 2, 0.7, {}),
            ("/ck/s/d", "cosine", 0, 0.95, {}),
        ],
    )
    rows = best_json(path, capsys, "--sweep", "s")["rows"]
    assert [(r["schedule"], r["runs"]) for r in rows] == [("cosine", 1), ("A0_007", 3)]
    from resultsdb.db import ResultsDB

    with ResultsDB(path) as db:
        db.write_classes(
            2,
            [
                {
                    "split": "test",
                    "class_id": 0,
                    "class_name": "0",
                    "accuracy": 1.0,
                    "epoch": 1,
                    "scheduler_type": "StepLR_default",
                }
            ],
        )
    capsys.readouterr()
    assert results_script.main(["classes", "A0_007", "--results_db", str(path), "--format", "json"]) == 0
    assert [r["scheduler_type"] for r in json.loads(capsys.readouterr().out)] == ["StepLR_default"]


def test_classes_by_run_id_and_by_schedule(ck, capsys):
    runs = json.loads(query(ck, capsys, "runs", "--format", "json"))
    assert [(r["scheduler_type"], r["status"], r["epochs"]) for r in runs] == [
        ("cosine", "finished", "2/2"),
        ("step", "finished", "2/2"),
    ]
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
    assert [r["scheduler_type"] for r in out["runs"]] == ["cosine", "step"] and out["notes"] == []
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
