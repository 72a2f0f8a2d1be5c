"""evaluate.py on a tiny trained digits checkpoint: output files, scikit-learn agreement, ECE, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FAST, copy_run, read_csv
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, top_k_accuracy_score

import evaluate as evaluate_script
from common.errors import AppError, UsageError, run_cli
from evaluation.metrics import calibration_bins, expected_calibration_error

METRIC_KEYS = {"accuracy", "top5_accuracy", "macro_f1", "weighted_f1", "ece", "num_samples", "per_class"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, trained_run):
    """The session's 2-epoch Custom CNN run on digits (conftest.trained_run), copied for this module."""
    return copy_run(trained_run, tmp_path_factory.mktemp("eval") / "tiny")


def split_predictions(ckpt_path, split_name):
    """Probabilities and labels for a split, computed independently of evaluate.py's metric code."""
    from artifacts.model_io import load_model_from_checkpoint
    from data import prepare_data
    from data.loader import TensorLoader

    loaded = load_model_from_checkpoint(ckpt_path, torch.device("cpu"))
    split = prepare_data(loaded.cfg).split(split_name)
    loader = TensorLoader(split, 64, loaded.preprocessing, torch.device("cpu"))
    loaded.model.eval()
    with torch.no_grad():
        probs = torch.cat([loaded.model(x).softmax(1) for x, _ in loader]).numpy()
    return probs, split.labels.numpy(), split


def test_outputs_match_scikit_learn(run_dir, capsys):
    evaluate_script.main(["--checkpoint", str(run_dir / "best.pt"), "--device", "cpu"])
    out = capsys.readouterr().out
    out_dir = run_dir / "eval_test"  # the default: beside the checkpoint
    assert {p.name for p in out_dir.iterdir()} == {
        "metrics.json",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "misclassified.csv",
        "reliability.png",
    }
    for word in ("accuracy", "top-5 accuracy", "macro", "weighted", "most confused", "precision"):
        assert word in out

    probs, y, split = split_predictions(run_dir / "best.pt", "test")
    pred = probs.argmax(1)
    names = [str(i) for i in range(10)]
    m = json.loads((out_dir / "metrics.json").read_text())
    assert set(m) == METRIC_KEYS and m["num_samples"] == len(split) == 360
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["top5_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=range(10)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    report = classification_report(y, pred, target_names=names, output_dict=True, zero_division=0)
    for name in names:
        assert set(m["per_class"][name]) == {"precision", "recall", "f1", "support"}
        for key, theirs in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("f1", "f1-score"),
            ("support", "support"),
        ):
            assert m["per_class"][name][key] == pytest.approx(report[name][theirs])

    rows = read_csv(out_dir / "confusion_matrix.csv")
    assert [r["true \\ predicted"] for r in rows] == names and list(rows[0])[1:] == names
    cm = np.array([[int(r[n]) for n in names] for r in rows])
    assert cm.sum() == len(split)
    assert (cm == confusion_matrix(y, pred)).all()

    wrong = read_csv(out_dir / "misclassified.csv")
    assert list(wrong[0]) == ["sample", "true", "predicted", "confidence"]
    assert len(wrong) == int((pred != y).sum())
    conf = [float(r["confidence"]) for r in wrong]
    assert conf == sorted(conf, reverse=True)
    ids = {split.sample_id(i): i for i in range(len(split))}
    for r in wrong:
        i = ids[r["sample"]]
        assert (r["true"], r["predicted"]) == (str(y[i]), str(pred[i]))
        assert float(r["confidence"]) == pytest.approx(probs[i].max(), abs=1e-5)


def test_val_split_and_output_dir(run_dir, tmp_path, capsys):
    evaluate_script.main(
        [
            "--checkpoint",
            str(run_dir / "last.pt"),
            "--split",
            "val",
            "--output_dir",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["num_samples"] == 180
    assert (tmp_path / "out" / "confusion_matrix.png").stat().st_size > 10_000


def test_ece_definition():
    # Always 100 % confident, right half the time: off by 50 points.
    assert expected_calibration_error(np.ones(10), np.arange(10) % 2 == 0) == pytest.approx(0.5)
    # Two bins, each exactly as accurate as its confidence: perfectly calibrated.
    conf = np.array([0.5, 0.5, 1.0, 1.0])
    assert expected_calibration_error(conf, np.array([1, 0, 1, 1])) == pytest.approx(0.0)
    # 0.3 confidence, all right (gap 0.7) for 1 of 4 samples; 0.9 confidence, 2 of 3 right (gap 0.9 - 2/3).
    conf = np.array([0.3, 0.9, 0.9, 0.9])
    expected = 0.25 * 0.7 + 0.75 * (0.9 - 2 / 3)
    assert expected_calibration_error(conf, np.array([1, 1, 1, 0])) == pytest.approx(expected)
    mean_conf, acc, counts = calibration_bins(conf, np.array([1, 1, 1, 0]), n_bins=10)
    assert counts.sum() == 4 and counts[2] == 1 and counts[8] == 3 and np.isnan(acc[0])


def test_older_format_and_bad_split_give_one_line_errors(run_dir, tmp_path, capsys):
    ckpt = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    ckpt["version"] = 0
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(SystemExit) as e:
        run_cli(evaluate_script.main, ["--checkpoint", str(tmp_path / "old.pt"), "--device", "cpu"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "format version 0" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match="invalid choice"):
        evaluate_script.main(["--checkpoint", str(run_dir / "best.pt"), "--split", "train"])
    with pytest.raises(AppError, match="not found"):
        evaluate_script.main(["--checkpoint", str(tmp_path / "missing.pt"), "--device", "cpu"])


def test_flip_tta_averages_logits_of_image_and_mirror():
    from engine.loop import predict_logits
    from runtime.runtime import amp_policy

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 4, 5))  # not mirror-symmetric
    x, y = torch.randn(6, 2, 3, 4), torch.arange(6) % 5
    amp = amp_policy(False, "auto", torch.device("cpu"))
    plain, _ = predict_logits(model, [(x, y)], amp)
    tta, labels = predict_logits(model, [(x, y)], amp, tta=True)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(3))) / 2
    assert torch.allclose(plain, model(x).detach())
    assert torch.allclose(tta, expected) and not torch.allclose(tta, plain)
    assert torch.equal(labels, y)


@pytest.mark.slow  # a run, then evaluation three ways
def test_evaluate_reproduces_the_runs_own_test_accuracy_with_amp_and_tta(tmp_path):
    """bfloat16 autocast on CPU and flip TTA: evaluate.py scores best.pt exactly as training's final test did."""
    import train as train_script

    # --amp on is bfloat16 here whatever the CPU: on one without native bfloat16 (AVX2) each step
    # is ~10x slower, so few, large batches.
    train_script.main(
        [
            "--checkpoint_dir",
            str(tmp_path),
            "--run_name",
            "amp",
            *FAST,
            "--batch_size",
            "64",
            "--epochs",
            "2",
            "--amp",
            "--tta",
            "--lr",
            "0.01",
        ]
    )
    summary = json.loads((tmp_path / "amp" / "summary.json").read_text())
    assert summary["stop_reason"] == "finished all 2 epochs" and not summary["stopped_early"]
    assert summary["test_acc"] > 0.3  # learned something: a constant prediction would agree trivially
    evaluate_script.main(["--checkpoint", str(tmp_path / "amp" / "best.pt"), "--device", "cpu"])
    metrics = json.loads((tmp_path / "amp" / "eval_test" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-6)  # one image is 1/360

    from artifacts.model_io import load_model_from_checkpoint

    loaded = load_model_from_checkpoint(tmp_path / "amp" / "best.pt", torch.device("cpu"))
    assert loaded.amp.enabled and loaded.amp.dtype == torch.bfloat16
    # A float16 run from a GPU (its GradScaler state saved), read on a CPU: float32, not a refusal.
    ckpt = torch.load(tmp_path / "amp" / "best.pt", weights_only=True)
    assert ckpt["scaler"] == {}  # bfloat16 needs no loss scaling
    ckpt["scaler"] = torch.amp.GradScaler("cpu", init_scale=1024.0).state_dict()
    torch.save(ckpt, tmp_path / "gpu_run.pt")
    assert not load_model_from_checkpoint(tmp_path / "gpu_run.pt", torch.device("cpu")).amp.enabled
