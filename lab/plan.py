"""A sweep from start to end: what it will run (``--dry_run``), running it, and the report."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path

import optuna

from common import prefork
from common.errors import AppError
from common.spelling import plural
from lab import study as study_mod
from lab.identity import run_state
from lab.progress import Progress
from lab.space import config_key, run_label
from lab.trials import Duplicate, Lab, RunFailed, Setup, Stopped
from resultsdb.db import DB_FILE
from resultsdb.leaderboard import METRICS
from tracking.trial import make_pruner

CONFIRM_TOP = 3  # configurations --confirm_seeds runs again


class Plan:
    def __init__(
        self, args, cfg, train_args, space, sweep_dir: Path, settings: dict, sampler: str, pruner: str, trials: int
    ):
        self.args, self.cfg, self.train_args, self.space = args, cfg, train_args, space
        self.sweep_dir, self.settings, self.sampler, self.pruner, self.trials = (
            sweep_dir,
            settings,
            sampler,
            pruner,
            trials,
        )
        self.seeds = list(dict.fromkeys(args.seeds))
        self.results_db = cfg.results_db or str(Path(cfg.checkpoint_dir) / DB_FILE)
        self.storage_url = study_mod.storage_url(args.storage, sweep_dir)
        self.metric = args.metric
        self.direction = "maximize" if METRICS[args.metric][1] else "minimize"
        self._launch: prefork.Preforker | prefork.FreshProcesses | None = None
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep prints its own lines

    # --- what there is to do ---------------------------------------------------------------------
    def grid_configs(self) -> list[dict]:
        """The grid's configurations, as the trials will see them (a schedule's hyperparameter only
        where that schedule takes it)."""
        if not self.space.is_grid:
            return []
        names = self.space.names()
        out = {}
        for values in itertools.product(*(self.space.grid()[n] for n in names)):
            params = self.space.suggest(optuna.trial.FixedTrial(dict(zip(names, values))), self.cfg.scheduler)
            out.setdefault(config_key(params), params)
        return list(out.values())

    def existing_study(self):
        """The study if it exists already (read only: nothing is created by a dry run)."""
        if self.storage_url.startswith("sqlite:///") and not Path(self.storage_url[len("sqlite:///") :]).is_file():
            return None
        try:
            return optuna.load_study(study_name=self.args.name, storage=study_mod.open_storage(self.storage_url))
        except KeyError:
            return None

    def expected(self, params: dict, seed: int) -> dict:
        return {**self.settings, **params, "seed": seed}

    def dry_run(self) -> int:
        study = self.existing_study()
        trials = study.get_trials(deepcopy=False) if study is not None else []
        state_of = {t.user_attrs.get("config_key"): t.state.name for t in trials}
        configs = (
            self.grid_configs()
            if self.sampler == "grid"
            else [t.params for t in trials if t.state.name in study_mod.DONE + ("WAITING", "RUNNING")]
        )
        counts: dict[str, int] = {}
        for params in configs:
            label = run_label(params, self.cfg.scheduler)
            for seed in self.seeds:
                folder = self.sweep_dir / f"{label}_s{seed}"
                state = run_state(folder, self.expected(params, seed))
                if state_of.get(config_key(params)) == "PRUNED" and state != "skip (finished)":
                    state = "skip (pruned)"
                counts[state] = counts.get(state, 0) + 1
                print(f"{state:<16} {folder.name}")
        new = self.trials - sum(1 for t in trials if t.state.name in study_mod.DONE) if self.sampler != "grid" else 0
        if new > 0:
            print(
                f"{'run':<16} {new} new trials sampled by {self.sampler}, each on seeds "
                f"{' '.join(map(str, self.seeds))}"
            )
        print(
            f"dry run of sweep '{self.args.name}' in {self.sweep_dir}: "
            + ", ".join(f"{s}: {n}" for s, n in counts.items())
            + ("" if counts else "nothing listed")
            + "; nothing trained"
        )
        return 0

    # --- running it ------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self._launch is not None:
                self._launch.close()

    def _run(self) -> int:
        from lab.report import initial_weights_check, report

        args, cfg = self.args, self.cfg
        storage = study_mod.open_storage(self.storage_url)
        study = study_mod.open_study(
            args.name,
            storage,
            study_mod.make_sampler(self.sampler, self.space),
            make_pruner(self.pruner, cfg.epochs * len(self.seeds)),
            self.storage_url,
            self.direction,
        )
        grid = {config_key(p) for p in self.grid_configs()} if self.sampler == "grid" else None
        what = (
            plural(self.trials, "schedule")
            if self.space.names() == ["scheduler"] and grid is not None
            else f"{plural(self.trials, 'configuration')} ({self.sampler}, pruner {self.pruner})"
        )
        lab = self.study_run(study, args.name, what, self.seeds, self.trials, grid, self.pruner)
        if lab.signum is not None:
            print("sweep stopped: the runs that were going saved last.pt. Run the same command again to continue.")
            return 128 + lab.signum
        finished = report(study, self.sweep_dir, args.name, self.metric)
        print(initial_weights_check(self.results_db, [r.folder for r in finished]))
        failed = lab.failed
        if args.confirm_seeds and finished:
            lab = self.confirm(storage, study)
            if lab.signum is not None:
                return 128 + lab.signum
            failed += lab.failed
        if failed:
            print(f"{plural(len(failed), 'run')} failed: {', '.join(failed)} (see train.log in their folders)")
            return 1
        return 0

    def study_run(
        self, study, name: str, what: str, seeds: list[int], trials: int, grid: set | None, pruner: str
    ) -> Lab:
        """Run ``study``'s trials (each on ``seeds``) until ``trials`` are done; the Lab says how it ended."""
        cfg = self.cfg
        study_mod.fail_stale(study)  # a dead worker's trials: failed and queued again by Optuna
        study_mod.requeue_failed(study)
        left = max(0, trials - self.done(study, grid))
        from sweep import jobs_and_threads

        jobs, threads = jobs_and_threads(cfg.device, left * len(seeds), self.args.jobs)
        if cfg.threads:
            threads = 0  # the user's --threads (in the train.py flags) wins
        runs_done = sum(
            len(t.user_attrs.get("runs", []))
            for t in study.get_trials(deepcopy=False)
            if t.state.name in study_mod.DONE and (grid is None or t.user_attrs.get("config_key") in grid)
        )
        each = f", {plural(threads, 'thread')} each" if threads else ""
        print(
            f"sweep '{name}': {what} x {plural(len(seeds), 'seed')} = {plural(trials * len(seeds), 'run')} in "
            f"{self.sweep_dir}; {runs_done} already finished, {left * len(seeds)} to run, {jobs} at a time"
            f"{each}; study {study_mod.safe_url(self.storage_url)}",
            flush=True,
        )
        setup = Setup(
            self.space,
            seeds,
            self.train_args,
            self.sweep_dir,
            self.results_db,
            threads,
            self.storage_url,
            name,
            pruner,
            cfg.epochs,
            self.settings,
            cfg.scheduler,
            self.metric,
        )
        with Progress(
            self.sweep_dir / "progress.txt",
            f"sweep '{name}'",
            runs_done + left * len(seeds),
            runs_done,
            jobs,
            cfg.epochs,
        ) as progress:
            lab = Lab(setup, progress, self.launcher() if left else prefork.FreshProcesses())
            self.optimize(study, lab, grid, jobs, trials)
        return lab

    def launcher(self) -> prefork.Preforker | prefork.FreshProcesses:
        """One launcher for the sweep and its confirmation (closed by :meth:`run`)."""
        if self._launch is None:
            self._launch = prefork.launcher()
        return self._launch

    def confirm(self, storage, study) -> Lab:
        """--confirm_seeds K: the top 3 configurations again on seeds 0..K-1 (runs the search already
        has are reused), ranked on their own: ``confirm_leaderboard.md``/``.csv``."""
        from lab.report import report

        sign = -1 if self.direction == "maximize" else 1
        top = sorted(
            (t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"), key=lambda t: sign * t.value
        )[:CONFIRM_TOP]
        name = f"{self.args.name}-confirm"
        confirm = study_mod.open_study(
            name, storage, optuna.samplers.RandomSampler(), make_pruner("none", 1), self.storage_url, self.direction
        )
        for t in top:
            confirm.enqueue_trial(t.params, skip_if_exists=True)  # the exact values: no sampling happens
        seeds = list(range(self.args.confirm_seeds))
        keys = {t.user_attrs["config_key"] for t in top}
        lab = self.study_run(
            confirm, name, f"the top {plural(len(top), 'configuration')}", seeds, len(top), keys, "none"
        )
        if lab.signum is None:
            report(confirm, self.sweep_dir, name, self.metric, prefix="confirm_")
        return lab

    def done(self, study, grid: set | None) -> int:
        keys = study_mod.done_keys(study)
        return len(keys & grid) if grid is not None else len(keys)

    def optimize(self, study, lab: Lab, grid: set | None, jobs: int, trials: int) -> None:
        """Trials until ``trials`` configurations are done (by any worker), a signal, or no progress.

        The storage failing (a database server restarting) is retried for RECONNECT_S: the trials this
        process had going are failed and queued again (their finished runs are reused, not retrained),
        and the work goes on; past that, one line says how to continue."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, lab.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        callback = optuna.study.MaxTrialsCallback(
            trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        )
        lost_since = None
        try:
            while lab.signum is None:
                try:
                    if lost_since is not None:
                        study_mod.fail_and_retry(study, lab.started)
                        lost_since = None
                    before = self.done(study, grid)
                    if before >= trials:
                        break
                    study.optimize(
                        lab.objective,
                        n_trials=trials - before,
                        n_jobs=jobs,
                        catch=(Duplicate, RunFailed),
                        callbacks=[callback, lab.told],
                    )
                    if self.done(study, grid) == before and not study_mod.waiting(study):
                        break  # every trial failed or was a duplicate: the report says which
                except Exception as e:  # noqa: BLE001 - a storage error, or one raised while handling it
                    if not study_mod.from_storage(e):
                        raise
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > study_mod.RECONNECT_S:
                        raise AppError(
                            f"lost the study storage {study_mod.safe_url(self.storage_url)} for "
                            f"{study_mod.RECONNECT_S} s ({study_mod.first_line(e)}); finished runs are "
                            f"kept in their folders: run the same command again"
                        ) from None
                    print(f"warning: study storage: {study_mod.first_line(e)}; retrying", flush=True)
                    time.sleep(2.0)
        except Stopped:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
