"""Grad-CAM (explain.py, evaluate --explain), ONNX/TorchScript export and ensembles on tiny digits runs."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate as evaluate_script
import explain as explain_script
import export as export_script
import predict as predict_script
from conftest import FAST, copy_run
from common.errors import AppError, UsageError

NUM_IMAGES = 12


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run):
    """Two small digits runs of the same split (different architectures) and test images as PNG files."""
    import train as train_script
    from data import prepare_data
    from artifacts.model_io import load_model_from_checkpoint
    root = tmp_path_factory.mktemp("inside")
    copy_run(trained_run, root / "a")  # conftest.trained_run: the session's 2-epoch digits run
    train_script.main(["--checkpoint_dir", str(root), "--run_name", "b", *FAST, "--epochs", "1", "--width", "4",
                       "--depth", "1", "--image_size", "12"])  # other preprocessing: 12x12 input
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
    assert explain_script.main(["--checkpoint", str(runs["a"]), str(runs["images"] / "img0[0-3].png"),
                                "--output_dir", str(out),
                                "--device", "cpu", "--method", "gradcam++", "--target", "3"]) == 0
    text = capsys.readouterr().out
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"img{i:02d}_cam.png" for i in range(4)]
    w, h = Image.open(out / files[0]).size
    assert w > 2 * h  # three panels side by side
    assert "gradcam++ at layer features." in text


def test_cam_layer_choice_and_bad_names(runs):
    from evaluation.cam import Explainer, default_layer, find_layer, target_index
    from artifacts.model_io import load_model_from_checkpoint
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


def test_evaluate_explain_draws_the_most_confident_mistakes(runs, tmp_path, capsys):
    from evaluation.explain import top_loss_indices
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05]])
    labels = np.array([0, 0, 1, 0, 1])  # mistakes: 1 (p .8), 2 (p .6), 3 (p .7), 4 (p .95)
    assert top_loss_indices(probs, labels, 3).tolist() == [4, 1, 3]
    assert evaluate_script.main(["--checkpoint", str(runs["a"]), "--device", "cpu", "--explain", "6",
                                 "--output_dir", str(tmp_path)]) == 0
    assert "wrote top_losses.png (6 most confident mistakes)" in capsys.readouterr().out
    assert Image.open(tmp_path / "top_losses.png").size[0] > 500


# --- export ------------------------------------------------------------------------------------
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
    assert evaluate_script.main(["--checkpoint", str(out), "--output_dir", str(tmp_path / "ev"),
                                 "--results_db", str(db)]) == 0
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
    ab = predictions(["--checkpoint", str(runs["a"]), "--checkpoint", str(runs["b"]), str(runs["images"])],
                     tmp_path, "ab.json")
    for ra, rb, rab in zip(a, b, ab):
        pa = {p["class"]: p["probability"] for p in ra["predictions"]}
        pb = {p["class"]: p["probability"] for p in rb["predictions"]}
        for p in rab["predictions"]:
            assert p["probability"] == pytest.approx((pa[p["class"]] + pb[p["class"]]) / 2, abs=2e-6)
    capsys.readouterr()
    out = tmp_path / "ens"
    assert evaluate_script.main(["--checkpoint", str(runs["a"]), "--checkpoint", str(runs["b"]), "--device", "cpu",
                                 "--output_dir", str(out)]) == 0
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
        predict_script.main(["--checkpoint", str(runs["a"]), "--checkpoint", str(tmp_path / "renamed.pt"),
                             str(runs["images"])])
    ckpt = torch.load(runs["b"], map_location="cpu", weights_only=True)
    ckpt["config"]["seed"] = 7  # another seed: another train/val/test split
    torch.save(ckpt, tmp_path / "seed7.pt")
    with pytest.raises(AppError, match=r"other samples .*\(seed differ\)"):
        evaluate_script.main(["--checkpoint", str(runs["a"]), "--checkpoint", str(tmp_path / "seed7.pt"),
                              "--device", "cpu", "--output_dir", str(tmp_path / "x")])
