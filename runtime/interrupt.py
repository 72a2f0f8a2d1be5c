"""Ctrl-C and SIGTERM during training: finish the current step, save, say how to continue.

The first SIGINT/SIGTERM only sets a flag. The training loop polls it after every optimizer update
(never between the backward passes of an accumulation group), saves ``last.pt`` with the position
inside the epoch, and raises :class:`Interrupted`, which ``run_cli`` prints with the command that
resumes. A second signal exits at once: every file is written to a temp file and renamed, so the
worst it can do is leave a stale temp file (removed at the next start) and lose the current step.

Exit status follows the shell convention 128 + signal number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import AppError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(AppError):
    """Training stopped on request after saving ``last.pt``; exit 128 + signal number."""

    label = "interrupted"

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def resume_command(run_dir: Path) -> str:
    """The one command that continues this run (or starts it, if nothing was saved yet)."""
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith("train.py") else "train.py"
    return (
        f"{launcher()} {shlex.quote(script)} --checkpoint_dir {shlex.quote(str(run_dir.parent))} "
        f"--run_name {shlex.quote(run_dir.name)} --resume auto"
    )


def launcher() -> str:
    """``python``, or the torchrun command that started this process (same number of processes)."""
    world, local = int(os.environ.get("WORLD_SIZE", "1")), os.environ.get("LOCAL_WORLD_SIZE", "1")
    if world <= 1:
        return "python"
    if str(world) == local:
        return f"torchrun --standalone --nproc_per_node {local}"
    return f"torchrun <the same --nnodes/--rdzv flags> --nproc_per_node {local}"


class GracefulStop:
    """Context manager installing the two-stage handler; call the instance to poll the flag.

    Outside the main thread (e.g. training started from a worker thread) signals cannot be
    caught, so the handlers are simply not installed and the default behaviour stays.

    ``coalesce_s``: under torchrun a Ctrl-C reaches each worker twice within milliseconds (SIGINT
    from the terminal, SIGTERM forwarded by the launcher); a second signal that soon is the same
    request, not the "quit at once" one.
    """

    def __init__(self, coalesce_s: float = 0.0) -> None:
        self.signum: int | None = None
        self.coalesce_s = coalesce_s
        self._first = 0.0
        self._previous: dict[int, object] = {}
        self._at_once: Callable[[], BaseException] | None = None

    def at_once(self, error: Callable[[], BaseException]) -> None:
        """From now on a first signal raises ``error()`` at once: past the epochs (the final test,
        the summary) there is no step to finish and nothing left to save, only to stop."""
        self._at_once = error

    def __call__(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        # os.write, not print: a handler may run while the main thread is inside print().
        if self.signum is not None and time.monotonic() - self._first < self.coalesce_s:
            return
        if self.signum is not None and self._at_once is None:
            os.write(
                2,
                f"\n{name} again: exiting now; files on disk are complete (last.pt is the last saved state)\n".encode(),
            )
            os._exit(128 + signum)
        if self._at_once is not None:
            self.signum, self._first = signum, time.monotonic()
            raise self._at_once()
        self.signum, self._first = signum, time.monotonic()
        os.write(
            2,
            f"\n{name}: finishing the current step and saving last.pt (press Ctrl-C again to quit at once)\n".encode(),
        )

    def error(self, where: str, run_dir: Path) -> Interrupted:
        """The exception to raise once ``last.pt`` is saved."""
        assert self.signum is not None
        name = signal.Signals(self.signum).name
        return Interrupted(
            f"{name} at {where}; saved {run_dir / 'last.pt'}. Resume with: {resume_command(run_dir)}", self.signum
        )
