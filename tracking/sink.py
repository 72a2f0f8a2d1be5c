"""One interface for everything a run reports to, and the one context that opens and closes them all.

A sink hears five calls, in this order (Lightning's Logger/Callback shape):

    start(run)           once, when the run's epochs begin (fresh or resumed)
    on_update(step, lr)  after every applied optimizer update
    on_epoch(step, row)  after every epoch: the metrics.csv row plus what the console line shows
    finish(result)       after the final test, once summary.json is written
    end(status)          always, last: finished | stopped | interrupted | failed

:class:`Lifecycle` holds the list and is the ``with`` block around the epochs *and* the final test,
so whatever fails or is interrupted anywhere, every sink hears ``end`` with the status that fits
(:func:`status_of`). A new logger (MLflow, an Optuna pruning reporter) is one subclass of
:class:`Sink` passed to ``engine.trainer.fit(..., sinks=[...])``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.interrupt import Interrupted


@dataclass
class RunInfo:
    """What ``start`` gets: the run as it (re)starts."""

    cfg: Any  # settings.config.Config
    run_dir: Path
    class_names: Sequence[str]
    step: int = 0  # global step the run (re)starts from
    history: list[dict] = field(default_factory=list)  # epochs already done (a resumed run)
    model: Any = None  # the initial model of a fresh run (None when resumed)


@dataclass
class RunResult:
    """What ``finish`` gets: summary.json's content and the final test's predictions."""

    summary: dict[str, Any]
    split: str  # "test", or "val" when the dataset has no test split
    labels: Any  # numpy int array
    preds: Any  # numpy int array
    class_names: Sequence[str]
    step: int  # global step of best.pt


class Sink:
    """Every call does nothing: a sink overrides the ones it needs."""

    def start(self, run: RunInfo) -> None:
        pass

    def on_update(self, step: int, lr: float) -> None:
        pass

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        pass

    def finish(self, result: RunResult) -> None:
        pass

    def end(self, status: str) -> None:
        pass

    def stop_request(self) -> BaseException | None:
        """Asked after each epoch's checkpoint is saved: an error to end the run with there (a
        sweep's pruned trial), or None to go on."""
        return None


def status_of(exc: BaseException | None, training_done: bool) -> str:
    """The status a run ends with. An exception may name its own (``run_status`` attribute)."""
    if exc is None:
        return "finished"
    own = getattr(exc, "run_status", None)
    if own:
        return own
    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        # In the epochs, a signal saves last.pt mid-run: stopped. After them (final test, summary)
        # training is complete and `--resume auto` only has the final test left: interrupted.
        return "interrupted" if training_done else "stopped"
    return "failed"


class Lifecycle:
    """The sinks of one run, called in list order; ``with`` spans the epochs and the final test."""

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)
        self.training_done = False  # set once the last epoch is saved: what a signal now interrupts
        self.status: str | None = None

    def start(self, run: RunInfo) -> None:
        for s in self.sinks:
            s.start(run)

    @property
    def wants_updates(self) -> bool:
        """Whether any sink listens to updates: the loop then skips the per-update call altogether."""
        return any(type(s).on_update is not Sink.on_update for s in self.sinks)

    def on_update(self, step: int, lr: float) -> None:
        for s in self.sinks:
            s.on_update(step, lr)

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        for s in self.sinks:
            s.on_epoch(step, row)

    def finish(self, result: RunResult) -> None:
        for s in self.sinks:
            s.finish(result)

    def stop_request(self) -> BaseException | None:
        return next((r for r in (s.stop_request() for s in self.sinks) if r is not None), None)

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.status = status_of(exc, self.training_done)
        first: BaseException | None = None
        for s in self.sinks:  # each sink ends, whatever another one raises
            try:
                s.end(self.status)
            except BaseException as e:  # noqa: BLE001 -- reported below, after every sink ended
                if first is None:
                    first = e
                else:
                    print(f"warning: {type(s).__name__} did not close cleanly: {e}", file=sys.stderr)
        if first is not None:
            if exc is None:
                raise first
            # already leaving on an error or a signal: that one is what the user must see
            print(f"warning: a sink did not close cleanly: {first}", file=sys.stderr)
