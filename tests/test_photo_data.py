"""Real-photo data issues: EXIF orientation on every decode path, ImageFolder's class order (and
older runs trained under the previous order), training splits with fewer than two classes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import imagegen
import numpy as np
import pytest
import torch
from conftest import FAST
from PIL import Image
from torchvision.datasets import ImageFolder

import evaluate as evaluate_script
import predict as predict_script
import train as train_script
from common.errors import run_cli
from data import csv_list, folder
from data.check import TooFewClasses, report_of
from data.disk_loader import DiskLoader, FileDataset
from data.images import header, open_image

W, H = 16, 12  # stored landscape; orientations 6 and 8 display it as portrait (12 wide, 16 high)
TURNS = {"up": 6, "down": 8}  # 6: rotate 90° clockwise to display, 8: 90° counter-clockwise


def sideways_photo(path, i: int, turn: int) -> None:
    """A JPEG whose stored pixels hold a bright band in the left columns; only the EXIF tag differs
    between classes, so the classes can be told apart only once the tag is applied."""
    rng = np.random.default_rng(i)
    arr = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    arr[:, : W // 3] = 230
    exif = Image.Exif()
    exif[0x0112] = turn
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95, exif=exif)


@pytest.fixture(scope="module")
def phone_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("phone")
    for name, turn in TURNS.items():
        for i in range(12):
            sideways_photo(root / name / f"IMG_{i:04d}.jpg", i, turn)  # same stored pixels in both classes
    return root


def band_side(img: torch.Tensor) -> str:
    """Where the bright band sits in a decoded (C, H, W) picture."""
    rows = img.float().mean(dim=(0, 2))
    return "up" if rows[: len(rows) // 3].mean() > rows[-len(rows) // 3 :].mean() else "down"


def test_exif_orientation_is_applied_in_cache_stream_and_predict_and_reported(phone_folder):
    stored = [np.asarray(Image.open(p)) for p in sorted((phone_folder / "up").iterdir())]
    assert all(a.shape == (H, W, 3) for a in stored)  # the pixels really are stored sideways

    for name in TURNS:  # predict.py and evaluate.py decode through open_image too
        img = open_image(phone_folder / name / "IMG_0000.jpg", 3)
        assert img.shape == (3, W, H) and band_side(img) == name
    png = phone_folder.parent / "turned.png"  # PNG keeps EXIF in an eXIf chunk
    with Image.open(phone_folder / "up" / "IMG_0000.jpg") as jpg:
        jpg.save(png, exif=jpg.getexif())
    assert header(str(png)) == ("RGB", (H, W), 6, False) and band_side(open_image(png, 1)) == "up"

    memory = folder.load(str(phone_folder), image_size=H, data_mode="memory")
    names = memory.class_names
    assert [band_side(img) for img in memory.train.images] == [names[k] for k in memory.train.labels.tolist()]
    assert "24 images rotated by their EXIF tag" in report_of(memory).format()
    assert "24 images rotated by their EXIF tag" in memory.report.summary()
    assert memory.report.sizes == {(H, W): 24}  # sizes as displayed: 12 wide, 16 high

    stream = folder.load(str(phone_folder), image_size=H, data_mode="stream", num_workers=0)
    assert stream.train.images is None and stream.train.ids == memory.train.ids
    ds = FileDataset(stream.train.ids, stream.train.labels, 3, H)
    raw = torch.stack([ds.load(i) for i in range(len(ds))])
    assert torch.equal(raw, memory.train.images)  # the workers' decode equals the in-memory cache
    pre = {"input_size": [H, H], "mean": [0.0] * 3, "std": [1.0] * 3}
    x, _ = next(iter(DiskLoader(ds, 64, pre, torch.device("cpu"), num_workers=0)))
    assert torch.allclose(x, memory.train.images.float() / 255)


def test_exif_rotated_folder_trains_and_check_data_says_so(phone_folder, tmp_path, capsys):
    assert train_script.main(["--dataset", "folder", "--data_dir", str(phone_folder), "--check_data"]) == 0
    assert "note: 24 images rotated by their EXIF tag" in capsys.readouterr().out
    train_script.main(
        [
            "--dataset",
            "folder",
            "--data_dir",
            str(phone_folder),
            "--checkpoint_dir",
            str(tmp_path),
            "--run_name",
            "phone",
            *FAST,
            "--batch_size",
            "8",
            "--epochs",
            "3",
            "--lr",
            "0.01",
            "--val_split",
            "0.25",
            "--test_split",
            "0.25",
            "--augment",
            "none",
        ]
    )
    summary = json.loads((tmp_path / "phone" / "summary.json").read_text())
    assert summary["test_acc"] == 1.0  # unlearnable (chance) if the tag were ignored
    # predict.py sees the photos upright too: every file gets its own folder's class
    predict_script.main(
        [
            "--checkpoint",
            str(tmp_path / "phone" / "best.pt"),
            str(phone_folder),
            "--device",
            "cpu",
            "--output",
            str(tmp_path / "preds.json"),
        ]
    )
    rows = json.loads((tmp_path / "preds.json").read_text())
    assert len(rows) == 24
    assert all(r["predictions"][0]["class"] == Path(r["path"]).parent.name for r in rows)


NUMERIC = ["1", "2", "10"]


def numeric_folder(root):
    return imagegen.single_folder(root, {name: 10 for name in NUMERIC})


def test_class_order_is_imagefolders_for_folders_and_csv(tmp_path):
    root = numeric_folder(tmp_path / "nums")
    want = ImageFolder(str(root)).classes
    assert want == ["1", "10", "2"]
    assert folder.load(str(root)).class_names == want
    rows = [f"{name}/img{i:03d}.png,{name}" for name in NUMERIC for i in range(10)]
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    assert csv_list.load(str(root / "list.csv")).class_names == want


def test_a_run_trained_under_the_old_numeric_order_still_evaluates_correctly(tmp_path, monkeypatch):
    """Its checkpoint's class_names ([1, 2, 10]) decide the indices and so the split, not today's order."""
    import data.file_sets as file_sets

    root = numeric_folder(tmp_path / "nums")

    def old_order(names):  # the order before ImageFolder's
        return sorted(set(names), key=int)

    with monkeypatch.context() as m:
        m.setattr(file_sets, "class_order", old_order)
        train_script.main(
            [
                "--dataset",
                "folder",
                "--data_dir",
                str(root),
                "--checkpoint_dir",
                str(tmp_path / "ck"),
                "--run_name",
                "old",
                *FAST,
                "--epochs",
                "3",
                "--batch_size",
                "8",
                "--lr",
                "0.01",
            ]
        )
    best = torch.load(tmp_path / "ck" / "old" / "best.pt", weights_only=True)
    assert best["class_names"] == ["1", "2", "10"]
    summary = json.loads((tmp_path / "ck" / "old" / "summary.json").read_text())
    assert summary["test_acc"] > 0.5  # learned: a permuted label order would score far lower
    evaluate_script.main(["--checkpoint", str(tmp_path / "ck" / "old" / "best.pt"), "--device", "cpu"])
    metrics = json.loads((tmp_path / "ck" / "old" / "eval_test" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert list(metrics["per_class"]) == ["1", "2", "10"]


def one_class_cases(tmp_path):
    split_layout = imagegen.single_folder(tmp_path / "split" / "train", {"Bag": 6}).parent
    imagegen.single_folder(split_layout / "val", {"Bag": 2, "Coat": 2})  # a second class only in val
    flat = imagegen.single_folder(tmp_path / "flat", {"Bag": 6})
    (flat / "Coat").mkdir()  # an empty class folder is no class to train on
    csv = tmp_path / "flat" / "list.csv"
    csv.write_text("\n".join(f"Bag/img{i:03d}.png,Bag" for i in range(6)) + "\n")
    return {"split": ("folder", split_layout), "flat": ("folder", flat), "csv": ("csv", csv)}


@pytest.mark.parametrize("case", ["split", "flat", "csv"])
def test_fewer_than_two_training_classes_exit_2_with_one_line(tmp_path, capsys, case):
    dataset, path = one_class_cases(tmp_path)[case]
    with pytest.raises(SystemExit) as e:
        run_cli(
            train_script.main,
            [
                "--dataset",
                dataset,
                "--data_dir",
                str(path),
                "--checkpoint_dir",
                str(tmp_path / "ck"),
                *FAST,
                "--epochs",
                "1",
            ],
        )
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and re.search(r"training split has images of 1 class \(Bag \(\d images\)\)", err)
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").rglob("*.pt"))


def test_an_empty_class_folder_beside_two_real_ones_keeps_the_warning(tmp_path):
    root = imagegen.single_folder(tmp_path / "d", {"Bag": 6, "Coat": 6})
    (root / "Dress").mkdir()
    b = folder.load(str(root))
    assert b.class_names == ["Bag", "Coat"]
    assert "empty class folder: Dress" in "\n".join(report_of(b).warnings())
    with pytest.raises(TooFewClasses):
        folder.load(str(imagegen.single_folder(tmp_path / "e", {"Bag": 6})))
