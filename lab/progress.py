"""A sweep's progress: ``run k/N done: <name> <metric> | ETA ...`` lines, and a live ``progress.txt``.

The ETA is the mean time of the runs this process has finished, times the runs left, divided by the
runs going at once; before a run finished it is unknown. progress.txt is rewritten (atomically) at
every start and end of a run and every few seconds while runs go, with each running run's epoch,
so ``cat``/``watch`` on it shows where a sweep is from any terminal.
"""

from __future__ import annotations

import csv
import statistics
import threading
import time
from pathlib import Path

from common.fileio import write_atomic

REFRESH_S = 5.0  # how often progress.txt is rewritten while runs go


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def epochs_done(folder: Path) -> int:
    try:
        with open(folder / "metrics.csv", newline="") as f:
            return sum(1 for _ in csv.DictReader(f))
    except OSError:
        return 0


class Progress:
    """Counts runs of one sweep process; thread-safe (trials run in parallel threads)."""

    def __init__(self, path: Path, title: str, total: int, done: int, parallel: int, epochs: int):
        self.path, self.title = path, title
        self.total, self.done, self.parallel, self.epochs = total, done, max(1, parallel), epochs
        self.seconds: list[float] = []
        self.running: dict[str, tuple[Path, float]] = {}
        self.recent: list[str] = []
        self.counted: set[str] = set()  # runs counted done by this process (a retried trial reuses one)
        self.lock = threading.RLock()  # write() runs under it: one writer of progress.txt at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, daemon=True, name="sweep-progress")

    def __enter__(self) -> Progress:
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.write()

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.write()

    def eta(self) -> str:
        left = self.total - self.done
        if left <= 0:
            return "0:00"
        if not self.seconds:
            return "unknown"
        return clock(statistics.fmean(self.seconds) * left / min(self.parallel, left))

    def started(self, name: str, folder: Path) -> None:
        with self.lock:
            self.running[name] = (folder, time.monotonic())
        self.write()

    def finished(self, name: str, result: str, trained: bool) -> str:
        """Count a run as done (``trained``: its time counts for the ETA); returns the printed line."""
        with self.lock:
            _, t0 = self.running.pop(name, (None, time.monotonic()))
            if trained:
                self.seconds.append(time.monotonic() - t0)
            if name not in self.counted:
                self.counted.add(name)
                self.done += 1
            line = f"run {self.done}/{self.total} done: {name} {result} | ETA {self.eta()}"
            self.recent = [*self.recent, line][-10:]
        self.write()
        return line

    def ended(self, name: str) -> None:
        """A run stopped without a result (Ctrl-C, failure): no longer running, not done."""
        with self.lock:
            self.running.pop(name, None)
        self.write()

    def drop(self, n: int) -> None:
        """``n`` planned runs will not happen (their trial was pruned)."""
        with self.lock:
            self.total -= n

    def write(self) -> None:
        with self.lock:
            now = time.monotonic()
            lines = [
                f"{self.title}",
                f"{self.done}/{self.total} runs done, {len(self.running)} running, "
                f"ETA {self.eta()}  ({time.strftime('%Y-%m-%d %H:%M:%S')})",
                "",
            ]
            for name, (folder, t0) in sorted(self.running.items()):
                lines.append(
                    f"running {name}: epoch {epochs_done(folder)}/{self.epochs} done, {clock(now - t0)} so far"
                )
            if self.recent:
                lines += ["", *self.recent]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(("\n".join(lines) + "\n").encode(), self.path)
