"""predict.py: image files of every pixel format give evaluate.py's predictions; bad inputs get error rows."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate as evaluate_script
import predict as predict_script
from conftest import copy_run, read_csv
from common.errors import UsageError, run_cli
from models import MODELS

VARIANTS = ("gray", "rgb", "rgba", "palette", "gray16")
NUM_IMAGES = 40


def save_variant(pixels: np.ndarray, variant: str, path: Path) -> None:
    """Write an 8-bit grayscale array as ``variant``; each decodes back to the same gray values."""
    if variant == "gray":
        Image.fromarray(pixels, "L").save(path)
    elif variant == "rgb":
        Image.fromarray(np.stack([pixels] * 3, -1), "RGB").save(path)
    elif variant == "rgba":
        Image.fromarray(np.stack([pixels] * 3 + [np.full_like(pixels, 255)], -1), "RGBA").save(path)
    elif variant == "palette":
        im = Image.fromarray(pixels, "P")
        im.putpalette([v for i in range(256) for v in (i, i, i)])
        im.save(path)
    elif variant == "gray16":
        Image.fromarray(pixels.astype(np.uint16) * 257).save(path)  # 16-bit PNG whose high byte is the value
    else:
        raise ValueError(variant)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, trained_run):
    """A 2-epoch digits checkpoint, its evaluate.py output, and test images written in every format."""
    from settings import config as config_mod
    from artifacts.checkpoint import load_checkpoint
    from data import prepare_data
    root = tmp_path_factory.mktemp("predict")
    copy_run(trained_run, root / "tiny")  # conftest.trained_run: the session's 2-epoch digits run
    ckpt = root / "tiny" / "best.pt"
    evaluate_script.main(["--checkpoint", str(ckpt), "--device", "cpu", "--output_dir", str(root / "eval")])
    wrong = {r["sample"]: r["predicted"] for r in read_csv(root / "eval" / "misclassified.csv")}
    split = prepare_data(config_mod.from_dict(load_checkpoint(ckpt)["config"])).test
    images, expected = root / "images", {}
    for i in range(NUM_IMAGES):
        variant = VARIANTS[i % len(VARIANTS)]
        folder = images / variant
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:03d}.png"
        save_variant(split.images[i, 0].numpy(), variant, path)
        # evaluate.py's prediction: what misclassified.csv says, else the true label.
        expected[str(path)] = wrong.get(split.sample_id(i), str(int(split.labels[i])))
    return {"ckpt": str(ckpt), "images": images, "expected": expected, "root": root}


def run(argv, capsys):
    """predict.py through its real entry point: returns (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        run_cli(predict_script.main, argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_every_format_gives_evaluate_predictions(setup, tmp_path, capsys):
    hidden = setup["images"] / "gray" / ".ipynb_checkpoints"
    hidden.mkdir(exist_ok=True)
    shutil.copy(next(iter(setup["expected"])), hidden / "copy.png")  # must be skipped
    out_csv = tmp_path / "preds.csv"
    code, out, _ = run(["--checkpoint", setup["ckpt"], str(setup["images"]), "--topk", "3", "--output", str(out_csv),
                        "--batch_size", "16", "--device", "cpu"], capsys)
    assert code == 0
    rows = read_csv(out_csv)
    assert len(rows) == NUM_IMAGES and ".ipynb_checkpoints" not in out
    assert list(rows[0]) == ["path", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3", "latency_ms",
                             "error"]
    got = {r["path"]: r["class_1"] for r in rows}
    assert got == setup["expected"]
    for r in rows:
        probs = [float(r[f"prob_{k}"]) for k in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and not r["error"] and float(r["latency_ms"]) > 0
    assert f"{NUM_IMAGES} of {NUM_IMAGES} images predicted; latency per image: median" in out


def test_globs_json_and_error_rows(setup, tmp_path, capsys):
    good = sorted(setup["expected"])[:3]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(Path(good[0]).read_bytes()[:60])  # header survives, image data cut off
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    out_json = tmp_path / "p.json"
    pattern = str(setup["images"] / "rgb" / "*.png")
    code, out, _ = run(["--checkpoint", setup["ckpt"], *good, str(corrupt), str(text), str(tmp_path / "gone.png"),
                        pattern, "--output", str(out_json), "--device", "cpu"], capsys)
    assert code == 0  # some images were predicted
    records = json.loads(out_json.read_text())
    by_path = {r["path"]: r for r in records}
    assert len(records) == 3 + 3 + NUM_IMAGES // len(VARIANTS)
    for bad in (corrupt, text, tmp_path / "gone.png"):
        assert by_path[str(bad)]["error"] and by_path[str(bad)]["predictions"] == []
        assert f"{bad}  ERROR:" in out
    for path in good:
        r = by_path[path]
        assert r["error"] is None and len(r["predictions"]) == 5
        assert r["predictions"][0]["class"] == setup["expected"][path]
        assert sum(p["probability"] for p in r["predictions"]) <= 1.0 + 1e-5


def test_nothing_predictable_exits_non_zero(setup, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["--checkpoint", setup["ckpt"], str(tmp_path / "empty"), "--device", "cpu"], capsys)
    assert code == 1 and "no image files found" in err
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    code, out, err = run(["--checkpoint", setup["ckpt"], str(bad), "--device", "cpu"], capsys)
    assert code == 1 and "ERROR" in out and "none of the 1 files" in err
    code, out, err = run(["--checkpoint", setup["ckpt"], str(tmp_path / "no_such_dir"), "--device", "cpu"], capsys)
    assert code == 1 and "no such file" in out and "input path(s) exist" in err and "\n" not in err.strip()


def test_usage_and_checkpoint_errors(setup, tmp_path, capsys):
    image = next(iter(setup["expected"]))
    code, _, err = run(["--checkpoint", setup["ckpt"], image, "--output", str(tmp_path / "p.txt")], capsys)
    assert code == 2 and ".csv or .json" in err
    ckpt = torch.load(setup["ckpt"], map_location="cpu", weights_only=True)
    ckpt["version"] = 0
    torch.save(ckpt, tmp_path / "old.pt")
    code, _, err = run(["--checkpoint", str(tmp_path / "old.pt"), image, "--device", "cpu"], capsys)
    assert code == 1 and "format version 0" in err
    with pytest.raises(UsageError):
        predict_script.main(["--checkpoint", setup["ckpt"]])  # no INPUT


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_factory_model_loads_without_model_flags(name, tmp_path, capsys):
    """A checkpoint of each registered model predicts with no model flags, as its own forward pass does."""
    from settings import config as config_mod
    from artifacts.checkpoint import save_checkpoint
    from artifacts.model_io import load_model_from_checkpoint
    from models import build_model
    cfg = config_mod.Config(model=name, width=8, depth=2)
    model = build_model(name, 4, 3, 32, width=cfg.width, depth=cfg.depth).eval()
    pre = {"input_size": [32, 32], "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    save_checkpoint({"model": model.state_dict(), "config": config_mod.to_dict(cfg),
                     "class_names": ["a", "b", "c", "d"], "preprocessing": pre}, tmp_path / "m.pt")
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    Image.fromarray(pixels[..., 0]).save(tmp_path / "gray.png")  # 1 channel in, 3 expected: converted
    loaded = load_model_from_checkpoint(tmp_path / "m.pt", torch.device("cpu"))
    assert type(loaded.model) is type(model)
    code, out, _ = run(["--checkpoint", str(tmp_path / "m.pt"), str(tmp_path / "x.png"), str(tmp_path / "gray.png"),
                        "--output", str(tmp_path / "p.json"), "--device", "cpu"], capsys)
    assert code == 0 and "ERROR" not in out
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        expected = model(x).softmax(1)[0]
    top = json.loads((tmp_path / "p.json").read_text())[0]["predictions"]
    assert top[0]["class"] == "abcd"[int(expected.argmax())]
    assert top[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-4)
