"""``--dataset folder`` on small generated folders: layouts, bad files, the check report, splits."""

from __future__ import annotations

import os
import time

import imagegen
import numpy as np
import pytest
import torch
from PIL import Image

from data import folder
from data.check import DataError, enforce_strict, report_of
from data.images import open_image


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = imagegen.messy_split_folder(tmp_path_factory.mktemp("messy"))
    return root, folder.load(str(root))


def test_classes_are_the_sorted_union_and_hidden_entries_are_never_classes(messy):
    root, b = messy
    assert b.class_names == ["bird", "cat", "dog"]  # no empty_class, no .ipynb_checkpoints
    assert b.test is None
    # val has no bird folder, yet cat and dog keep the indices they have in train
    val_names = {b.class_names[i] for i in b.val.labels.tolist()}
    assert val_names == {"cat", "dog"}
    for split in (b.train, b.val):
        for label, path in zip(split.labels.tolist(), split.ids):
            assert f"/{b.class_names[label]}/" in path
    assert not any(".ipynb_checkpoints" in p for p in b.train.ids)


def test_report_lists_every_problem_by_path(messy):
    root, b = messy
    r = report_of(b)
    bad = "\n".join(r.bad_files)
    for name in ("corrupt.png", "truncated.jpg", "fake.jpg"):
        assert str(root / "train" / "dog" / name) in bad
    assert "truncated" in bad  # found by decoding: the JPEG header is intact
    assert r.non_images == ["train/cat/notes.txt"]
    assert set(r.hidden) == {"train/.ipynb_checkpoints", "train/cat/.DS_Store"}
    assert r.empty_classes == ["train/empty_class"]
    assert r.counts["train"] == {"bird": 11, "cat": 8, "dog": 8}  # bird: 8 + RGBA/palette/16-bit
    assert r.counts["val"] == {"bird": 0, "cat": 3, "dog": 3}
    text = "\n".join(r.warnings())
    assert "val lacks bird" in text and "empty class folder: train/empty_class" in text
    assert "mixed image modes" in text and "RGBA" in text and "I;16" in text
    assert "3 unreadable images skipped" in text
    assert "images resized to 12x12" in " ".join(r.notes)
    with pytest.raises(DataError, match="3 unreadable image"):
        enforce_strict(r, strict=True)
    enforce_strict(r, strict=False)


def test_rgba_palette_and_16_bit_decode_to_the_right_pixels(tmp_path):
    paths = imagegen.odd_modes(tmp_path, 1)
    want = torch.from_numpy(imagegen.pixels(1, 999)).permute(2, 0, 1)
    assert torch.equal(open_image(paths["rgba"], 3), want)  # alpha dropped, colours kept
    with Image.open(paths["palette"]) as im:  # the palette's own colours, expanded
        expanded = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(open_image(paths["palette"], 3), expanded)
    gray16 = open_image(paths["gray16"], 1)
    assert gray16.dtype == torch.uint8 and torch.equal(gray16[0], want[0])  # 16-bit scaled back to 8-bit


def test_single_folder_split_is_stratified_seeded_and_disjoint(tmp_path):
    root = imagegen.single_folder(tmp_path, {"a": 40, "b": 20, "c": 10})
    b1 = folder.load(str(root), val_split=0.2, test_split=0.2)
    b2 = folder.load(str(root), val_split=0.2, test_split=0.2)
    assert b1.train.ids == b2.train.ids and b1.val.ids == b2.val.ids and b1.test.ids == b2.test.ids
    ids = [set(s.ids) for s in (b1.train, b1.val, b1.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == 70
    for split, frac in ((b1.val, 0.2), (b1.test, 0.2)):
        counts = np.bincount(split.labels.numpy(), minlength=3)
        np.testing.assert_allclose(counts, np.array([40, 20, 10]) * frac, atol=1)
    assert "split automatically" in " ".join(report_of(b1).notes)


def test_tiny_classes_still_split(tmp_path):
    root = imagegen.single_folder(tmp_path, {"a": 6, "b": 1, "c": 3})  # sklearn refuses a 1-image class
    b = folder.load(str(root), val_split=0.2, test_split=0.2)
    assert len(b.train) + len(b.val) + len(b.test) == 10
    assert set(b.train.labels.tolist()) == {0, 1, 2}  # every class keeps a training image


def test_mixed_sizes_get_one_square_size(tmp_path):
    imagegen.class_images(tmp_path / "x", 0, 3, side=20)
    imagegen.class_images(tmp_path / "y", 1, 3, side=40)
    imagegen.write(tmp_path / "y" / "wide.png", imagegen.pixels(1, 5, 30)[:, :, :].repeat(2, axis=1))
    b = folder.load(str(tmp_path), val_split=0.3, test_split=0.0)
    assert b.image_size == (30, 30)  # median short side of 20, 20, 20, 30, 40, 40, 40
    assert folder.load(str(tmp_path), val_split=0.3, test_split=0.0, image_size=16).image_size == (16, 16)
    text = report_of(b).format()
    assert "image sizes (w x h): 3 different, from 20x20 to 60x30" in text and "mixed image sizes" in text


def test_unusable_folders_say_what_is_expected(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        folder.load(str(tmp_path / "missing"))
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no readable images"):
        folder.load(str(tmp_path))


def test_check_data_alone_prints_the_report_and_sets_the_exit_status(messy, capsys, tmp_path):
    import train

    root, _ = messy
    args = ["--dataset", "folder", "--data_dir", str(root), "--checkpoint_dir", str(tmp_path / "ck")]
    assert train.main([*args, "--check_data"]) == 0
    out = capsys.readouterr().out
    assert "dataset check: folder" in out and "truncated.jpg" in out and "val lacks bird" in out
    assert train.main([*args, "--check_data", "--strict_data"]) == 1
    assert not (tmp_path / "ck").exists()  # a check writes no run


def test_severe_imbalance_is_warned_with_the_remedies():
    from data.check import DataReport

    r = DataReport("x", class_names=["a", "b"], counts={"train": {"a": 110, "b": 10}})
    assert "severe class imbalance" in "\n".join(r.warnings()) and "--balanced_sampler" in "\n".join(r.warnings())
    r.counts["train"]["a"] = 100  # 10x: still tolerable
    assert not r.warnings()


# --- the scan: links, loops, special files ---
def linked_folder(root, n: int = 3):
    """cat/ and dog/ of n images each, with cat/up -> .., dog/up -> .., cat/self -> . and a file link."""
    imagegen.class_images(root / "cat", 0, n)
    imagegen.class_images(root / "dog", 1, n)
    (root / "cat" / "up").symlink_to("..")
    (root / "dog" / "up").symlink_to("..")
    (root / "cat" / "self").symlink_to(".")
    (root / "dog" / "also_cat.png").symlink_to(root / "cat" / "img000.png")  # one file, two classes
    return root


def test_link_loops_end_and_every_file_counts_once(tmp_path):
    root = linked_folder(tmp_path / "d", n=6)
    files = folder.scan_folder(root)
    real = sorted(os.path.realpath(p) for p in files.paths)
    assert len(real) == len(set(real)) == 12  # not 6 x (1 + loops) per class
    assert files.classes.count("cat") == 6 and files.classes.count("dog") == 6
    r = files.report
    assert sorted(r.link_loops) == ["cat/self", "cat/up", "dog/up"] and r.duplicates == 1
    assert any("1 duplicate file dropped" in w for w in r.warnings())
    bundle = folder.load(str(root), val_split=0.2, test_split=0.2)  # a file in one split only
    seen = [os.path.realpath(p) for s in bundle.splits().values() for p in s.ids]
    assert len(seen) == len(set(seen)) == 12


def test_special_files_are_skipped_unopened(tmp_path):
    root = tmp_path / "d"
    imagegen.class_images(root / "cat", 0, 4)
    imagegen.class_images(root / "dog", 1, 4)
    os.mkfifo(root / "cat" / "pipe.png")  # opening it would block until a writer comes
    bundle = folder.load(str(root), val_split=0.25, test_split=0.0)
    r = report_of(bundle)
    assert "cat/pipe.png (a named pipe (FIFO), skipped)" in r.non_images
    assert sum(len(s) for s in bundle.splits().values()) == 8


@pytest.mark.slow  # a scale test: 10,000 files made and scanned
def test_ten_thousand_files_with_loops_scan_in_seconds(tmp_path):
    root = tmp_path / "big"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(5000):
            (root / cls / f"{i:05d}.png").touch()  # the scan reads no pixels: empty files will do
        (root / cls / "up").symlink_to("..")
        (root / cls / "self").symlink_to(".")
    start = time.perf_counter()
    files = folder.scan_folder(root)
    took = time.perf_counter() - start
    assert len(files.paths) == len(set(files.paths)) == 10_000 and len(files.report.link_loops) == 4
    assert took < 10, f"scan of 10,000 files took {took:.1f} s"


def test_animated_and_huge_images_in_a_folder(tmp_path):
    root = tmp_path / "d"
    imagegen.class_images(root / "cat", 0, 4)
    imagegen.class_images(root / "dog", 1, 4)
    imagegen.animated_gif(root / "cat" / "moving.gif")
    imagegen.huge_png(root / "dog" / "huge.png")
    bundle = folder.load(str(root), val_split=0.25, test_split=0.0, image_size=12)
    r = report_of(bundle)
    assert sum(len(s) for s in bundle.splits().values()) == 9  # the GIF's first frame is a sample
    assert [b.split(": ")[0] for b in r.bad_files] == [str(root / "dog" / "huge.png")]
    assert any("1 animated image" in n for n in r.notes)
    assert all(s.images.ndim == 4 and s.images.shape[1:] == (3, 12, 12) for s in bundle.splits().values())


def test_open_image_refusals_are_one_line_image_errors(tmp_path):
    from data.images import ImageError

    os.mkfifo(tmp_path / "pipe.png")
    cases = {
        tmp_path: "a folder, not an image file",
        tmp_path / "pipe.png": "a named pipe (FIFO)",
        tmp_path / "gone.png": "no such file",
        b"junk": "upload: not an image (unknown format)",
        imagegen.huge_png(tmp_path / "huge.png", side=2000): "2000x2000 pixels is over the limit",
    }
    for source, needle in cases.items():
        with pytest.raises(ImageError) as e:
            open_image(source, 3, max_pixels=1_000_000)
        assert needle in str(e.value) and "\n" not in str(e.value) and isinstance(e.value, ValueError)
    gif = imagegen.animated_gif(tmp_path / "a.gif")
    assert open_image(gif.read_bytes(), 1, name="a.gif", say_animated=False).shape == (1, imagegen.SIDE, imagegen.SIDE)
