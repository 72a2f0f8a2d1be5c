"""Run a sweep's train.py commands N at a time, and stop them all cleanly on Ctrl-C / SIGTERM.

Each job is a child process in its own session, so a Ctrl-C in the terminal reaches only the sweep,
which forwards exactly one SIGINT to every running job: each finishes its current step, saves
``last.pt`` and exits (train.py's own graceful stop), so each is resumable by re-running the sweep.
(Had the terminal's SIGINT reached the jobs directly as well, the forwarded one would be their second
signal, which means "exit at once".) A second Ctrl-C is forwarded too: the jobs then exit at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    name: str
    command: list[str]
    log: Path  # stdout and stderr of the job, appended across re-runs
    env: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    seconds: float = 0.0


class JobRunner:
    """Run ``jobs`` with at most ``parallel`` at once; ``on_done(job)`` is called as each ends."""

    POLL_S = 0.2  # how often finished children are collected; short next to any training run

    def __init__(self, parallel: int):
        self.parallel = max(1, parallel)
        self.signum: int | None = None
        self.signals = 0
        self.running: dict[subprocess.Popen, tuple[Job, float]] = {}

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        self.signals += 1
        for proc in list(self.running):
            try:
                proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.signals == 1:
            os.write(
                2,
                f"\n{signal.Signals(signum).name}: stopping {len(self.running)} running jobs (each saves "
                f"last.pt); press Ctrl-C again to make them quit at once\n".encode(),
            )

    def run(self, jobs: Sequence[Job], on_done: Callable[[Job], None]) -> list[Job]:
        """Run the jobs; returns those never started (when a signal stopped the sweep)."""
        pending = list(jobs)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while pending or self.running:
                while pending and len(self.running) < self.parallel and self.signum is None:
                    self._start(pending.pop(0))
                for proc in [p for p in self.running if p.poll() is not None]:
                    job, started = self.running.pop(proc)
                    job.returncode, job.seconds = proc.returncode, time.monotonic() - started
                    on_done(job)
                if self.signum is not None and not self.running:
                    break
                time.sleep(self.POLL_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return pending

    def _start(self, job: Job) -> None:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "ab") as log:
            log.write(f"\n$ {' '.join(job.command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                job.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **job.env},
                start_new_session=True,
            )
        self.running[proc] = (job, time.monotonic())
