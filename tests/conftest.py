"""Shared fixtures: run the entry scripts in-process on small, fast settings."""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One thread: these models are tiny (a few thousand parameters on 8x8 images), where a second OpenMP
# thread buys nothing on an idle machine and, on a busy one, makes every op wait for a descheduled
# peer (measured: one lr_auto run 128 s with 2 threads, 30 s with 1, at load 10 on 2 cores).
torch.set_num_threads(1)
# Module-scoped fixtures run before the per-test cache below: they, too, never touch ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="imgclf-test-cache-")

# Small and quick, but still the real code path. Exactness is a CPU property: --device cpu even
# where a GPU exists (GPU behaviour has its own tests, skipped without one); AMP and the memory
# format fixed, so no test depends on a timing (auto has its own tests: tests/test_autotune.py).
FAST = [
    "--width",
    "8",
    "--depth",
    "2",
    "--batch_size",
    "128",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--amp",
    "off",
    "--channels_last",
    "off",
]


# The files that take longest, longest first (summed test time in `pytest --durations=0`, on 2 cores,
# in `make test` and `make test-quick`): handed out first. An order gone stale only costs time.
LONGEST = (
    "test_distributed.py",
    "test_lab_postgres.py",
    "test_end_to_end.py",
    "test_sweep_lr_find.py",
    "test_app.py",
    "test_predict.py",
    "test_explain_export.py",
    "test_lab_runs.py",
    "test_autotune.py",
    "test_transfer.py",
    "test_evaluate.py",
    "test_results_db.py",
    "test_lab.py",
    "test_lifecycle.py",
    "test_catalogue.py",
    "test_kill_resume.py",
    "test_bad_inputs.py",
)


def pytest_collection_modifyitems(config, items):
    """The longest files first, then the other files holding slow tests, then the rest (collection
    order within each). ``make test`` hands out whole files in this order (xdist ``--dist loadfile
    --no-loadscope-reorder``): the long files start early and the many short ones even out the end,
    instead of a long file starting last on one core while the other has nothing left to do."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    order = {name: i for i, name in enumerate(LONGEST)}

    def rank(item) -> int:
        if item.path.name in order:
            return order[item.path.name]
        return len(order) + (item.path not in slow_files)

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def preloading_launcher():
    """Start the launcher's helper with the first test: its imports (seconds) overlap the tests that
    come before the first real command, instead of that command waiting for them."""
    launcher()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test measures its own AMP/channels_last decisions (runtime/autotune.py): no shared cache file."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


def train(tmp_path: Path, *args: str) -> None:
    import train as train_script

    train_script.main(["--checkpoint_dir", str(tmp_path / "ck"), *FAST, *args])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One finished 2-epoch FAST digits run, trained once per session for the tests that only read a
    checkpoint (evaluate, predict, explain, export, the bad-input catalogue). Use ``copy_run`` to get
    a private copy: nothing may write into this one."""
    import train as train_script

    root = tmp_path_factory.mktemp("trained_run")
    train_script.main(["--checkpoint_dir", str(root), "--run_name", "tiny", *FAST, "--epochs", "2"])
    return root / "tiny"


def copy_run(run: Path, dest: Path) -> Path:
    """A private copy of a run folder at ``dest`` (its checkpoints, config and metrics; not the results
    database, whose rows name the original folder)."""
    shutil.copytree(run, dest)
    return dest


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def run_train(tmp_path, capsys):
    def _run(*args: str) -> str:
        train(tmp_path, *args)
        return capsys.readouterr().out

    return _run


# --- the real command line, as a subprocess (signals, exit status, stderr) ---
def cli_env(faults: str = "") -> dict:
    """Environment for a child ``train.py``: unbuffered output, optional common/faults.py hooks."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("IMGCLF_FAULTS", None)
    if faults:
        env["IMGCLF_FAULTS"] = faults
    return env


_launcher = None


def launcher():
    """One common/prefork.py helper per test process, as sweep.py starts its runs: each command is a
    new process running the script as `python SCRIPT ARGS` would, without re-importing torch."""
    global _launcher
    if _launcher is None:
        from common import prefork

        _launcher = prefork.launcher()
        atexit.register(_launcher.close)
    return _launcher


class Started:
    """``python SCRIPT ARGS`` started through :func:`launcher`, its stdout and stderr kept in files:
    the part of :class:`subprocess.Popen` the tests use (``pid``, ``poll``, ``wait``, ``send_signal``,
    ``kill``, ``communicate``, ``returncode``) and ``lines()`` to follow its output while it runs."""

    def __init__(self, script: str, *args, env: dict | None = None, merge_stderr: bool = False):
        self.args = [script, *map(str, args)]
        self._folder = tempfile.TemporaryDirectory(prefix="imgclf-cli-")
        self._out = Path(self._folder.name) / "stdout"
        self._err = None if merge_stderr else Path(self._folder.name) / "stderr"
        for path in (self._out, self._err):
            if path:
                path.touch()  # readable before the child opens it
        # `python SCRIPT` from the repository root: a command the script prints back names it the same way
        self._child = launcher().start(
            self.args, env if env is not None else cli_env(), self._out, cwd=ROOT, err=self._err
        )
        self.pid = self._child.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = self._child.wait(timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self._child.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end (killed after ``timeout``, as ``cli`` does) and return (stdout, stderr)."""
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise subprocess.TimeoutExpired(self.args, timeout) from None
        return self._out.read_text(), self._err.read_text() if self._err else ""

    def lines(self, timeout: float = 120):
        """Each stdout line as the script writes it (its output is unbuffered: cli_env); fails when no
        new line comes for ``timeout`` seconds while it runs."""
        with open(self._out, "rb") as f:
            pending, deadline = b"", time.monotonic() + timeout
            while True:
                ended = self.poll() is not None  # before reading: what it wrote before it ended is read
                *whole, pending = (pending + f.read()).split(b"\n")
                for line in whole:
                    yield line.decode(errors="replace") + "\n"
                if ended:
                    if pending:
                        yield pending.decode(errors="replace")
                    return
                if whole:
                    deadline = time.monotonic() + timeout
                assert time.monotonic() < deadline, f"{self.args[0]} printed no new line within {timeout} s"
                time.sleep(0.02)


def cli(script: str, *args, faults: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python SCRIPT ARGS`` from the repository root and wait for it (stdout, stderr, status)."""
    proc = Started(script, *args, env=cli_env(faults))
    out, err = proc.communicate(timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for_file(path: Path, proc, timeout: float = 60) -> None:
    """Block until ``path`` exists (a faults.py hold reached); fail fast if the child died first.
    ``proc``: a :class:`Started` or :class:`subprocess.Popen`."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited with {proc.returncode} before reaching {path.name}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"child did not reach {path.name} within {timeout} s")
        time.sleep(0.02)


def signal_when_held(proc, marker: Path, sig: int, timeout: float = 60) -> subprocess.CompletedProcess:
    """Wait until the started ``proc`` creates ``marker`` (a faults.py hold), send ``sig`` and wait for
    its exit; a child left running by a failed assertion is killed."""
    try:
        wait_for_file(marker, proc, timeout=timeout)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def nan_on_forwards(monkeypatch, calls, *, training: bool, first_model_only: bool = False) -> None:
    """Make models that training builds output NaN on the given (1-based) forward calls of one mode
    (training-mode: the updates; evaluation-mode: the validation passes). ``first_model_only``
    leaves later builds clean, e.g. the model rebuilt from best.pt for the final test."""
    import engine.setup

    real_build = engine.setup.build_model
    built = []

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        built.append(model)
        if first_model_only and len(built) > 1:
            return model
        count = [0]

        def hook(module, inputs, output):
            if module.training == training:
                count[0] += 1
                if count[0] in calls:
                    return torch.full_like(output, float("nan"))
            return output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(engine.setup, "build_model", build)


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (tests/pg.py); each test takes a new database."""
    from pg import server_or_skip

    server = server_or_skip()
    yield server
    server.stop()
