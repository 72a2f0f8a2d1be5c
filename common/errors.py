"""Errors a user can act on, and the one place that turns them into a one-line message.

Entry scripts wrap ``main`` with :func:`run_cli`: an :class:`AppError` prints ``error: ...``
and exits with its code (2 for usage/config mistakes, 1 for runtime failures); the full
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence

from common.spelling import did_you_mean


class AppError(Exception):
    """A failure the user can fix; the message names the problem and the fix."""

    exit_code = 1
    label = "error"  # the word before the message on stderr


class UsageError(AppError):
    """Bad flags, config keys, values or names (exit status 2)."""

    exit_code = 2


def first_line(e: BaseException, limit: int = 160) -> str:
    """An exception's message for a one-line error: its first line, or its type when it has none
    (torch's EOFError on an empty file has an empty message)."""
    lines = str(e).strip().splitlines()
    return lines[0][:limit] if lines else type(e).__name__


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UsageError:
    """Build the error for an unknown registry name, listing the valid ones."""
    valid = sorted(valid)
    return UsageError(f"unknown {kind} '{name}'{did_you_mean(name, valid)}. Valid: {', '.join(valid)}")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run an entry point, turning AppErrors (and Ctrl-C) into one line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = main(args)
    except AppError as e:
        if debug:
            raise
        print(f"{e.label}: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `script | head` closed the pipe: stop quietly, as cat or grep would
        _quiet_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    try:
        sys.stdout.flush()  # a pipe closed after the last print fails here, not inside main
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    sys.exit(code or 0)


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a program stopped by a closed pipe


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's own flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
