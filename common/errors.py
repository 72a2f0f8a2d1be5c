"""Errors a user can act on, and the one place that turns them into a one-line message.

Entry scripts wrap ``main`` with :func:`run_cli`: an :class:`AppError` prints ``error: ...``
and exits with its code (2 for usage/config mistakes, 1 for runtime failures); the full
traceback is shown only with ``--debug``.
"""
from __future__ import annotations

import sys
from typing import Callable, Iterable, Sequence

from common.spelling import did_you_mean


class AppError(Exception):
    """A failure the user can fix; the message names the problem and the fix."""

    exit_code = 1
    label = "error"  # the word before the message on stderr


class UsageError(AppError):
    """Bad flags, config keys, values or names (exit status 2)."""

    exit_code = 2


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
    sys.exit(code or 0)
