"""The end of a sweep: leaderboard (printed, leaderboard.md, .csv), overlay plots, Optuna's plots.

Results come from the study (each trial keeps its runs' results as a user attribute), so a sweep on
many machines ranks every machine's runs; the overlay plots draw the runs whose folders are here.
Pruned trials are listed under the table, not ranked: they did not run to the end.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path

import optuna

from common.fileio import write_atomic
from common.spelling import plural
from lab.trials import result_of
from resultsdb.leaderboard import DEFAULT_METRIC, RunResult, leaderboard, to_csv, to_markdown

STUDY_PLOTS = {  # file -> optuna.visualization.matplotlib function
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
    "intermediate_values.png": "plot_intermediate_values",
}


def trial_results(study: optuna.Study) -> tuple[list[RunResult], list[RunResult]]:
    """(runs of finished trials, runs of pruned trials), from every worker's trials."""
    finished, pruned = [], []
    for t in study.get_trials(deepcopy=False):
        if t.state.name in ("COMPLETE", "PRUNED"):
            runs = [result_of(a) for a in t.user_attrs.get("runs", []) if a]
            (finished if t.state.name == "COMPLETE" else pruned).extend(runs)
    return finished, pruned


def pruned_lines(pruned: list[RunResult]) -> list[str]:
    by_label: dict[str, list[RunResult]] = {}
    for r in pruned:
        by_label.setdefault(r.schedule, []).append(r)
    return [
        f"- {label}: pruned after {plural(len(runs), 'seed')}, at epoch {runs[-1].epochs} of seed {runs[-1].seed} "
        f"(best val acc {100 * max(r.best_val_acc for r in runs):.2f} %)"
        for label, runs in by_label.items()
    ]


def sweep_key(finished: list[RunResult], name: str) -> list[RunResult]:
    """The sweep's runs under one comparability key. A search varies settings the key includes (LR,
    weight decay...), but sweep.yaml holds every other setting equal, so they are compared as the
    sweep's configurations."""
    if len({r.key for r in finished}) <= 1:
        return finished
    return [dataclasses.replace(r, key=f"sweep '{name}' (settings in sweep.yaml)") for r in finished]


def report(
    study: optuna.Study, sweep_dir: Path, name: str, metric: str = DEFAULT_METRIC, prefix: str = ""
) -> list[RunResult]:
    """Write and print the leaderboard by ``metric`` (files ``<prefix>leaderboard.md``, ``.csv``) and,
    for the sweep itself (no prefix), the plots; returns the finished runs."""
    finished, pruned = trial_results(study)
    if not finished and not pruned:
        print("no trial has finished yet: no leaderboard")
        return []
    finished = sweep_key(finished, name)
    board = leaderboard(finished, metric)
    md = to_markdown(board, f"sweep '{name}'") if finished else f"### sweep '{name}'\n\nno finished trial\n"
    if pruned:
        md += "\nPruned (stopped early by the pruner, not ranked):\n" + "\n".join(pruned_lines(pruned)) + "\n"
    written = [f"{prefix}leaderboard.md", f"{prefix}leaderboard.csv"]
    write_atomic(md.encode(), sweep_dir / written[0])
    write_atomic(to_csv(board).encode(), sweep_dir / written[1])
    print(md)
    local = [r for r in finished if (r.folder / "metrics.csv").is_file()]
    if local and not prefix:
        from evaluation.sweep_plots import plot_sweep

        written += [p.name for p in plot_sweep(local, sweep_dir)]
    if not prefix:
        written += study_plots(study, sweep_dir)
    print(f"wrote {sweep_dir / written[0]}, {', '.join(written[1:])}")
    return finished


def varying_params(study: optuna.Study) -> set[str]:
    """The parameters that took more than one value among the study's trials."""
    values: dict[str, set] = {}
    for t in study.get_trials(deepcopy=False):
        for k, v in t.params.items():
            values.setdefault(k, set()).add(repr(v))
    return {k for k, vs in values.items() if len(vs) > 1}


def study_plots(study: optuna.Study, out_dir: Path) -> list[str]:
    """Optuna's own matplotlib plots, those the study has data for. Importances only where two or more
    parameters vary: one parameter has all of it by definition, and Optuna's fANOVA forest costs ~2 s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    done = []
    plots = dict(STUDY_PLOTS)
    if len(varying_params(study)) < 2:
        del plots["param_importances.png"]
    for file, fn in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning on every call
                ax = getattr(vis, fn)(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # too few trials or values for this plot yet
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        write_atomic(buf.getvalue(), out_dir / file)
        done.append(file)
    return done


def initial_weights_check(db: str, folders: list[Path]) -> str:
    """Whether the runs of each seed started from the same weights (hashes the trainer recorded)."""
    from resultsdb.server import is_url

    if db.lower() == "none" or not (is_url(db) or Path(db).is_file()):
        return "initial weights: not checked (no results database)"
    from resultsdb.db import ResultsDB

    with ResultsDB(db) as conn:
        rows = [
            r
            for f in folders
            for r in conn.query("SELECT seed, init_weights FROM runs WHERE run_dir = ?", [str(f.resolve())])
        ]
    by_seed: dict[int, set] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], set()).add(r["init_weights"])
    bad = [seed for seed, hashes in by_seed.items() if len(hashes) > 1]
    if bad:
        return f"warning: runs of {plural(len(bad), 'seed', count=False)} {bad} started from DIFFERENT initial weights"
    return (
        "initial weights: identical across schedules for each seed ("
        + ", ".join(f"seed {s}: {next(iter(h))}" for s, h in sorted(by_seed.items()))
        + ")"
    )
