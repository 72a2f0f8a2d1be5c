"""One writer per run folder: an OS lock held by the writing process for its whole life.

The writer (``train.py`` on one device, rank 0 under torchrun, each sweep job) takes an exclusive
``fcntl.flock`` on ``<run>/.lock`` before it writes or even decides anything about the folder
(fresh start or resume). The kernel drops the lock when the process ends, however it ends, so a
killed run never leaves a stale lock behind; the pid written into the file only names the holder
in messages. Readers (evaluate, predict, the page) never take it: every file they read is
replaced atomically, so they see the last complete version.

API for the tools that manage runs (sweep.py)::

    lock = RunLock(folder)
    try:
        lock.acquire()           # RunLocked(folder, pid) when another process holds it
        lock.acquire(wait=True)  # ... or block until that process ends
    except RunLocked as e:
        ...                      # skip the run, or wait and try again
    ...
    lock.release()               # or: with RunLock(folder): ...

    is_locked(folder) / holder_pid(folder)   # probes: never keep the lock

A process may take the lock of one folder more than once (a sweep job run in-process, then
``fit``): the inner acquire is a no-op and only the outermost release lets go. Child processes do
not inherit it (``O_CLOEXEC``): a sweep that starts ``train.py`` leaves the locking to the child and
reads exit status :data:`EXIT_LOCKED` with the line ``run folder ... is being written by process N``
as "another sweep has this run".

``train.py`` exits with :data:`EXIT_LOCKED` (2) and one line when its run is held by another process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from common.errors import AppError, UsageError

LOCK_NAME = ".lock"
EXIT_LOCKED = 2  # train.py's exit status when another process writes the run
# A probe (holder_pid) holds a shared lock for microseconds; an acquire that meets one tries again
# within this window instead of reporting a writer that does not exist.
_CONTENDED_S = 0.25
_held: dict[str, RunLock] = {}  # realpath of the lock file -> this process's outermost holder


LOCKED_WORDS = "is being written by"  # in RunLocked's line, which a sweep reads back from its child's log


def says_locked(line: str) -> bool:
    """Whether ``line`` (a child train.py's last log line) is :class:`RunLocked`'s refusal."""
    return "run folder " in line and LOCKED_WORDS in line


class RunLocked(AppError):
    """Another live process holds the run folder's lock."""

    exit_code = EXIT_LOCKED

    def __init__(self, folder: Path, pid: int | None):
        self.folder, self.pid = Path(folder), pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"run folder {folder} {LOCKED_WORDS} {who}; wait for it to finish (or stop it), "
            f"or choose another --run_name"
        )


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class RunLock:
    """An exclusive, non-blocking lock on ``<folder>/.lock``; the folder is created if needed."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._nested = False  # this process already held it when acquire was called

    @property
    def held(self) -> bool:
        return self._fd is not None or self._nested

    def acquire(self, wait: bool = False) -> RunLock:
        """Take the lock, or raise :class:`RunLocked` at once; ``wait=True`` blocks until the writer
        holding it ends instead (e.g. a sweep waiting for another sweep's run before it looks at it)."""
        if self.held:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            key = os.path.realpath(self.path)
            if key in _held:
                self._nested = True
                return self
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UsageError(
                f"cannot write the run folder {self.folder}: {e.strerror or e}; choose a writable --checkpoint_dir"
            ) from None
        deadline = time.monotonic() + _CONTENDED_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                break
            except OSError as e:
                busy = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                if busy and time.monotonic() < deadline:
                    time.sleep(0.005)  # maybe a probe's instant: a writer holds it far longer
                    continue
                os.close(fd)
                if busy:
                    raise RunLocked(self.folder, _read_pid(self.path)) from None
                raise AppError(f"cannot lock the run folder {self.folder}: {e.strerror or e}") from None
        # The pid is for messages only: the lock itself is the kernel's, released with the process.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _held[key] = self
        return self

    def release(self) -> None:
        if self._nested:
            self._nested = False
            return
        if self._fd is None:
            return
        _held.pop(os.path.realpath(self.path), None)
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the folder no longer names a writer
        except OSError:
            pass
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_pid(folder: str | Path) -> int | None:
    """The pid of the process writing ``folder`` now; -1 when it is held but the pid is not yet
    written; None when nobody holds its lock (this process's own lock counts as held)."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # A shared probe: fails only while someone holds the exclusive lock. Never kept.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_pid(path) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_locked(folder: str | Path) -> bool:
    """Whether another process writes ``folder`` now (a probe; takes nothing)."""
    return holder_pid(folder) is not None
