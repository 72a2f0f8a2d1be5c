"""The argument parser every entry script uses: one-line errors, and the flags it knows.

argparse prints usage and exits on a bad flag; here that becomes a :class:`UsageError`, which
:func:`common.errors.run_cli` prints as one line with exit status 2, like every other mistake.
"""
from __future__ import annotations

import argparse
import typing

from common.errors import UsageError


class ArgParser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of printing usage and exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # a prefix must never silently mean another flag
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        self.flags: list[str] = []  # every --long option added, for "did you mean" hints (set first:
        super().__init__(*args, **kwargs)  # argparse's __init__ already adds --help)

    def add_argument(self, *names, **kwargs):
        self.flags.extend(n for n in names if n.startswith("--"))
        return super().add_argument(*names, **kwargs)

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise UsageError(message)


def add_shared_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every entry script has (``--debug``), defined once (common.errors.run_cli reads it)."""
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def cli_parser(description: str, **kwargs) -> ArgParser:
    """A parser with the flags every entry script shares; ``kwargs`` go to ArgParser."""
    return add_shared_flags(ArgParser(description=description, **kwargs))
