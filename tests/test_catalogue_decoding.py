"""Catalogue: hostile image files and folders, as the real commands meet them.

Each case runs the command line itself (a hang fails by timeout): animated GIFs, a 20000x20000 PNG,
a FIFO named ``pipe.png``, link loops (``cat/up -> ..``, ``dog/up -> ..``, ``cat/self -> .``).
Refusals end with one ``error:`` line (exit 1 or 2) and never a traceback; everything else is used.
"""

from __future__ import annotations

import os

import imagegen
import pytest
from conftest import cli

TIMEOUT = 120  # generous on a busy machine; the old scan of these folders never returned


def assert_refused(res, *needles: str) -> None:
    """Exit 1 or 2, stderr's last line starts with ``error:``, no traceback anywhere."""
    last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
    assert res.returncode in (1, 2) and last.startswith("error:"), (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    for needle in needles:
        assert needle in res.stderr + res.stdout, (needle, res.stdout, res.stderr)


def assert_clean(res) -> None:
    assert res.returncode == 0 and "Traceback" not in res.stdout + res.stderr, (res.stdout, res.stderr)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """cat/ and dog/ of small images plus every hostile entry at once."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    imagegen.single_folder(root, {"cat": 10, "dog": 10})
    imagegen.animated_gif(root / "cat" / "moving.gif")
    imagegen.huge_png(root / "dog" / "huge.png")
    os.mkfifo(root / "dog" / "pipe.png")
    (root / "cat" / "up").symlink_to("..")
    (root / "dog" / "up").symlink_to("..")
    (root / "cat" / "self").symlink_to(".")
    return root


@pytest.fixture(scope="module")
def trained(hostile, tmp_path_factory):
    """Training on the hostile folder ends, uses the GIF's first frame and skips the rest."""
    ck = tmp_path_factory.mktemp("ck")
    res = cli(
        "train.py",
        "--dataset",
        "folder",
        "--data_dir",
        hostile,
        "--checkpoint_dir",
        ck,
        "--run_name",
        "h",
        "--epochs",
        "1",
        "--width",
        "4",
        "--depth",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--amp",
        "off",
        "--channels_last",
        "off",
        "--val_split",
        "0.2",
        "--test_split",
        "0.2",
        timeout=TIMEOUT,
    )
    return res, ck / "h" / "best.pt"


@pytest.mark.slow  # real commands on hostile files
def test_check_data_reports_every_hostile_entry(hostile):
    res = cli("train.py", "--dataset", "folder", "--data_dir", hostile, "--check_data", timeout=TIMEOUT)
    assert_clean(res)
    out = res.stdout
    assert "1 animated image: the first frame of each is used" in out
    assert "huge.png: 20000x20000 is over max_image_pixels" in out
    assert "dog/pipe.png (a named pipe (FIFO), skipped)" in out
    assert "3 links to a folder already scanned skipped" in out
    total = next(line for line in out.splitlines() if line.startswith("total")).split()[1:]
    assert sum(map(int, total)) == 21  # 20 images + the GIF, each once however many links reach it


@pytest.mark.slow  # real commands on hostile files
def test_training_uses_the_first_frame_and_ends(trained):
    res, best = trained
    assert_clean(res)
    assert best.is_file() and "stack expects each tensor" not in res.stderr


@pytest.mark.slow  # real commands on hostile files
def test_predict_one_bad_file_gets_its_row(hostile, trained):
    _, best = trained
    res = cli("predict.py", "--checkpoint", best, hostile, "--device", "cpu", timeout=TIMEOUT)  # the loops end
    assert_clean(res)
    assert f"{hostile / 'dog' / 'huge.png'}  ERROR:" in res.stdout and "named pipe" in res.stdout
    assert "21 of 23 images predicted" in res.stdout  # 20 + GIF + huge + pipe, each once
    assert res.stderr.count("is animated: the first frame is used") == 1
    res = cli(
        "predict.py",
        "--checkpoint",
        best,
        hostile / "dog" / "huge.png",
        hostile / "dog" / "pipe.png",
        "--device",
        "cpu",
        timeout=TIMEOUT,
    )
    assert_refused(res, "no input could be read as an image (2 given")


@pytest.mark.slow  # real commands on hostile files
def test_explain_animated_and_huge(hostile, trained, tmp_path):
    _, best = trained
    res = cli(
        "explain.py",
        "--checkpoint",
        best,
        hostile / "cat" / "moving.gif",
        hostile / "dog" / "huge.png",
        "--output_dir",
        tmp_path,
        "--device",
        "cpu",
        timeout=TIMEOUT,
    )
    assert_clean(res)
    assert (tmp_path / "moving_cam.png").is_file() and "max_image_pixels" in res.stderr


def test_max_image_pixels_is_validated(hostile):
    res = cli(
        "train.py",
        "--dataset",
        "folder",
        "--data_dir",
        hostile,
        "--check_data",
        "--max_image_pixels",
        "0",
        timeout=TIMEOUT,
    )
    assert_refused(res, "--max_image_pixels must be >= 1")
