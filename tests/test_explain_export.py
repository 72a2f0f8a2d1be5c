"""Grad-CAM (explain.py, evaluate --explain), ONNX/TorchScript export and ensembles on tiny digits runs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, copy_run, read_csv
from PIL import Image

import evaluate as evaluate_script
import explain as explain_script
import export as export_script
import predict as predict_script
from common.errors import AppError, UsageError

NUM_IMAGES = 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run):
    """Two small digits runs of the same split (different architectures) and test images as PNG files."""
    import train as train_script
    from artifacts.model_io import load_model_from_checkpoint
    from data import prepare_data

    root = tmp_path_factory.mktemp("inside")
    copy_run(trained_run, root / "a")  # conftest.trained_run: the session's 2-epoch digits run
    train_script.main(
        [
            "--checkpoint_dir",
            str(root),
            "--run_name",
            "b",
            *FAST,
            "--epochs",
            "1",
            "--width",
            "4",
            "--depth",
            "1",
            "--image_size",
            "12",
        ]
    )  # other preprocessing: 12x12 input
    split = prepare_data(load_model_from_checkpoint(root / "a" / "best.pt", torch.device("cpu")).cfg).test
    images = root / "images"
    images.mkdir()
    for i in range(NUM_IMAGES):
        Image.fromarray(split.images[i, 0].numpy(), "L").save(images / f"img{i:02d}.png")
    return {"a": root / "a" / "best.pt", "b": root / "b" / "best.pt", "images": images, "root": root}


def predictions(argv, tmp_path, name="p.json") -> list[dict]:
    out = tmp_path / name
    assert predict_script.main([*argv, "--output", str(out), "--device", "cpu", "--topk", "10"]) == 0
    return json.loads(out.read_text())


# --- Grad-CAM ----------------------------------------------------------------------------------
def test_explain_writes_one_figure_per_image(runs, tmp_path, capsys):
    out = tmp_path / "cams"
    assert (
        explain_script.main(
            [
                "--checkpoint",
                str(runs["a"]),
                str(runs["images"] / "img0[0-3].png"),
                "--output_dir",
                str(out),
                "--device",
                "cpu",
                "--method",
                "gradcam++",
                "--target",
                "3",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"img{i:02d}_cam.png" for i in range(4)]
    w, h = Image.open(out / files[0]).size
    assert w > 2 * h  # three panels side by side
    assert "gradcam++ at layer features." in text


def test_cam_layer_choice_and_bad_names(runs):
    from artifacts.model_io import load_model_from_checkpoint
    from evaluation.cam import Explainer, default_layer, find_layer, target_index
    from models import build_model

    loaded = load_model_from_checkpoint(runs["a"], torch.device("cpu"))
    name, module = find_layer(loaded.model, None)
    assert isinstance(module, torch.nn.ReLU) and name == f"features.{len(loaded.model.features) - 2}"  # before pool
    for arch, expected in (("efficientnet_b0", "blocks.6"), ("resnet18", "layer4")):  # timm's last stage
        assert default_layer(build_model(arch, 3, 3, 32)) == expected
    with pytest.raises(UsageError, match=r"no layer 'nope'; candidates: .*features\.\d+"):
        Explainer(loaded, layer="nope")
    with pytest.raises(UsageError, match="'cat' is not a class of this model; use 'predicted' or one of: 0, 1"):
        target_index("cat", loaded.class_names)
    # Heat maps are per image, at the input size, normalised, and depend on the class explained.
    x = torch.randn(2, 1, 8, 8)
    maps = Explainer(loaded)(x, [0, 0])
    assert maps.shape == (2, 8, 8) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert not np.allclose(maps, Explainer(loaded)(x, [7, 7]))


def test_top_losses_are_ordered_by_loss_not_confidence():
    from evaluation.explain import top_loss_indices

    probs = np.array([[0.90, 0.10, 0.00], [0.50, 0.45, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    labels = np.array([1, 2, 1, 1])  # mistakes: 0 (conf .90, loss 2.30), 1 (conf .50, loss 3.00), 3 (loss 1.20)
    assert top_loss_indices(probs, labels, 5).tolist() == [1, 0, 3]


def test_evaluate_explain_draws_the_highest_losses(runs, tmp_path, capsys, monkeypatch):
    """top_losses.png: highest loss first, named as misclassified.csv names them, input beside overlay."""
    import evaluation.explain as explain_mod

    drawn = {}
    real = explain_mod.save_top_losses
    monkeypatch.setattr(
        explain_mod,
        "save_top_losses",
        lambda path, cells, heading: drawn.update(cells=cells) or real(path, cells, heading),
    )
    assert (
        evaluate_script.main(
            ["--checkpoint", str(runs["a"]), "--device", "cpu", "--explain", "6", "--output_dir", str(tmp_path)]
        )
        == 0
    )
    assert "wrote top_losses.png (the 6 mistakes with the highest loss)" in capsys.readouterr().out
    assert Image.open(tmp_path / "top_losses.png").size[0] > 500
    names = {r["sample"] for r in read_csv(tmp_path / "misclassified.csv")}
    titles = [t for _, _, t in drawn["cells"]]
    assert all(t.split(":")[0] in names and t.startswith("index ") for t in titles)
    losses = [float(t.split("loss ")[1].split()[0]) for t in titles]
    assert losses == sorted(losses, reverse=True)
    for rgb, blended, _ in drawn["cells"]:  # the input, and the overlay that still shows it
        assert rgb.shape == blended.shape and min(rgb.shape[:2]) >= 160


def test_an_empty_map_is_said_with_layers_that_work():
    """A layer whose output the prediction ignores has a blank Grad-CAM; the advice names others."""
    from artifacts.model_io import LoadedModel
    from evaluation.cam import Explainer, is_empty
    from runtime.runtime import amp_policy
    from settings.config import Config

    class Dead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(1, 8, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(8, 8, 3, padding=1),
                torch.nn.ReLU(),
            )
            self.unused = torch.nn.Conv2d(1, 8, 3, padding=1)  # computed, then multiplied by 0
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            f = self.features(x) + 0 * self.unused(x)
            return self.head(f.mean((2, 3)))

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    loaded = LoadedModel(
        Dead().eval(),
        Config(),
        ["a", "b", "c"],
        {"input_size": [8, 8], "channels": 1},
        cpu,
        amp_policy(False, "auto", cpu),
        Path("dead.pt"),
        0,
        None,
    )
    x, targets = torch.randn(4, 1, 8, 8), [0, 1, 2, 0]
    dead = Explainer(loaded, "gradcam", "unused")
    assert all(is_empty(m) for m in dead(x, targets))
    advice = dead.empty_advice(x, targets, 4, 4)
    assert advice.startswith("the map is empty at unused for 4 of 4 images") and "--method eigencam" in advice
    layers = dead.working_layers(x, targets)
    assert layers and "unused" not in layers and f"--layer {' or '.join(layers)}" in advice
    for name in layers:  # each suggestion really draws something on these images
        assert not any(is_empty(m) for m in Explainer(loaded, "gradcam", name)(x, targets))
    assert not is_empty(np.linspace(0, 1, 64).reshape(8, 8)) and is_empty(np.full((8, 8), 0.5))


# --- export ------------------------------------------------------------------------------------
@pytest.mark.slow  # an export with onnxruntime's check, then predictions both ways
def test_onnx_export_verifies_and_predicts_like_the_checkpoint(runs, tmp_path, capsys):
    import onnx

    out = tmp_path / "m.onnx"
    assert export_script.main(["--checkpoint", str(runs["a"]), "--format", "onnx", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    diff = float(text.split("max |delta logit| vs PyTorch = ")[1].split()[0])
    assert "verified on 32 test images of digits" in text and diff <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["imgclf.class_names"]) == [str(i) for i in range(10)]
    assert json.loads(meta["imgclf.preprocessing"])["input_size"] == [8, 8]
    pt = predictions(["--checkpoint", str(runs["a"]), str(runs["images"])], tmp_path, "pt.json")
    ox = predictions(["--checkpoint", str(out), str(runs["images"]), "--batch_size", "5"], tmp_path, "ox.json")
    assert len(pt) == NUM_IMAGES and [r["path"] for r in pt] == [r["path"] for r in ox]
    for a, b in zip(pt, ox):
        assert a["predictions"][0]["class"] == b["predictions"][0]["class"]
        assert a["predictions"][0]["probability"] == pytest.approx(b["predictions"][0]["probability"], abs=1e-5)
    # An exported file has no run behind it: evaluating it records nothing in a results database.
    db = tmp_path / "r.db"
    capsys.readouterr()
    assert (
        evaluate_script.main(["--checkpoint", str(out), "--output_dir", str(tmp_path / "ev"), "--results_db", str(db)])
        == 0
    )
    assert "recorded per-class metrics" not in capsys.readouterr().out and not db.exists()


def test_torchscript_export_and_the_tolerance_check(runs, tmp_path, capsys, monkeypatch):
    import evaluation.export as export_mod

    out = tmp_path / "m.torchscript.pt"
    assert export_script.main(["--checkpoint", str(runs["a"]), "--format", "torchscript", "--output", str(out)]) == 0
    with zipfile.ZipFile(out) as z:  # TorchScript archives keep extra files under extra/
        extra = {n.split("/")[-1]: z.read(n) for n in z.namelist() if "/extra/" in n}
    assert json.loads(extra["imgclf.class_names.json"])[:3] == ["0", "1", "2"]
    assert json.loads(extra["imgclf.preprocessing.json"])["channels"] == 1
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)  # any difference (even 0) now counts as too large
    with pytest.raises(AppError, match="differs from the checkpoint by"):
        export_script.main(["--checkpoint", str(runs["a"]), "--format", "torchscript", "--output", str(out)])
    with pytest.raises(UsageError, match="--dynamic_batch applies to --format onnx"):
        export_script.main(["--checkpoint", str(runs["a"]), "--format", "torchscript", "--dynamic_batch"])


# --- ensembles ---------------------------------------------------------------------------------
def test_ensemble_averages_member_probabilities(runs, tmp_path, capsys):
    a = predictions(["--checkpoint", str(runs["a"]), str(runs["images"])], tmp_path, "a.json")
    b = predictions(["--checkpoint", str(runs["b"]), str(runs["images"])], tmp_path, "b.json")
    ab = predictions(
        ["--checkpoint", str(runs["a"]), "--checkpoint", str(runs["b"]), str(runs["images"])], tmp_path, "ab.json"
    )
    for ra, rb, rab in zip(a, b, ab):
        pa = {p["class"]: p["probability"] for p in ra["predictions"]}
        pb = {p["class"]: p["probability"] for p in rb["predictions"]}
        for p in rab["predictions"]:
            assert p["probability"] == pytest.approx((pa[p["class"]] + pb[p["class"]]) / 2, abs=2e-6)
    capsys.readouterr()
    out = tmp_path / "ens"
    assert (
        evaluate_script.main(
            [
                "--checkpoint",
                str(runs["a"]),
                "--checkpoint",
                str(runs["b"]),
                "--device",
                "cpu",
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "ensemble (mean of 2 members' probabilities)" in text and f"custom ({runs['b']})" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["checkpoint"] for m in metrics["members"]] == [str(runs["a"]), str(runs["b"])]
    for m in metrics["members"]:  # each member's line in the table shows its own accuracy
        assert f"{m['accuracy']:8.4f}" in text


def test_ensemble_refuses_other_classes_or_splits(runs, tmp_path):
    ckpt = torch.load(runs["b"], map_location="cpu", weights_only=True)
    ckpt["class_names"] = [f"c{i}" for i in range(10)]
    torch.save(ckpt, tmp_path / "renamed.pt")
    with pytest.raises(AppError, match="ensemble members must share their classes"):
        predict_script.main(
            ["--checkpoint", str(runs["a"]), "--checkpoint", str(tmp_path / "renamed.pt"), str(runs["images"])]
        )
    ckpt = torch.load(runs["b"], map_location="cpu", weights_only=True)
    ckpt["config"]["seed"] = 7  # another seed: another train/val/test split
    torch.save(ckpt, tmp_path / "seed7.pt")
    with pytest.raises(AppError, match=r"other samples .*\(seed differ\)"):
        evaluate_script.main(
            [
                "--checkpoint",
                str(runs["a"]),
                "--checkpoint",
                str(tmp_path / "seed7.pt"),
                "--device",
                "cpu",
                "--output_dir",
                str(tmp_path / "x"),
            ]
        )
