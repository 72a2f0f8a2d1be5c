"""Progress that reads well on a terminal and in a log file, for loops and for slow set-up phases.

On a terminal tqdm draws a bar. Anywhere else (output sent to a file, CI, a notebook) a bar is
either switched off or a smear of carriage returns, so :func:`bar` prints a plain line instead, at
most every ``EVERY_S`` seconds. A set-up phase with no loop of its own (loading a dataset,
measuring AMP) is wrapped in :func:`phase`: it says what is happening once it has lasted
``FIRST_S`` seconds, then every ``EVERY_S``, and how long it took; a quick phase prints nothing.

Both take the clock and the writer as arguments, so tests drive them without sleeping.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self

EVERY_S = 10.0  # at most one progress line per this many seconds
FIRST_S = 3.0  # a phase shorter than this stays silent

Clock = Callable[[], float]


def _say(text: str) -> None:
    print(text, flush=True)  # a log file must show it now, not when the buffer fills


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class LineProgress:
    """A loop's progress as plain lines: ``update(done)`` prints when ``every`` seconds have passed.

    The line: ``<desc>: <done>/<total> (<%>) | <fields> | <elapsed>, ~<left> left``; ``fields`` are
    what ``set_postfix`` was last given (tqdm's method, so a loop talks to either alike).
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "",
        every: float = EVERY_S,
        clock: Clock = time.monotonic,
        write: Callable[[str], None] = _say,
    ):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every, self.clock, self.write_line = every, clock, write
        self.start = self.last = clock()
        self.n = 0
        self.fields: dict[str, Any] = {}

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.write_line(self.line(now))

    def line(self, now: float) -> str:
        elapsed = now - self.start
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            head = f"{self.desc}: {self.n:,}/{self.total:,}{unit} ({self.n / self.total:.0%})"
        else:
            head = f"{self.desc}: {self.n:,}{unit}"
        parts = [head]
        if self.fields:
            parts.append(", ".join(f"{k} {v}" for k, v in self.fields.items()))
        timing = _duration(elapsed)
        if self.total and 0 < self.n < self.total:
            timing += f", ~{_duration(elapsed * (self.total - self.n) / self.n)} left"
        return " | ".join(parts + [timing])

    def set_postfix(self, refresh: bool = False, **fields: Any) -> None:
        self.fields = fields

    def write(self, text: str) -> None:
        self.write_line(text)

    def close(self) -> None:
        pass


class Silent(LineProgress):
    """No progress at all (``progress=False``: benchmarks, other ranks, tests)."""

    def update(self, n: int = 1) -> None:
        self.n += n


def bar(
    iterable: Iterable | None = None,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    unit: str = "",
    **kwargs: Any,
):
    """A progress bar for a loop: tqdm on a terminal, plain lines elsewhere, nothing when ``enabled`` is False.

    ``enabled=None`` decides by whether stderr (where tqdm draws) is a terminal; ``True`` forces the bar.
    ``kwargs`` go to :class:`LineProgress` (``every``, ``clock``, ``write``).
    """
    if enabled is False:
        return Silent(iterable, total, desc, unit)
    if enabled or sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(
            iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5, unit=unit or "it"
        )
    return LineProgress(iterable, total, desc, unit, **kwargs)


class Phase:
    """A set-up step that may take a while: silent when quick, otherwise said while it runs.

    After ``first`` seconds: ``<what>...``; then every ``every`` seconds: ``<what>... 13 s``; at the
    end, if anything was said: ``<what>: done in 14.2 s``. A daemon thread polls the clock (the
    step itself has no loop to report from); ``thread=False`` leaves the polling to the caller.
    """

    def __init__(
        self,
        what: str,
        first: float = FIRST_S,
        every: float = EVERY_S,
        clock: Clock = time.monotonic,
        write: Callable[[str], None] = _say,
        thread: bool = True,
        tick: float = 0.5,
    ):
        self.what, self.first, self.every, self.clock, self.write = what, first, every, clock, write
        self.thread, self.tick = thread, tick
        self.start = self.last = 0.0
        self.said = False
        self._done = threading.Event()
        self._worker: threading.Thread | None = None

    def poll(self) -> None:
        now = self.clock()
        elapsed = now - self.start
        if not self.said and elapsed >= self.first:
            self.said, self.last = True, now
            self.write(f"{self.what}...")
        elif self.said and now - self.last >= self.every:
            self.last = now
            self.write(f"{self.what}... {_duration(elapsed)}")

    def _run(self) -> None:
        while not self._done.wait(self.tick):
            self.poll()

    def __enter__(self) -> Self:
        self.start = self.clock()
        if self.thread and os.environ.get("RANK", "0") == "0":  # under torchrun, global rank 0 speaks
            self._worker = threading.Thread(target=self._run, name=f"progress: {self.what}", daemon=True)
            self._worker.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._done.set()
        if self._worker is not None:
            self._worker.join()
        if self.said and exc_type is None:
            self.write(f"{self.what}: done in {self.clock() - self.start:.1f} s")


def phase(what: str, **kwargs: Any) -> Phase:
    """``with phase("loading fashion_mnist"):`` -- see :class:`Phase`."""
    return Phase(what, **kwargs)
