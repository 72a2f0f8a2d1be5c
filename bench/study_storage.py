"""Which local storage for a sweep's study: Optuna's journal file or SQLite, under parallel writers.

4 processes share one study; each asks 15 trials and reports 10 intermediate values (with a pruning
check) per trial, as a sweep's parallel runs do once per epoch. Prints the wall time and errors.

    python bench/study_storage.py [--processes 4] [--trials 15] [--reports 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
import warnings

import optuna


def storage(kind: str, folder: str):
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(f"{folder}/study.log"))
    return optuna.storages.RDBStorage(f"sqlite:///{folder}/study.db", engine_kwargs={"connect_args": {"timeout": 60}})


def work(kind: str, folder: str, trials: int, reports: int) -> int:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="s", storage=storage(kind, folder))
    errors = 0
    for _ in range(trials):
        trial = study.ask()
        try:
            x = trial.suggest_float("x", 0, 1)
            for step in range(reports):
                trial.report(x * step, step)
                trial.should_prune()
            study.tell(trial, x)
        except Exception as e:  # noqa: BLE001 - counted: the point of the measurement
            errors += 1
            print(kind, type(e).__name__, e)
    return errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--trials", type=int, default=15, help="per process")
    p.add_argument("--reports", type=int, default=10, help="intermediate values per trial")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for kind in ("journal", "sqlite"):
        folder = tempfile.mkdtemp(prefix=f"study-{kind}-")
        optuna.create_study(study_name="s", storage=storage(kind, folder))
        t0 = time.perf_counter()
        with mp.Pool(args.processes) as pool:
            errors = sum(pool.starmap(work, [(kind, folder, args.trials, args.reports)] * args.processes))
        seconds = time.perf_counter() - t0
        n = len(optuna.load_study(study_name="s", storage=storage(kind, folder)).trials)
        print(
            f"{kind}: {seconds:.1f} s for {n} trials x {args.reports} reports from {args.processes} processes, "
            f"{errors} errors"
        )
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
