"""Test hooks that make crash moments reachable on purpose: pause at a point, or fail a write.

The kill and bad-input tests must hit moments that are a few microseconds wide ("while
``last.pt`` is being written", "right after epoch 2 was saved") without racing on sleeps. The code
marks those moments with :func:`point`; a test process sets ``IMGCLF_FAULTS`` to act on them::

    IMGCLF_FAULTS="step#30=hold:/tmp/m"              # 30th optimizer update: touch /tmp/m, then wait
    IMGCLF_FAULTS="write:last.pt#2=hold:/tmp/m"      # halfway through writing last.pt the 2nd time
    IMGCLF_FAULTS="write:last.pt#2=enospc"           # ... fail that write as a full disk would
    IMGCLF_FAULTS="step#5=hold:/tmp/a;epoch_end#1=hold:/tmp/b"   # several, ';'-separated
    IMGCLF_FAULTS="step#3@1=enospc"                  # under torchrun: only in the process of RANK 1
    IMGCLF_FAULTS="step#1=pause:/tmp/m"              # touch /tmp/m, wait until the test deletes it

A ``{pid}`` in a marker's name is replaced by the process id, so several processes given the same
variable (a sweep's jobs) each leave their own marker. ``hold`` creates the marker file (the test waits for
it, then sends its signal) and waits until
the point's ``release()`` says so -- e.g. until a SIGINT was received -- or until it is killed;
``pause`` creates the marker and goes on once the test has deleted it (a second process can be
started at a known moment, then the first one finishes normally).
Counts are per process. Without the variable :func:`point` returns at once.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

ENV = "IMGCLF_FAULTS"
MAX_HOLD_S = 120.0  # a forgotten hold must not leave an orphan process behind


def _parse(spec: str) -> dict[tuple[str, int], tuple[str, str]]:
    """``POINT#N=ACTION[:ARG]`` entries -> {(point, n): (action, arg)}."""
    out = {}
    for entry in filter(None, (e.strip() for e in spec.split(";"))):
        left, _, right = entry.partition("=")
        name, _, n = left.rpartition("#")
        n, _, rank = n.partition("@")
        action, _, arg = right.partition(":")
        if (
            not name
            or not n.isdigit()
            or not (rank == "" or rank.isdigit())
            or action not in ("hold", "pause", "enospc")
        ):
            raise ValueError(f"bad {ENV} entry {entry!r}; expected POINT#N[@RANK]=hold:MARKER or POINT#N=enospc")
        if rank == "" or int(rank) == int(os.environ.get("RANK", "0")):
            out[(name, int(n))] = (action, arg)
    return out


_FAULTS = _parse(os.environ.get(ENV, ""))
_counts: dict[str, int] = {}


def point(name: str, release: Callable[[], bool] = lambda: False) -> None:
    """Mark a crash-relevant moment; acts only when ``IMGCLF_FAULTS`` names it."""
    if not _FAULTS:
        return
    _counts[name] = _counts.get(name, 0) + 1
    fault = _FAULTS.get((name, _counts[name]))
    if fault is None:
        return
    action, arg = fault
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    marker = Path(arg.replace("{pid}", str(os.getpid())))  # {pid}: one marker per process
    marker.write_text(str(os.getpid()))
    if action == "pause":
        release = lambda: not marker.exists()  # noqa: E731
    deadline = time.monotonic() + MAX_HOLD_S
    while not release():
        if time.monotonic() > deadline:
            os._exit(99)
        time.sleep(0.01)  # signal handlers run between these short sleeps
