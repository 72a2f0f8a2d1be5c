"""The Optuna side of a sweep: storage, sampler, pruner, and which configurations are done.

Storage: by default ``<sweep>/study.db`` (SQLite through Optuna's RDBStorage); ``--storage
postgresql://USER@HOST:PORT/DB`` lets several machines join one study. SQLite was measured against
Optuna's journal file (docs/lab.md): the journal is faster under contention, but only an RDB
storage has the heartbeat that fails a dead worker's trial, which RetryHeartbeatStaleTrialCallback
then hands to another worker -- on one machine as on many.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

import optuna

from common.errors import AppError, UsageError
from tracking.trial import open_rdb_or_journal

STORAGE_FILE = "study.db"
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "asha", "hyperband")
DONE = ("COMPLETE", "PRUNED")  # trial states that count as done; FAIL ones are retried or duplicates
MAX_RETRY = 3  # a trial whose worker died is re-run at most this often
OPEN_TRIES = 5
RECONNECT_S = 120  # how long a worker keeps retrying a storage that stopped answering


def heartbeat_s() -> int:
    """Seconds between a running trial's heartbeats; 2x this without one and the trial is stale."""
    return int(os.environ.get("IMGCLF_HEARTBEAT_S", "60"))  # tests shorten it


def storage_url(given: str, sweep_dir: Path) -> str:
    if not given:
        return f"sqlite:///{(sweep_dir / STORAGE_FILE).resolve()}"
    if given.startswith("journal:"):
        return f"journal:{Path(given[len('journal:') :]).resolve()}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(given)
    except ArgumentError:
        raise UsageError(
            f"--storage {given!r} is not a database URL; e.g. postgresql://USER@HOST:5432/DB, "
            f"sqlite:///PATH or journal:PATH"
        ) from None
    return given


def retry_callback(max_retry: int | None = MAX_RETRY):
    """Optuna's retry of a failed trial: a WAITING copy with the same values (renamed in Optuna 4.9)."""
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry)


def open_storage(url: str):
    """The study's storage, with heartbeats and the retry of stale trials where the storage has them."""

    kwargs = {}
    if not url.startswith("journal:"):
        beat = heartbeat_s()
        import inspect

        new = "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
        kwargs = {
            "heartbeat_interval": beat,
            "grace_period": 2 * beat,
            "heartbeat_stale_trial_callback" if new else "failed_trial_callback": retry_callback(),
        }
    for attempt in range(OPEN_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return open_rdb_or_journal(url, **kwargs)
        except Exception as e:  # noqa: BLE001 - a driver's or server's error: one line naming the URL
            if attempt == OPEN_TRIES - 1:
                raise AppError(f"cannot open the study storage {safe_url(url)}: {first_line(e)}") from None
            time.sleep(1.0)  # two workers creating the tables at once, or a server restarting: again


def safe_url(url: str) -> str:
    """The URL without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - journal:PATH
        return url


def first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


class LockedGridSampler(optuna.samplers.GridSampler):
    """GridSampler choosing each grid point under a lock: this process's parallel trials never take
    the same point (across processes a rare collision is caught as a duplicate, lab/trials.py)."""

    _lock = threading.Lock()

    def before_trial(self, study, trial) -> None:
        with self._lock:
            super().before_trial(study, trial)


def make_sampler(name: str, space):
    if name == "grid":
        if not space.is_grid:
            raise UsageError(
                f"--sampler grid needs lists of choices only; {space.source} has ranges "
                f"({', '.join(d.name for d in space.dims if not d.choices)}): use --sampler tpe or random"
            )
        return LockedGridSampler(space.grid())
    if name == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler()


def open_study(name: str, storage, sampler, pruner, url: str = "", direction: str = "maximize"):
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, pruner=pruner, direction=direction, load_if_exists=True
        )
    except Exception as e:  # noqa: BLE001
        raise AppError(f"cannot open study '{name}': {first_line(e)}") from None
    if study.direction.name.lower() != direction:  # load_if_exists keeps the stored direction
        raise UsageError(
            f"sweep '{name}' was started to {study.direction.name.lower()} its metric, this "
            f"--metric needs {direction}: use that sweep's --metric, or a new --name"
        )
    one_taker_of_waiting_trials(study, url)
    return study


def one_taker_of_waiting_trials(study, url: str) -> None:
    """Make taking a WAITING trial (a retry, an enqueued one) atomic on this machine.

    Optuna reads the trial's state and then marks it RUNNING; PostgreSQL locks the row between the
    two (SELECT ... FOR UPDATE), SQLite does not, so two threads or processes could both take it and
    run it twice. Here the step runs under a thread lock and, for a SQLite file, an flock beside it.
    """
    import fcntl

    lock = threading.Lock()
    path = Path(url[len("sqlite:///") :] + ".lock") if url.startswith("sqlite:///") else None
    take = study._pop_waiting_trial_id

    def locked_take():
        with lock:
            if path is None:
                return take()
            with open(path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
                return take()

    study._pop_waiting_trial_id = locked_take


def done_keys(study) -> set[str]:
    """Configurations with a result (finished or pruned)."""
    return {t.user_attrs.get("config_key") for t in study.get_trials(deepcopy=False) if t.state.name in DONE}


def waiting(study) -> int:
    return sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))


def requeue_failed(study) -> int:
    """Queue again each failed configuration that has no result and no retry yet (a run that crashed
    or was stopped is run again by the next start, as a re-run sweep always did); returns how many."""
    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get("config_key") for t in trials if t.state.name != "FAIL"}
    again = 0
    for t in trials:
        key = t.user_attrs.get("config_key")
        if t.state.name == "FAIL" and key and key not in taken and "duplicate_of" not in t.user_attrs:
            retry_callback(max_retry=None)(study, t)  # the user asked for it again: no limit
            taken.add(key)
            again += 1
    return again


def fail_stale(study) -> None:
    """Optuna's heartbeat check: a trial whose worker stopped beating is failed and handed to the retry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _storage_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    return (optuna.exceptions.StorageInternalError, SQLAlchemyError)


STORAGE_ERRORS = _storage_errors()


def from_storage(e: BaseException) -> bool:
    """Whether ``e`` is a storage error or was raised while one was handled (Optuna's own tell can
    fail that way when the server went away mid-trial)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, STORAGE_ERRORS):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def fail_and_retry(study, trial_ids) -> None:
    """This worker's trials left running when the storage failed: failed, and queued again."""
    for trial_id in list(trial_ids):
        frozen = study._storage.get_trial(trial_id)
        if frozen.state.name == "RUNNING" and study._storage.set_trial_state_values(
            trial_id, optuna.trial.TrialState.FAIL
        ):
            retry_callback(max_retry=None)(study, study._storage.get_trial(trial_id))
    trial_ids.clear()
