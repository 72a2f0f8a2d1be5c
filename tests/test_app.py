"""app.py: the page in a real browser (Debian's headless chromium via Selenium), and what it may open."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, ROOT
from PIL import Image

import app as app_script
from common.errors import AppError, UsageError


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import train as train_script

    root = tmp_path_factory.mktemp("app")
    train_script.main(["--checkpoint_dir", str(root / "ck"), "--run_name", "digits", *FAST, "--epochs", "2"])
    return root / "ck"


# --- the folder boundary, the leaderboard and uploads, in-process ------------------------------
def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


SUMMARY = {
    "run_dir": "digits",
    "best_epoch": 2,
    "best_metric": 0.1,
    "monitor": "val_loss",
    "stopped_early": False,
    "stop_reason": "finished",
    "test_acc": 0.98765,
}  # what a finished run writes (common/run_files.py)


def png(path: Path, side: int = 16) -> Path:
    Image.fromarray(np.full((side, side), 128, np.uint8), "L").save(path)
    return path


@pytest.fixture
def folders(tmp_path):
    """A checkpoint folder with one honest run and a link to everything outside it that the page could read."""
    root, outside = tmp_path / "ck", tmp_path / "outside"
    run, elsewhere = root / "digits", outside / "run"
    run.mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    for folder in (run, elsewhere):
        (folder / "best.pt").write_bytes(b"weights")
        (folder / "config.yaml").write_text("dataset: digits\nmodel: custom\n")
    (run / "summary.json").write_text(json.dumps({**SUMMARY, "run_dir": str(run)}))  # absolute, as train.py writes
    png(run / "curves.png")
    png(outside / "secret.png")
    (outside / "secret.json").write_text(json.dumps({**SUMMARY, "test_acc": 0.5}))  # complete: a leak would show
    (outside / "secret.txt").write_text("not an image")
    (root / "linked_run").symlink_to(elsewhere, target_is_directory=True)  # a run folder that is a link
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link loop must not trap the walk
    return root, outside


def test_the_boundary_refuses_every_link_to_outside(folders):
    from webapp.boundary import Boundary
    from webapp.runs import list_runs, run_image, safe_checkpoint

    root, outside = folders
    box = Boundary(root)
    runs = list_runs(box)
    assert [r.name for r in runs] == ["digits"] and runs[0].group == "digits · custom"
    assert runs[0].summary["test_acc"] == SUMMARY["test_acc"] and runs[0].checkpoints == ["best.pt"]
    assert safe_checkpoint(box, "digits", "best.pt") == (root / "digits" / "best.pt").resolve()
    for run, file in (
        ("linked_run", "best.pt"),
        ("..", "outside/run/best.pt"),
        ("digits", "../../outside/run/best.pt"),
        (str(outside / "run"), "best.pt"),
    ):
        with pytest.raises(AppError, match="outside the checkpoint folder"):
            safe_checkpoint(box, run, file)
    with pytest.raises(AppError, match="is not a checkpoint"):
        safe_checkpoint(box, "digits", "summary.json")
    image, name = run_image(box, "digits", "curves.png", max_pixels=10_000)
    assert name == "curves.png" and image.shape == (3, 16, 16)

    # Files inside the honest run folder that are links to files outside: refused by the same check.
    (root / "digits" / "best.pt").unlink()
    (root / "digits" / "best.pt").symlink_to(outside / "run" / "best.pt")
    (root / "digits" / "last.pt").write_bytes(b"weights")
    (root / "digits" / "curves.png").unlink()
    (root / "digits" / "curves.png").symlink_to(outside / "secret.png")
    (root / "digits" / "summary.json").unlink()
    (root / "digits" / "summary.json").symlink_to(outside / "secret.json")
    (root / "results.db").symlink_to(outside / "secret.json")
    runs = list_runs(box)
    assert runs[0].checkpoints == ["last.pt"]  # the linked best.pt is not offered
    assert runs[0].summary == {} and runs[0].problem == "refused: digits/summary.json is outside the checkpoint folder"
    with pytest.raises(AppError, match=r"^refused: digits/curves.png is outside the checkpoint folder$"):
        run_image(box, "digits", "curves.png", max_pixels=10_000)
    from webapp.board import read_board

    with pytest.raises(AppError, match=r"^refused: results.db is outside the checkpoint folder$"):
        read_board(box)


def test_errors_are_one_line_without_server_paths(folders):
    from webapp.boundary import Boundary
    from webapp.runs import list_runs, run_image

    root, outside = folders
    box = Boundary(root)
    (root / "digits" / "curves.png").unlink()
    (root / "digits" / "curves.png").symlink_to(root / "digits" / "notes.txt")  # a link inside, to a non-image
    (root / "digits" / "notes.txt").write_text("not an image")
    (root / "digits" / "summary.json").write_text("{truncated")
    (root / "results.db").write_bytes(b"not a database" * 100)
    errors = []
    for attempt in (
        lambda: run_image(box, "digits", "curves.png", max_pixels=10_000),
        lambda: __import__("webapp.board").board.read_board(box),
    ):
        with pytest.raises(AppError) as e:
            attempt()
        errors.append(str(e.value))
    errors.append(list_runs(box)[0].problem)
    errors.append(box.one_line(OSError(f"[Errno 2] No such file: '{root}/digits/x.pt'\n  detail on line two")))
    errors.append(box.one_line(RuntimeError(f"cannot open {outside / 'secret.png'}: bad")))
    assert errors[0] == "digits/curves.png: not an image (unknown format)"
    assert errors[1].startswith("results.db cannot be read (") and "results.py import" in errors[1]
    assert errors[2] == "digits/summary.json is incomplete or not valid JSON: the run counts as unfinished"
    assert errors[3] == "[Errno 2] No such file: 'digits/x.pt'" and errors[4] == "cannot open secret.png: bad"
    for e in errors:
        assert "\n" not in e and str(root.parent) not in e and "/tmp" not in e and "Traceback" not in e, e


def test_leaderboard_compares_only_one_group_with_names_relative_to_the_folder(tmp_path):
    from webapp.board import SORT_COLUMN, read_board
    from webapp.boundary import Boundary

    box = Boundary(tmp_path)
    assert read_board(box) is None  # no database: the page falls back to summary.json
    conn = sqlite3.connect(tmp_path / "results.db")
    conn.execute(
        "CREATE TABLE runs (run_id INTEGER PRIMARY KEY, run_dir TEXT, model_name TEXT, dataset TEXT, "
        "test_accuracy REAL, monitor TEXT, best_metric REAL, future_column TEXT)"
    )
    rows = [
        (tmp_path / "a", "custom", "digits", 0.91),
        (tmp_path / "sweep" / "b", "custom", "digits", 0.97666),
        (tmp_path / "c", "custom", "digits", None),
        (tmp_path / "f", "custom", "fashion_mnist", 0.99),
        (tmp_path.parent / "elsewhere", "custom", "digits", 1.0),
    ]
    conn.executemany(
        "INSERT INTO runs (run_dir, model_name, dataset, test_accuracy, monitor, best_metric) "
        "VALUES (?, ?, ?, ?, 'val_loss', 0.123456)",
        [(str(d), m, ds, a) for d, m, ds, a in rows],
    )
    conn.commit()
    board = read_board(box)
    assert board.outside == 1 and not board.by_key
    assert board.keys("digits · custom") == {"digits · custom": 3}
    table = board.table("digits · custom")
    assert [r["run"] for r in table] == ["sweep/b", "a", "c"]  # never a fashion_mnist run, never a server path
    assert list(table[0])[:2] == [SORT_COLUMN, "run"] and table[0][SORT_COLUMN] == 97.67
    assert table[0]["best val_loss"] == 0.1235
    conn.execute("ALTER TABLE runs ADD COLUMN comparability_key TEXT")
    conn.execute("UPDATE runs SET comparability_key = CASE WHEN run_dir LIKE '%sweep%' THEN 'k2' ELSE 'k1' END")
    conn.commit()
    conn.close()
    board = read_board(box)
    assert board.by_key and board.keys("digits · custom") == {"k1": 2, "k2": 1}
    assert [r["run"] for r in board.table("digits · custom", "k1")] == ["a", "c"]


def test_the_page_ranks_schedules_over_seeds_as_results_py_best(tmp_path):
    """The Runs view's schedule table is resultsdb.leaderboard's: paired intervals, verdicts, one key."""
    from resultsdb.leaderboard import COLUMNS, format_row
    from webapp.board import read_board
    from webapp.boundary import Boundary

    conn = sqlite3.connect(tmp_path / "results.db")
    conn.execute(
        "CREATE TABLE runs (run_id INTEGER PRIMARY KEY, run_dir TEXT, model_name TEXT, dataset TEXT, "
        "scheduler_type TEXT, seed INTEGER, status TEXT, test_accuracy REAL, comparability_key TEXT)"
    )
    runs = [
        ("cosine", 0, 0.97),
        ("cosine", 1, 0.98),
        ("cosine", 2, 0.99),
        ("step", 0, 0.90),
        ("step", 1, 0.91),
        ("step", 2, 0.915),
        ("onecycle", 0, 0.99),
        ("onecycle", 1, 0.96),
        ("onecycle", 2, 0.985),
    ]
    conn.executemany(
        "INSERT INTO runs (run_dir, model_name, dataset, scheduler_type, seed, status, test_accuracy, "
        "comparability_key) VALUES (?, 'custom', 'digits', ?, ?, 'finished', ?, 'k')",
        [(str(tmp_path / f"{s}_s{seed}"), s, seed, a) for s, seed, a in runs],
    )
    conn.execute(
        "INSERT INTO runs (run_dir, model_name, dataset, scheduler_type, seed, status, test_accuracy, "
        "comparability_key) VALUES (?, 'custom', 'digits', 'step', 0, 'running', NULL, 'k')",
        (str(tmp_path / "late"),),
    )
    conn.execute(
        "INSERT INTO runs (run_dir, model_name, dataset, scheduler_type, seed, status, test_accuracy, "
        "comparability_key) VALUES (?, 'custom', 'digits', 'linear', 0, 'finished', 1.0, 'other')",
        (str(tmp_path / "other"),),
    )
    conn.commit()
    conn.close()
    board = read_board(Boundary(tmp_path))
    ranked = board.schedules("digits · custom", "k")
    rows = [format_row(ranked, r) for r in ranked.rows]
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["schedule"], r["verdict"]) for r in rows] == [
        ("cosine", "best"),
        ("onecycle", "tied"),
        ("step", "worse"),
    ]
    assert rows[0]["mean"] == "98.00" and rows[2]["diff_vs_best"] == "-7.17"  # the unfinished run is not counted


def make_study(folder: Path) -> None:
    """An Optuna study in ``folder/study.db`` with a complete, a pruned and a failed trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=f"sqlite:///{folder / 'study.db'}", study_name="lab", direction="maximize")
    for state, value in (
        (optuna.trial.TrialState.COMPLETE, 0.98765),
        (optuna.trial.TrialState.PRUNED, None),
        (optuna.trial.TrialState.FAIL, None),
    ):
        trial = study.ask({"scheduler": optuna.distributions.CategoricalDistribution(["cosine", "step"])})
        trial.report(0.5, step=1)
        study.tell(trial, value, state=state)


def test_study_trials_are_read_with_their_states_read_only(tmp_path):
    from webapp.boundary import Boundary
    from webapp.study import find_studies, study_trials

    root = tmp_path / "ck"
    make_study(root / "sweep")
    make_study(tmp_path / "outside")
    (root / "linked").mkdir()
    (root / "linked" / "study.db").symlink_to(tmp_path / "outside" / "study.db")
    (root / "broken").mkdir()
    (root / "broken" / "study.db").write_bytes(b"not a database" * 100)
    box = Boundary(root)
    assert find_studies(box) == ["broken", "sweep"]  # the linked one is not offered
    before = (root / "sweep" / "study.db").read_bytes()
    trials = study_trials(box, "sweep")
    assert [(t["trial"], t["state"], t["value"], t["epochs reported"]) for t in trials] == [
        (0, "COMPLETE", 0.9877, 1),
        (1, "PRUNED", 0.5, 1),
        (2, "FAIL", None, 1),
    ]  # pruned: its last report
    assert {t["scheduler"] for t in trials} <= {"cosine", "step"}
    assert (root / "sweep" / "study.db").read_bytes() == before  # nothing written
    with pytest.raises(AppError, match=r"^broken/study.db cannot be read as an Optuna study \(") as e:
        study_trials(box, "broken")
    assert str(root) not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(AppError, match="outside the checkpoint folder"):
        study_trials(box, "linked")


def test_uploads_are_refused_before_decoding(tmp_path):
    from data.images import ImageError, open_image
    from webapp.uploads import upload_problem

    assert upload_problem("a.png", 11 * 2**20, 10) == "a.png is 11.0 MB; the limit is 10 MB (--max_upload_mb)"
    assert upload_problem("notes.txt", 10, 10).startswith("notes.txt is not an image file; accepted: .bmp, ")
    assert upload_problem("a.PNG", 10, 10) == ""
    for side in (2000, 20000):  # 20000²: over Pillow's own limit too
        bomb = png_claiming(side, side)
        assert len(bomb) < 100
        with pytest.raises(
            ImageError,
            match=rf"^bomb.png: {side}x{side} pixels is over the limit "
            r"max_image_pixels=1,000,000 \(refused from the header",
        ):
            open_image(bomb, 1, 1_000_000, name="bomb.png", say_animated=False)
    with pytest.raises(ImageError, match=r"^notes.png: not an image \(unknown format\)$"):
        open_image(b"just text", 1, 1_000_000, name="notes.png", say_animated=False)
    frames = [Image.fromarray(np.full((6, 5, 3), v, np.uint8)) for v in (10, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    first = open_image(buf.getvalue(), 3, 1_000_000, name="anim.gif", say_animated=False)
    assert first.shape == (3, 6, 5) and first.dtype == torch.uint8 and int(first.float().mean()) < 50


def test_the_page_in_process_shows_one_group_and_one_line_errors(folders, monkeypatch):
    """The page script itself (Streamlit's AppTest): one run selector, groups, errors in one line."""
    from streamlit.testing.v1 import AppTest

    root, outside = folders
    fashion = root / "fashion"
    fashion.mkdir()
    (fashion / "best.pt").write_bytes(b"weights")
    (fashion / "config.yaml").write_text("dataset: fashion_mnist\nmodel: custom\n")
    (root / "digits" / "curves.png").unlink()
    (root / "digits" / "curves.png").symlink_to(outside / "secret.png")
    (root / "digits" / "eval_test").mkdir()
    (root / "digits" / "eval_test" / "confusion_matrix.png").symlink_to(outside / "secret.txt")
    make_study(root / "digits_sweep")
    monkeypatch.setattr(sys, "argv", ["page.py", "--checkpoint_dir", str(root)])
    at = AppTest.from_file(str(ROOT / "webapp" / "page.py"), default_timeout=300).run()
    assert not at.exception
    group, run = at.sidebar.selectbox[0], at.sidebar.selectbox[1]
    assert group.options == ["digits · custom (1)", "fashion_mnist · custom (1)"] and run.options == ["digits"]
    assert len(at.selectbox) == 4  # group, run, checkpoint, heat map: no second run selector in the Runs tab
    assert at.sidebar.caption[0].value == "test_acc 98.77%"
    errors = [e.value for e in at.error]
    assert "refused: digits/curves.png is outside the checkpoint folder" in errors
    assert "refused: digits/eval_test/confusion_matrix.png is outside the checkpoint folder" in errors
    board = at.dataframe[0].value  # from summary.json here (no results.db)
    assert board.columns.tolist()[:3] == ["test acc", "run", "status"] and board["test acc"].tolist() == [98.77]
    assert str(root) not in board.to_csv()  # the summary's absolute run_dir is never shown
    trials = at.dataframe[1].value  # the study's trials
    assert trials["state"].tolist() == [
        "COMPLETE",
        "PRUNED",
        "FAIL",
    ] and "digits_sweep: 3 trials (1 complete, 1 pruned, 1 fail)" in [c.value for c in at.caption]
    text = " ".join(str(getattr(el, "value", "")) for el in at.main)
    assert str(root) not in text and str(outside) not in text
    # Uploads on a run whose best.pt is not a checkpoint: refusals first, then the load's error, each one line.
    at.file_uploader[0].set_value(
        [("digit.png", png(root / "upload.png").read_bytes(), "image/png"), ("notes.txt", b"text", "text/plain")]
    ).run()
    errors = [e.value for e in at.error]
    assert (
        "Refused: notes.txt is not an image file; accepted: .bmp, .gif, .jpeg, .jpg, .pgm, .png, .ppm, .tif, "
        ".tiff, .webp" in errors
    )
    loading = [e for e in errors if e.startswith("error: ")]
    assert len(loading) == 1 and "\n" not in loading[0] and str(root.parent) not in loading[0], errors
    group.select("fashion_mnist · custom (1)").run()
    assert not at.exception and at.sidebar.selectbox[1].options == ["fashion (unfinished)"]
    assert at.dataframe[0].value["run"].tolist() == ["fashion"]  # digits runs are never listed with it


def test_app_flags(tmp_path, capsys, monkeypatch):
    checkpoints = tmp_path / "ck"  # any folder: nothing is served here
    checkpoints.mkdir()
    with pytest.raises(AppError, match="is not a folder"):
        app_script.main(["--checkpoint_dir", str(tmp_path / "none")])
    with pytest.raises(UsageError, match="--port must be"):
        app_script.main(["--port", "70000"])
    for flag, value in (("--max_upload_mb", "nan"), ("--max_upload_mb", "0"), ("--max_image_pixels", "0")):
        with pytest.raises(UsageError, match=flag):
            app_script.main([flag, value])
    assert app_script.is_loopback("127.0.0.1") and app_script.is_loopback("::1") and app_script.is_loopback("localhost")
    assert not app_script.is_loopback("0.0.0.0")
    cmd = app_script.streamlit_command(app_script.build_parser().parse_args(["--checkpoint_dir", str(checkpoints)]))
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "7860"

    started = []

    def fake_exec(path, argv):  # stands in for handing the process to Streamlit
        started.append(argv)

    monkeypatch.setattr(app_script.os, "execv", fake_exec)
    capsys.readouterr()
    app_script.main(["--checkpoint_dir", str(checkpoints), "--host", "0.0.0.0", "--max_upload_mb", "2.5"])
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "no login" in err
    argv = started[0]
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"
    assert argv[argv.index("--server.maxUploadSize") + 1] == "5"  # twice the limit: the page refuses in words
    assert argv[argv.index("--max_upload_mb") + 1] == "2.5"  # the page refuses above 2.5 MB itself, in words
    assert argv[argv.index("--client.showErrorDetails") + 1] == "none"  # never a traceback in the browser
    app_script.main(["--checkpoint_dir", str(checkpoints)])
    assert "warning" not in capsys.readouterr().err


# --- the real page in a real browser -----------------------------------------------------------
@pytest.mark.slow  # a browser and a Streamlit server: ~10 s alone, several times that on a loaded machine
def test_the_page_in_a_real_browser(checkpoints, tmp_path):
    """One browser session: a prediction, every kind of refusal as visible text, the runs view."""
    from browser import CHROMEDRIVER, CHROMIUM, VISIBLE_IMAGES, browser, open_runs_tab, page_text, serve, upload

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("IMGCLF_BROWSER_TEST") == "required":  # .ci/run installs them: missing is a failure
            pytest.fail("chromium / chromium-driver are not installed")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from artifacts.model_io import load_model_from_checkpoint
    from data import prepare_data
    from data.images import open_image
    from evaluation.inference import predict_probs, preprocess

    loaded = load_model_from_checkpoint(checkpoints / "digits" / "best.pt", torch.device("cpu"))
    test = prepare_data(loaded.cfg).test
    good = tmp_path / "digit.png"
    Image.fromarray(test.images[5, 0].numpy(), "L").save(good)
    probs = predict_probs(loaded, preprocess(open_image(good, 1), loaded))[0]
    expected = loaded.class_names[int(probs.argmax())]
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a picture")
    text_file = tmp_path / "notes.txt"  # a type Streamlit's browser-side check would have stopped with a red chip
    text_file.write_text("plain text")
    big = tmp_path / "big.png"  # over --max_upload_mb, under the uploader's transport limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(big)
    bomb = tmp_path / "bomb.png"  # 67 bytes claiming 4 megapixels: refused from its header
    bomb.write_bytes(png_claiming(2000, 2000))

    with (
        serve(checkpoints, "--max_upload_mb", "0.02", "--max_image_pixels", "1000000") as (url, _),
        browser(tmp_path / "profile") as driver,
    ):
        driver.get(url)
        wait = upload(driver, (good, fake, text_file, big, bomb))  # five files in one upload
        wait.until(lambda d: "Predicted class:" in page_text(d) and page_text(d).count("Refused:") == 4)
        text = page_text(driver)
        got = re.search(r"Predicted class: (\S+) \((\d+\.\d\d)%\)", text)
        assert got and got.group(1) == expected and got.group(2) == f"{100 * float(probs.max()):.2f}"
        assert "Images to classify (at most 0.02 MB and 1,000,000 pixels each)" in text
        assert "Refused: notes.png: not an image (unknown format)" in text
        assert "Refused: notes.txt is not an image file; accepted: .bmp, " in text
        assert re.search(r"Refused: big\.png is \d+ KB; the limit is 0\.02 MB \(--max_upload_mb\)", text)
        assert "Refused: bomb.png: 2000x2000 pixels is over the limit max_image_pixels=1,000,000" in text
        assert "Traceback" not in text and str(tmp_path) not in text and str(checkpoints) not in text
        wait.until(lambda d: d.execute_script(VISIBLE_IMAGES) >= 2)  # the input and its heat map are drawn

        open_runs_tab(driver, wait)
        text = page_text(driver)
        assert "Leaderboard: digits · custom" in text and "Run: digits" in text and "Run to inspect" not in text
        assert str(checkpoints) not in text and "Traceback" not in text
        driver.save_screenshot(str(tmp_path / "runs.png"))
        assert Image.open(tmp_path / "runs.png").size[0] >= 1000
