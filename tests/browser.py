"""The page in a real browser: start ``app.py``, drive Debian's headless chromium, take screenshots.

Used by tests/test_app.py, and run directly to refresh the page's pictures in docs/:

    python tests/browser.py --checkpoint_dir checkpoints --upload digit.png --out docs

which writes ``app_predict.png`` (the uploads predicted) and ``app_runs.png`` (the Runs tab) at
1400 px wide, and prints the server's peak memory (VmHWM) after each step: the first upload, then
each ``--then_upload`` file (e.g. a decompression bomb, to see that it costs nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WIDTH = 1400
# The <img> elements of st.image that are drawn (the hidden tab's images have no offsetParent).
VISIBLE_IMAGES = (
    "return Array.from(document.querySelectorAll('[data-testid=stImage] img'))"
    ".filter(i => i.complete && i.naturalWidth > 0 && i.offsetParent !== null).length"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{proc.communicate()[0]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # polling a server that is still starting, not waiting for a result
    raise RuntimeError("app.py did not answer within the timeout")


@contextlib.contextmanager
def serve(checkpoint_dir: Path, *flags: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``app.py`` on a free loopback port for the ``with`` block; yields its URL and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--checkpoint_dir", str(checkpoint_dir), "--port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def browser(profile: Path, height: int = 1100) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={WIDTH},{height}",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def upload(driver, files, timeout: float = 120):
    """Give ``files`` to the page's uploader in one go; returns a WebDriverWait for what follows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
    box.send_keys("\n".join(str(p) for p in files))
    return wait


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//*[@role='tab' and normalize-space(.)='{name}']").click()


def open_runs_tab(driver, wait) -> None:
    open_tab(driver, "Runs")
    wait.until(lambda d: "Leaderboard:" in page_text(d) and d.execute_script(VISIBLE_IMAGES) >= 1)


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a process so far (Linux's VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint_dir", type=Path, required=True)
    p.add_argument("--upload", type=Path, nargs="+", required=True, help="files to upload on the Predict tab")
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--then_upload", type=Path, nargs="*", default=[], help="files uploaded one by one afterwards")
    p.add_argument("--height", type=int, default=1100, help="window height in px (default: 1100)")
    args = p.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(args.checkpoint_dir) as (url, proc),
        browser(Path(tmp) / "profile", args.height) as driver,
    ):
        driver.get(url)
        wait = upload(driver, [f.resolve() for f in args.upload])
        wait.until(lambda d: "Predicted class:" in page_text(d) and d.execute_script(VISIBLE_IMAGES) >= 2)
        print(f"server peak memory after {', '.join(f.name for f in args.upload)}: {peak_rss_mb(proc.pid):,.0f} MB")
        driver.save_screenshot(str(args.out / "app_predict.png"))
        open_runs_tab(driver, wait)
        driver.save_screenshot(str(args.out / "app_runs.png"))
        print(f"wrote {args.out / 'app_predict.png'} and {args.out / 'app_runs.png'}")
        open_tab(driver, "Predict")
        for f in args.then_upload:
            start, answers = time.monotonic(), page_text(driver).count("Predicted class:")
            upload(driver, [f.resolve()]).until(
                lambda d, name=f.name, n=answers: (
                    f"Refused: {name}" in page_text(d) or page_text(d).count("Predicted class:") > n
                )
            )
            print(
                f"server peak memory after {f.name} ({f.stat().st_size / 1024:.0f} KB): "
                f"{peak_rss_mb(proc.pid):,.0f} MB, {time.monotonic() - start:.1f} s to the answer"
            )


if __name__ == "__main__":
    main()
