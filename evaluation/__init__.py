"""Evaluation and prediction: everything ``evaluate.py``, ``predict.py`` and ``bench/`` share.

- :mod:`evaluation.inference` rebuilds a model from a checkpoint alone and predicts image files;
- :mod:`evaluation.metrics` turns predictions into scikit-learn metrics (plus the ECE);
- :mod:`evaluation.plots` draws the confusion matrix and the reliability diagram;
- :mod:`evaluation.report` prints tables and writes the output files;
- :mod:`evaluation.inputs` expands files, folders and globs into image paths.
"""
from __future__ import annotations

import argparse
import typing

from engine.errors import UsageError


class ArgParser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError (exit status 2) instead of printing usage."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise UsageError(message)


def cli_parser(description: str) -> ArgParser:
    p = ArgParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                  allow_abbrev=False)
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p
