"""A sweep trial's side of train.py: report the validation metric every epoch, stop when pruned.

``sweep.py`` starts each run with ``IMGCLF_TRIAL`` set (JSON: the study's storage URL and name, the
trial id, the pruner, the step of this seed's first epoch and the earlier seeds' per-epoch values).
The value reported at epoch ``e`` of the ``k``-th seed is the mean validation accuracy (``val_loss``
for a sweep ranked by a loss: spec ``curve``) at epoch ``e``
over seeds 0..k, at step ``k * epochs + e - 1``: trials are compared on the same footing (the same
seeds done) and a pruning decision uses the mean over the seeds done. A pruned run saves ``last.pt``
at that epoch boundary, is recorded as ``pruned`` and exits with :data:`PRUNED_EXIT`.

The storage is a convenience here as the results database is: when it cannot be reached the run
warns once and trains on unpruned; the sweep records the result when the run ends.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import threading
import time
from typing import Any

from common.errors import AppError
from tracking.sink import RunInfo, Sink

ENV = "IMGCLF_TRIAL"
PRUNED_EXIT = 3  # train.py's exit status for a run its trial pruned (not an error, not a signal)
PARENT_POLL_S = 1.0  # how soon a run notices that its sweep process died


def trial_step(seed_index: int, epochs: int, epoch: int) -> int:
    """The step a trial reports ``epoch`` (1-based) of its ``seed_index``-th seed at."""
    return seed_index * epochs + epoch - 1


def mean_over_seeds(prior: list[list[float]], epoch: int, value: float) -> float:
    """What a trial reports at ``epoch`` of a seed: the mean of ``value`` and the earlier seeds'
    per-epoch curves at that epoch (a seed that stopped early counts with its last epoch's value)."""
    earlier = [curve[min(epoch, len(curve)) - 1] for curve in prior if curve]
    return statistics.fmean([*earlier, value])


class Pruned(AppError):
    """The run's trial was pruned: last.pt is saved; the sweep marks the trial pruned."""

    label = "pruned"
    exit_code = PRUNED_EXIT
    run_status = "pruned"  # the status every sink ends the run with (tracking.sink.status_of)


def make_pruner(name: str, max_resource: int):
    """An Optuna pruner by its sweep.py name (``none`` never prunes)."""
    import optuna

    if name == "median":  # a trial is judged once it has 1 epoch and 2 other trials to compare with
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_resource), reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_rdb_or_journal(url: str, **rdb_kwargs: Any):
    """The Optuna storage at ``url``: ``journal:PATH`` is a journal file, anything else SQLAlchemy's."""
    import optuna

    from resultsdb.server import with_driver

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:") :]))
    engine = {"pool_pre_ping": True}  # a server restarted since the last use: reconnect, do not fail
    if url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": 60}  # parallel runs' reports wait for the write lock
    return optuna.storages.RDBStorage(with_driver(url), engine_kwargs=engine, **rdb_kwargs)


class TrialReporter(Sink):
    """A sink created from ``IMGCLF_TRIAL`` by :func:`from_env`. After an epoch's checkpoint is saved
    the trainer asks every sink for a ``stop_request``: a pruned trial's run ends there."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.trial = None
        self.run_dir = None
        self.pruned_at: int | None = None
        self.failed = False
        self._watch_parent(spec.get("parent"))

    def _watch_parent(self, parent: int | None) -> None:
        """A run whose sweep process died (SIGKILL, a lost machine) stops as on SIGTERM: last.pt
        saved, resumable by whichever worker retries the trial."""
        if not parent:
            return

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_S)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True, name="sweep-parent-watch").start()

    def _open(self):
        if self.trial is None and not self.failed:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.ERROR)
            s = self.spec
            study = optuna.load_study(
                study_name=s["study"],
                storage=open_rdb_or_journal(s["storage"]),
                pruner=make_pruner(s["pruner"], s["max_resource"]),
            )
            self.trial = optuna.trial.Trial(study, s["trial_id"])
        return self.trial

    def _value(self, epoch: int, value: float) -> float:
        return mean_over_seeds(self.spec.get("prior", []), epoch, value)

    def _report(self, row: dict[str, Any], check: bool) -> None:
        try:
            trial = self._open()
            if trial is None:
                return
            value = self._value(row["epoch"], row[self.spec.get("curve", "val_acc")])
            trial.report(value, self.spec["step0"] + row["epoch"] - 1)
            if check and trial.should_prune():
                self.pruned_at = row["epoch"]
        except Exception as e:  # noqa: BLE001 - the study is a convenience: never a reason to lose the run
            self.failed = True
            print(
                f"warning: study storage: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; "
                f"this run goes on without pruning",
                file=sys.stderr,
            )

    def start(self, run: RunInfo) -> None:
        """A resumed run reports its earlier epochs again (a retried trial starts with none)."""
        self.run_dir = run.run_dir
        for row in run.history:
            self._report(row, check=False)

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        self._report(row, check=True)

    def stop_request(self) -> Pruned | None:
        """The error to raise once this epoch's last.pt is saved, if the trial was pruned."""
        if self.pruned_at is None:
            return None
        return Pruned(
            f"trial pruned at epoch {self.pruned_at} (its mean {self.spec.get('curve', 'val_acc')} over the seeds "
            f"done is behind the other trials'); saved {self.run_dir / 'last.pt'}"
        )


def from_env() -> TrialReporter | None:
    raw = os.environ.get(ENV)
    return TrialReporter(json.loads(raw)) if raw else None
