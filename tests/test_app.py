"""app.py: the page in a real browser (Debian's headless chromium via Selenium), and what it may open."""
from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import app as app_script
from conftest import FAST, ROOT
from common.errors import AppError, UsageError

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import train as train_script
    root = tmp_path_factory.mktemp("app")
    train_script.main(["--checkpoint_dir", str(root / "ck"), "--run_name", "digits", *FAST, "--epochs", "2"])
    return root / "ck"


# --- webapp.runs: what the page lists, opens and accepts ---------------------------------------
def test_only_checkpoints_inside_the_folder_open(checkpoints, tmp_path):
    from webapp.runs import list_runs, safe_checkpoint
    runs = list_runs(checkpoints)
    assert [r.name for r in runs] == ["digits"] and runs[0].checkpoints[:2] == ["best.pt", "last.pt"]
    assert runs[0].summary["test_acc"] > 0
    assert safe_checkpoint(checkpoints, "digits", "best.pt") == (checkpoints / "digits" / "best.pt").resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(checkpoints / "digits" / "best.pt", outside / "best.pt")
    (checkpoints / "link").symlink_to(outside, target_is_directory=True)
    try:
        assert [r.name for r in list_runs(checkpoints)] == ["digits"]  # the symlinked run is not offered
        for run, file in (("link", "best.pt"), ("..", "elsewhere/best.pt"), ("digits", "../../elsewhere/best.pt"),
                          (str(outside), "best.pt")):
            with pytest.raises(AppError, match="outside the checkpoint folder"):
                safe_checkpoint(checkpoints, run, file)
    finally:
        (checkpoints / "link").unlink()
    with pytest.raises(AppError, match="is not a checkpoint"):
        safe_checkpoint(checkpoints, "digits", "metrics.csv")


def test_leaderboard_reads_the_results_database_defensively(tmp_path):
    from webapp.runs import leaderboard, upload_problem
    assert leaderboard(tmp_path) is None  # no database: the page falls back to summary.json
    conn = sqlite3.connect(tmp_path / "results.db")
    conn.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY, run_dir TEXT, model_name TEXT, "
                 "test_accuracy REAL, future_column TEXT)")
    conn.executemany("INSERT INTO runs (run_dir, model_name, test_accuracy) VALUES (?, ?, ?)",
                     [("/r/a", "custom", 0.91), ("/r/b", "efficientnet_b0", 0.97), ("/r/c", "custom", None)])
    conn.commit()
    conn.close()
    board = leaderboard(tmp_path)
    assert [r["run_dir"] for r in board] == ["/r/b", "/r/a", "/r/c"] and set(board[0]) == {
        "run_dir", "model_name", "test_accuracy"}
    (tmp_path / "results.db").write_bytes(b"not a database")
    assert leaderboard(tmp_path) is None
    assert upload_problem("a.png", 11 * 2 ** 20, 10).endswith("the limit is 10 MB (--max_upload_mb)")
    assert "not an image file" in upload_problem("notes.txt", 10, 10) and upload_problem("a.PNG", 10, 10) == ""


def test_app_flags(checkpoints, tmp_path, capsys, monkeypatch):
    from webapp.runs import list_runs  # noqa: F401  (the page's imports work without a server)
    with pytest.raises(AppError, match="is not a folder"):
        app_script.main(["--checkpoint_dir", str(tmp_path / "none")])
    with pytest.raises(UsageError, match="--port must be"):
        app_script.main(["--port", "70000"])
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
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0" and argv[argv.index("--server.maxUploadSize") + 1] == "3"
    assert argv[argv.index("--max_upload_mb") + 1] == "2.5"  # the page refuses above 2.5 MB itself
    app_script.main(["--checkpoint_dir", str(checkpoints)])
    assert "warning" not in capsys.readouterr().err


# --- the real page in a real browser -----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{proc.communicate()[0]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # polling a server that is still starting, not waiting for a result
    pytest.fail("app.py did not answer within the timeout")


def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


@pytest.mark.slow  # a browser and a Streamlit server: ~10 s alone, several times that on a loaded machine
def test_upload_in_a_real_browser(checkpoints, tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("IMGCLF_BROWSER_TEST") == "required":  # .ci/run installs them: missing is a failure
            pytest.fail("chromium / chromium-driver are not installed")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from data.images import open_image
    from data import prepare_data
    from artifacts.model_io import load_model_from_checkpoint
    from evaluation.inference import predict_probs, preprocess
    loaded = load_model_from_checkpoint(checkpoints / "digits" / "best.pt", torch.device("cpu"))
    test = prepare_data(loaded.cfg).test
    good = tmp_path / "digit.png"
    Image.fromarray(test.images[5, 0].numpy(), "L").save(good)
    expected = loaded.class_names[int(predict_probs(loaded, preprocess(open_image(good, 1), loaded)).argmax())]
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a picture")
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(big)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "app.py", "--checkpoint_dir", str(checkpoints), "--port", str(port),
                             "--max_upload_mb", "0.02"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        wait_healthy(url, proc)
        driver = browser(tmp_path)
        driver.get(url)
        wait = WebDriverWait(driver, 90)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
        upload.send_keys("\n".join(str(p) for p in (good, fake, big)))  # three files in one upload
        body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
        wait.until(lambda d: "Predicted class:" in body(d) and body(d).count("Refused:") == 2)
        text = body(driver)
        got = re.search(r"Predicted class: (\S+) \(", text)
        assert got and got.group(1) == expected
        assert "notes.png is not a readable image" in text and "/tmp" not in text
        assert re.search(r"big\.png is \d+ KB; the limit is 0\.02 MB", text)
        assert "Traceback" not in text
        # The input and its heat map are drawn (visible ones only: the Runs tab is in the page, hidden).
        loaded_images = ("return Array.from(document.querySelectorAll('[data-testid=stImage] img'))"
                         ".filter(i => i.complete && i.naturalWidth > 0 && i.offsetParent !== null).length")
        wait.until(lambda d: d.execute_script(loaded_images) >= 2)
        driver.save_screenshot(str(tmp_path / "page.png"))
        if os.environ.get("IMGCLF_SCREENSHOT"):  # how docs/app_page.png was made
            driver.save_screenshot(os.environ["IMGCLF_SCREENSHOT"])
        assert Image.open(tmp_path / "page.png").size[0] >= 1000
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
