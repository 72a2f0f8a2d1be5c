"""The objective of a sweep's study: one configuration, trained on every seed as ordinary train.py runs.

Each run is a child process in its own session (a Ctrl-C in the terminal reaches only the sweep,
which forwards exactly one SIGINT to every running child: each finishes its step, saves last.pt and
exits resumable), in its own folder ``<sweep>/<label>_s<seed>``, recorded in the results database.
The trial's value is the mean over seeds of the run's score (test accuracy of best.pt, validation
accuracy without a test split). A run the trial pruned exits with PRUNED_EXIT and the trial is
pruned; the seeds after it are not run.

A configuration is trained once: a trial whose configuration an earlier trial (not failed) already
has -- two workers racing for the last grid point -- waits for that one and is dropped as a
duplicate; a finished run folder whose config.yaml agrees is reused, not retrained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from common.prefork import FreshProcesses, Preforker
from common.runlock import EXIT_LOCKED, holder_pid, is_locked, says_locked
from lab.identity import run_state
from lab.progress import Progress
from lab.space import Space, config_key, run_label, to_flags
from lab.study import fail_stale, retry_callback
from resultsdb.leaderboard import DEFAULT_METRIC, RunResult, read_run
from tracking.trial import ENV, PRUNED_EXIT, mean_over_seeds, trial_step

ROOT = Path(__file__).resolve().parents[1]
TWIN_POLL_S = 2.0  # how often a duplicate trial looks whether its twin has finished


class Duplicate(Exception):
    """An earlier trial has this configuration (marked failed, with user attr ``duplicate_of``)."""


class RunFailed(Exception):
    """A run exited with an error; the trial fails, the sweep goes on and reports it at the end."""


class Stopped(Exception):
    """Ctrl-C / SIGTERM: the runs saved last.pt; the trial is queued again for the next start."""


@dataclass
class Setup:
    space: Space
    seeds: list[int]
    train_args: list[str]
    sweep_dir: Path
    results_db: str
    threads: int  # per run; 0: train.py decides
    storage_url: str
    study_name: str
    pruner: str
    epochs: int
    settings: dict[str, Any]  # the sweep's settings (sweep.yaml): what each run's config.yaml must agree with
    default_scheduler: str
    metric: str = DEFAULT_METRIC  # what a trial's value is (resultsdb.leaderboard.METRICS)


def scored_metric(r: RunResult, metric: str) -> str:
    """``metric``, or its validation counterpart for a run without a test split."""
    if r.sample(metric).value is None and metric.startswith("test_"):
        return "val_" + metric.removeprefix("test_")
    return metric


def score(r: RunResult, metric: str) -> float:
    return r.sample(scored_metric(r, metric)).value


def describe(r: RunResult, metric: str) -> str:
    return f"{scored_metric(r, metric).replace('_', ' ')} {score(r, metric):.4f}"  # 'test acc 0.9806'


def _last_line(path: Path, tail_bytes: int = 4096) -> str:
    """A log's last line, read from its end (a run's train.log holds every epoch's output)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            return f.read().decode(errors="replace").rstrip().rsplit("\n", 1)[-1]
    except OSError:
        return ""


def result_attr(r: RunResult) -> dict[str, Any]:
    """A run's result as a trial user attribute: every worker's leaderboard reads it from the study."""
    return {**dataclasses.asdict(r), "folder": str(r.folder)}


def result_of(attr: dict[str, Any]) -> RunResult:
    return RunResult(**{**attr, "folder": Path(attr["folder"])})


class Lab:
    """Runs trials; ``stop(signum)`` forwards a signal to every running run."""

    def __init__(self, setup: Setup, progress: Progress, launch: Preforker | FreshProcesses):
        self.s = setup
        self.progress = progress
        self.launch = launch  # starts each train.py (common/prefork.py: without re-importing torch)
        self.procs: set = set()
        self.signalled: set = set()  # the runs a signal was forwarded to
        # Re-entrant: the signal handler runs in the main thread, which may be inside a `with self.lock`.
        self.lock = threading.RLock()
        self.signum: int | None = None
        self.failed: list[str] = []
        self.started: set[int] = set()  # ids of this process's trials until Optuna recorded their end

    # --- signals ---------------------------------------------------------------------------------
    def handle(self, signum: int, frame) -> None:
        with self.lock:
            first = self.signum is None
            self.signum = signum  # no new run starts; the trials going stop with their runs
            procs = list(self.procs)
            self.signalled.update(procs)
        for proc in procs:
            self._forward(proc, signum)
        if first:
            os.write(
                2,
                f"\n{signal.Signals(signum).name}: stopping {len(procs)} running runs (each saves last.pt); "
                f"press Ctrl-C again to make them quit at once\n".encode(),
            )

    @staticmethod
    def _forward(proc, signum: int) -> None:
        try:
            proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
        except ProcessLookupError:
            pass

    # --- the objective ---------------------------------------------------------------------------
    def objective(self, trial: optuna.Trial) -> float:
        self.started.add(trial._trial_id)
        return self._objective(trial)

    def told(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna's callback once a trial's end is stored: until then a lost storage (a server
        restarting under the tell) leaves it RUNNING, and this worker fails and re-queues it itself
        instead of waiting for the heartbeat to call it stale."""
        self.started.discard(trial._trial_id)

    def _objective(self, trial: optuna.Trial) -> float:
        params = self.s.space.suggest(trial, self.s.default_scheduler)
        key, label = config_key(params), run_label(params, self.s.default_scheduler)
        trial.set_user_attr("config_key", key)
        trial.set_user_attr("label", label)
        if self.signum is not None:  # a trial begun as the sweep was stopping: queued for the next start
            self._requeue_and_stop(trial, label)
        self._drop_if_duplicate(trial, key)
        results: list[RunResult] = []
        for k, seed in enumerate(self.s.seeds):
            name = f"{label}_s{seed}"
            try:
                self._one_seed(trial, params, label, k, seed, results)
            finally:
                self.progress.ended(name)  # a no-op once counted as done; else (an error) no longer running
        return statistics.fmean(score(r, self.s.metric) for r in results)

    def _one_seed(
        self, trial: optuna.Trial, params: dict, label: str, k: int, seed: int, results: list[RunResult]
    ) -> None:
        """Run (or reuse) seed ``seed`` of the configuration; appends its result to ``results``."""
        name = f"{label}_s{seed}"
        folder = self.s.sweep_dir / name
        state = run_state(folder, {**self.s.settings, **params, "seed": seed})
        if state == "skip (finished)":
            self._report_finished(trial, k, results, read_run(label, seed, folder))
        else:
            self.progress.started(name, folder)
            rc = self._train(trial, folder, params, seed, k, results)
            while rc == EXIT_LOCKED and self._waited_for_writer(folder, name):
                if run_state(folder, {**self.s.settings, **params, "seed": seed}) == "skip (finished)":
                    self._report_finished(trial, k, results, read_run(label, seed, folder))  # it finished it
                    rc = 0
                    break
                rc = self._train(trial, folder, params, seed, k, results)
            if rc == PRUNED_EXIT:
                r = read_run(label, seed, folder)
                results.append(r)
                trial.set_user_attr("runs", [result_attr(x) for x in results])
                print(self.progress.finished(name, f"pruned at epoch {r.epochs}", True), flush=True)
                self.progress.drop(len(self.s.seeds) - k - 1)
                raise optuna.TrialPruned()
            if rc != 0 or self.signum is not None:
                self._on_stopped_or_failed(trial, name, folder, rc)
        r = read_run(label, seed, folder)
        results.append(r)
        trial.set_user_attr("runs", [result_attr(x) for x in results])
        print(self.progress.finished(name, describe(r, self.s.metric), trained=state != "skip (finished)"), flush=True)

    def _waited_for_writer(self, folder: Path, name: str) -> bool:
        """After train.py found the run locked: wait while another process (a sweep that does not share
        this study, a train.py by hand) writes it. False when exit 2 was another error."""
        pid = holder_pid(folder)
        # The child's refusal line also covers a writer that let go right after refusing it.
        if pid is None and not says_locked(_last_line(folder / "train.log")):
            return False
        if pid is not None:
            who = f"process {pid}" if pid > 0 else "another process"
            print(f"{name}: being written by {who} (another sweep or train.py); waiting for it", flush=True)
        while is_locked(folder) and self.signum is None:
            time.sleep(TWIN_POLL_S)
        return self.signum is None

    def _drop_if_duplicate(self, trial: optuna.Trial, key: str) -> None:
        """Raise Duplicate when an earlier trial (not failed) has this configuration. While that one
        is running elsewhere, wait: it finishes, or its worker died and Optuna's heartbeat fails it
        (its retry then takes the configuration over)."""
        waited_on = None
        while True:
            trials = trial.study.get_trials(deepcopy=False)
            if waited_on is not None and trials[waited_on].state.name == "FAIL":
                twin = trials[waited_on]  # stale: its queued retry resumes the run
            else:
                twin = next(
                    (
                        t
                        for t in trials
                        if t.number < trial.number and t.state.name != "FAIL" and t.user_attrs.get("config_key") == key
                    ),
                    None,
                )
            if twin is None:
                return
            if twin.state.name != "RUNNING" or self.signum is not None:
                trial.set_user_attr("duplicate_of", twin.number)
                raise Duplicate(f"trial {trial.number} has the configuration of trial {twin.number}")
            waited_on = twin.number
            time.sleep(TWIN_POLL_S)
            fail_stale(trial.study)  # a dead worker's trial fails (and is retried)

    def _report_finished(self, trial: optuna.Trial, k: int, earlier: list[RunResult], r: RunResult) -> None:
        """A reused run's epochs, reported as its live run would have (mean over the seeds so far)."""
        prior = [c.curve(self.s.metric) for c in earlier]
        for e, v in enumerate(r.curve(self.s.metric), 1):
            trial.report(mean_over_seeds(prior, e, v), trial_step(k, self.s.epochs, e))

    def _train(
        self, trial: optuna.Trial, folder: Path, params: dict, seed: int, k: int, earlier: list[RunResult]
    ) -> int:
        s = self.s
        argv = [
            str(ROOT / "train.py"),
            *s.train_args,
            *to_flags(params),
            "--seed",
            str(seed),
            "--checkpoint_dir",
            str(s.sweep_dir),
            "--run_name",
            folder.name,
            "--resume",
            "auto",
            "--results_db",
            s.results_db,
        ]
        if s.threads:
            argv += ["--threads", str(s.threads)]
        spec = {
            "storage": s.storage_url,
            "study": s.study_name,
            "trial_id": trial._trial_id,
            "pruner": s.pruner,
            "max_resource": s.epochs * len(s.seeds),
            "step0": trial_step(k, s.epochs, 1),
            "prior": [r.curve(s.metric) for r in earlier],
            "curve": "val_loss" if s.metric.endswith("_loss") else "val_acc",
        }
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "train.log", "ab") as log:
            log.write(f"\n$ {' '.join([sys.executable, *argv])}\n".encode())
        return self._run(argv, spec, folder / "train.log")

    def _run(self, argv: list[str], spec: dict[str, Any], log: Path) -> int:
        """Start one train.py and wait for its exit status; a signal to the sweep reaches it too."""
        if self.signum is not None:
            return 128 + self.signum
        # Started outside the lock: a start waits (for the helper's imports, then its answer), and a
        # signal meanwhile must not wait for it. One that came during the start is forwarded here.
        proc = self._start(argv, spec, log)
        with self.lock:
            self.procs.add(proc)
            late = self.signum if proc not in self.signalled else None
            if late is not None:
                self.signalled.add(proc)
        if late is not None:
            self._forward(proc, late)
        try:
            return proc.wait()
        finally:
            with self.lock:
                self.procs.discard(proc)
                self.signalled.discard(proc)

    def _start(self, argv: list[str], spec: dict[str, Any], log: Path):
        """Start one train.py; the run stops (last.pt saved) if the process that started it dies."""
        for _ in range(2):
            spec["parent"] = self.launch.parent_pid()
            env = {**os.environ, "PYTHONUNBUFFERED": "1", ENV: json.dumps(spec)}
            try:
                return self.launch.start(argv, env, log)
            except OSError as e:
                if isinstance(self.launch, FreshProcesses):
                    raise
                print(f"warning: {e}; the runs start as fresh processes from now on", file=sys.stderr, flush=True)
                self.launch = FreshProcesses()
        raise AssertionError("unreachable")

    def _requeue_and_stop(self, trial: optuna.Trial, name: str) -> None:
        """Queue the trial again as Optuna's retry of a stale trial would (same values, so the same run
        folders, resumed from last.pt), and end this one."""
        trial.study.stop()
        retry_callback(max_retry=None)(trial.study, trial.study._storage.get_trial(trial._trial_id))
        raise Stopped(name)

    def _on_stopped_or_failed(self, trial: optuna.Trial, name: str, folder: Path, rc: int) -> None:
        if rc in (0, 130, 143) or self.signum is not None:
            print(f"{name}: stopped (resumable)", flush=True)
            self._requeue_and_stop(trial, name)
        lines = [ln for ln in (folder / "train.log").read_text(errors="replace").splitlines() if ln.strip()]
        print(f"{name}: FAILED (exit {rc}): {lines[-1] if lines else 'no output'}", flush=True)
        self.failed.append(name)
        raise RunFailed(name)
