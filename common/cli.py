"""The argument parser every entry script uses: one-line errors, and the flags it knows.

argparse prints usage and exits on a bad flag; here that becomes a :class:`UsageError`, which
:func:`common.errors.run_cli` prints as one line with exit status 2, like every other mistake.
"""

from __future__ import annotations

import argparse
import math
import typing

from common.errors import UsageError
from common.spelling import did_you_mean


def finite_float(text: str) -> float:
    """``type=float`` for every flag: NaN and infinity mean nothing for any setting of this tool."""
    value = float(text)  # a ValueError becomes argparse's "invalid float value"
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


finite_float.__name__ = "float"  # argparse's messages name the type by it


class ArgParser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of printing usage and exiting; every
    ``type=float`` flag refuses NaN and infinity."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # a prefix must never silently mean another flag
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        self.flags: list[str] = []  # every --long option added, for "did you mean" hints (set first:
        super().__init__(*args, **kwargs)  # argparse's __init__ already adds --help)

    def add_argument(self, *names, **kwargs):
        self.flags.extend(n for n in names if n.startswith("--"))
        if kwargs.get("type") is float:
            kwargs["type"] = finite_float
        return super().add_argument(*names, **kwargs)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, rest = self.parse_known_args(args, namespace)
        if rest:
            raise self.unrecognized(rest[0])
        return ns

    def unrecognized(self, arg: str) -> UsageError:
        """The error for a flag this parser does not know, with the flag it was probably meant to be."""
        flag = arg.partition("=")[0]
        hint = did_you_mean(flag, self.flags) if flag.startswith("-") else ""
        return UsageError(f"unrecognized argument '{arg}'{hint}")

    def _check_value(self, action, value):  # argparse's hook for ``choices`` (3.14 adds suggest_on_error)
        if action.choices is not None and value not in action.choices:
            valid = [str(c) for c in action.choices]
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{did_you_mean(str(value), valid)}; valid: {', '.join(valid)}"
            )

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise UsageError(message)


def add_shared_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every entry script has (``--debug``), defined once (common.errors.run_cli reads it)."""
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def cli_parser(description: str, **kwargs) -> ArgParser:
    """A parser with the flags every entry script shares; ``kwargs`` go to ArgParser."""
    return add_shared_flags(ArgParser(description=description, **kwargs))
