"""predict.py: image files of every pixel format give evaluate.py's predictions; bad inputs get error rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imagegen
import numpy as np
import pytest
import torch
from conftest import ROOT, copy_run, read_csv
from PIL import Image

import evaluate as evaluate_script
import predict as predict_script
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
    from artifacts.checkpoint import load_checkpoint
    from data import prepare_data
    from settings import config as config_mod

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
    code, out, _ = run(
        [
            "--checkpoint",
            setup["ckpt"],
            str(setup["images"]),
            "--topk",
            "3",
            "--output",
            str(out_csv),
            "--batch_size",
            "16",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0
    rows = read_csv(out_csv)
    assert len(rows) == NUM_IMAGES and ".ipynb_checkpoints" not in out
    assert list(rows[0]) == [
        "path",
        "class_1",
        "prob_1",
        "class_2",
        "prob_2",
        "class_3",
        "prob_3",
        "latency_ms",
        "error",
    ]
    got = {r["path"]: r["class_1"] for r in rows}
    assert got == setup["expected"]
    for r in rows:
        probs = [float(r[f"prob_{k}"]) for k in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and not r["error"] and float(r["latency_ms"]) > 0
    assert f"{NUM_IMAGES} of {NUM_IMAGES} images predicted; latency per image (float32): median" in out


def test_globs_json_and_error_rows(setup, tmp_path, capsys):
    good = sorted(setup["expected"])[:3]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(Path(good[0]).read_bytes()[:60])  # header survives, image data cut off
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    out_json = tmp_path / "p.json"
    pattern = str(setup["images"] / "rgb" / "*.png")
    code, out, _ = run(
        [
            "--checkpoint",
            setup["ckpt"],
            *good,
            str(corrupt),
            str(text),
            str(tmp_path / "gone.png"),
            pattern,
            "--output",
            str(out_json),
            "--device",
            "cpu",
        ],
        capsys,
    )
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
    assert code == 1 and "ERROR" in out and "no input could be read as an image (1 given, 0 missing)" in err
    code, out, err = run(["--checkpoint", setup["ckpt"], str(tmp_path / "no_such_dir"), "--device", "cpu"], capsys)
    assert code == 1 and "no such file" in out and "no input path exists (1 given)" in err and "\n" not in err.strip()


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
    from artifacts.checkpoint import save_checkpoint
    from artifacts.model_io import load_model_from_checkpoint
    from models import build_model
    from settings import config as config_mod

    cfg = config_mod.Config(model=name, width=8, depth=2)
    model = build_model(name, 4, 3, 32, width=cfg.width, depth=cfg.depth).eval()
    pre = {"input_size": [32, 32], "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    save_checkpoint(
        {
            "model": model.state_dict(),
            "config": config_mod.to_dict(cfg),
            "class_names": ["a", "b", "c", "d"],
            "preprocessing": pre,
        },
        tmp_path / "m.pt",
    )
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    Image.fromarray(pixels[..., 0]).save(tmp_path / "gray.png")  # 1 channel in, 3 expected: converted
    loaded = load_model_from_checkpoint(tmp_path / "m.pt", torch.device("cpu"))
    assert type(loaded.model) is type(model)
    code, out, _ = run(
        [
            "--checkpoint",
            str(tmp_path / "m.pt"),
            str(tmp_path / "x.png"),
            str(tmp_path / "gray.png"),
            "--output",
            str(tmp_path / "p.json"),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0 and "ERROR" not in out
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        expected = model(x).softmax(1)[0]
    top = json.loads((tmp_path / "p.json").read_text())[0]["predictions"]
    assert top[0]["class"] == "abcd"[int(expected.argmax())]
    assert top[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-4)


def test_bad_files_get_their_row_and_the_rest_is_predicted(setup, tmp_path, capsys):
    """An animated GIF, a FIFO, a folder given as a file, a 20000x20000 PNG and a link loop beside good images."""
    good = sorted(setup["expected"])[:2]
    gif = imagegen.animated_gif(tmp_path / "in" / "moving.gif", side=8)
    huge = imagegen.huge_png(tmp_path / "in" / "huge.png")
    os.mkfifo(tmp_path / "in" / "pipe.png")
    (tmp_path / "in" / "up").symlink_to("..")  # the folder scan must end
    code, out, err = run(
        [
            "--checkpoint",
            setup["ckpt"],
            *good,
            str(tmp_path / "in"),
            "--device",
            "cpu",
            "--output",
            str(tmp_path / "p.json"),
        ],
        capsys,
    )
    assert code == 0, err
    rows = {r["path"]: r for r in json.loads((tmp_path / "p.json").read_text())}
    assert len(rows) == 5
    for path in good:
        assert rows[path]["predictions"][0]["class"] == setup["expected"][path]
    assert rows[str(gif)]["error"] is None and rows[str(gif)]["predictions"]  # its first frame
    assert (
        "max_image_pixels" in rows[str(huge)]["error"]
        and "named pipe" in rows[str(tmp_path / "in" / "pipe.png")]["error"]
    )
    assert err.count("is animated: the first frame is used") == 1


def peak_predict(*argv) -> tuple[int, float, str]:
    """predict.py as a real command: (exit status, its peak RSS in MB, its output), measured by a parent
    process of its own so that no earlier child of the test run counts."""
    probe = (
        "import resource, subprocess, sys; "
        "r = subprocess.run([sys.executable, 'predict.py', *sys.argv[1:]], capture_output=True, text=True); "
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "print(r.stdout, r.stderr, file=sys.stderr)"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, *map(str, argv)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    code, peak_kb = map(int, res.stdout.split())
    return code, peak_kb / 1024, res.stderr


@pytest.mark.slow  # a real predict.py under a memory limit
def test_a_huge_png_is_refused_with_bounded_memory(setup, tmp_path):
    """A 20000x20000 PNG (~50 KB on disk; 400 MB decoded as gray, 1.2 GB as RGB) is refused from its header:
    predict.py's peak memory is that of predicting one small image (torch itself takes ~0.9 GB)."""
    huge = imagegen.huge_png(tmp_path / "huge.png")
    good = sorted(setup["expected"])[0]
    code, base_mb, _ = peak_predict("--checkpoint", setup["ckpt"], good, "--device", "cpu")
    assert code == 0
    code, peak_mb, out = peak_predict("--checkpoint", setup["ckpt"], huge, good, "--device", "cpu")
    assert code == 0 and f"{huge}  ERROR:" in out and "max_image_pixels" in out and "Traceback" not in out, out
    assert peak_mb - base_mb < 100, f"the huge PNG cost {peak_mb - base_mb:.0f} MB (decoded: 400 MB)"


def test_amp_modes_and_the_latency_line(setup, tmp_path, capsys):
    """--amp off (the default) is float32; on is bfloat16 on a CPU with the same top-1; warm-up apart."""
    good = sorted(setup["expected"])[:6]
    rows = {}
    for amp in ("off", "on"):
        code, out, err = run(
            [
                "--checkpoint",
                setup["ckpt"],
                *good,
                "--device",
                "cpu",
                "--amp",
                amp,
                "--output",
                str(tmp_path / f"{amp}.json"),
            ],
            capsys,
        )
        assert code == 0, err
        assert f"latency per image ({'float32' if amp == 'off' else 'bfloat16'})" in out
        assert "warm-up before timing" in out and " 0 images/s" not in out
        rows[amp] = json.loads((tmp_path / f"{amp}.json").read_text())
    for a, b in zip(rows["off"], rows["on"]):
        assert a["predictions"][0]["class"] == b["predictions"][0]["class"]
        assert a["predictions"][0]["probability"] == pytest.approx(b["predictions"][0]["probability"], abs=0.05)


@pytest.mark.parametrize("per_second,shown", [(0.4292, "0.429"), (3.149, "3.15"), (88.24, "88.2"), (1234.4, "1234")])
def test_rates_keep_three_digits(per_second, shown):
    from evaluation.report import rate

    assert rate(per_second) == shown


def test_amp_choice_when_loading(tmp_path):
    """--amp auto follows the run (here bfloat16 autocast), on/off force it; evaluate and predict share this."""
    from artifacts.checkpoint import save_checkpoint
    from artifacts.model_io import load_model_from_checkpoint
    from settings import config as config_mod

    cfg = config_mod.Config(width=4, depth=1, amp="on")
    from models import build_model

    model = build_model("custom", 3, 1, 8, width=4, depth=1)
    pre = {"input_size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.25]}
    save_checkpoint(
        {
            "model": model.state_dict(),
            "config": config_mod.to_dict(cfg),
            "class_names": ["a", "b", "c"],
            "preprocessing": pre,
        },
        tmp_path / "m.pt",
    )
    cpu = torch.device("cpu")
    got = {amp: load_model_from_checkpoint(tmp_path / "m.pt", cpu, amp).amp for amp in ("auto", "on", "off")}
    assert got["auto"].enabled and got["auto"].dtype == torch.bfloat16 and got["on"].enabled
    assert not got["off"].enabled
    with pytest.raises(UsageError, match="unknown --amp 'fast'"):
        load_model_from_checkpoint(tmp_path / "m.pt", cpu, "fast")
