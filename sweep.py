"""Train one model under several LR schedules (x seeds) and rank them: the scheduler lab.

Every run gets the same data, model, epochs and train.py flags; the seed fixes the initial weights,
so the runs of a seed start from identical weights whatever their schedule (checked at the end
against the results database). Runs go N at a time, each a normal train.py run in
<checkpoint_dir>/<name>/<schedule>_s<seed>/ (log: train.log there), recorded in the database.

Examples:
    python sweep.py --schedulers step plateau cosine onecycle A0_021 -- --epochs 10
    python sweep.py --schedulers cosine onecycle --seeds 0 1 2 --jobs 2 --name fmnist -- --dataset fashion_mnist
    python sweep.py --all_presets --seeds 0 1 --name presets -- --epochs 10   # the 35 presets A0_001 ... A0_035

Re-running the same command skips finished runs and resumes interrupted ones (--resume auto).
Ctrl-C stops every job after its current step, each resumable. At the end: a leaderboard (printed,
and <name>/leaderboard.md, .csv) and overlay plots <name>/lr.png and <name>/val_acc.png.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from settings.config import parse_args
from common.cli import ArgParser, cli_parser
from common.errors import UsageError, run_cli
from common.fileio import write_atomic
from common.run_files import read_summary, run_is_finished

ROOT = Path(__file__).resolve().parent
SET_BY_SWEEP = ("scheduler", "seed", "run_name", "resume")  # train.py flags the sweep sets per run


def build_parser() -> ArgParser:
    p = cli_parser(__doc__, usage="python sweep.py --schedulers S [S ...] [--all_presets] "
                                             "[--seeds N [N ...]] [--jobs N] [--name NAME] -- [train.py flags]")
    p.add_argument("--schedulers", nargs="+", default=[], metavar="S", help="schedule names or preset ids")
    p.add_argument("--all_presets", action="store_true", help="add the 35 presets A0_001 ... A0_035")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="N", help="(default: 0)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="runs at a time (default: 1 on a GPU; on a CPU the free cores, threads split between jobs)")
    p.add_argument("--name", default="sweep", help="the sweep's folder under --checkpoint_dir (default: sweep)")
    return p


def schedule_list(names: Sequence[str], all_presets: bool) -> list[str]:
    out = list(names)
    if all_presets:
        from schedulers.presets import PRESETS
        out += list(PRESETS)
    if not out:
        raise UsageError("give --schedulers NAME ... and/or --all_presets")
    return list(dict.fromkeys(out))  # order kept, duplicates dropped


def jobs_and_threads(device: str, runs: int, jobs: int) -> tuple[int, int]:
    """(parallel jobs, threads per job; 0 = train.py decides). ``jobs`` 0: automatic."""
    import torch
    from runtime.runtime import default_threads
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return jobs or 1, 0  # one GPU: parallel jobs would only queue on it
    cores = default_threads()  # the cores not busy with other work right now
    jobs = jobs or max(1, min(cores, runs))
    return jobs, max(1, cores // jobs)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own_args, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args, extra = build_parser().parse_known_args(own_args)
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (train.py flags go after `--`: "
                         f"python sweep.py --schedulers ... -- {' '.join(extra)})")
    if args.jobs < 0 or not args.name or "/" in args.name:
        raise UsageError("--jobs must be >= 0 (0: automatic) and --name a plain folder name")
    cfg, script = parse_args(train_args)
    clash = [k for k in SET_BY_SWEEP if k in script["cli_keys"]]
    if clash:
        raise UsageError(f"the sweep sets --{', --'.join(clash)} for each run; leave {'it' if len(clash) == 1 else 'them'} out of the train.py flags")
    schedules = schedule_list(args.schedulers, args.all_presets)
    from settings.validate import check_config
    for s in schedules:  # every run's exact command line is checked before the first one starts
        check_config(parse_args([*train_args, "--scheduler", s])[0])

    from resultsdb.db import DB_FILE
    from resultsdb.jobs import Job, JobRunner
    sweep_dir = Path(cfg.checkpoint_dir) / args.name
    db = cfg.results_db or str(Path(cfg.checkpoint_dir) / DB_FILE)
    runs = [(s, seed) for seed in args.seeds for s in schedules]
    jobs_n, threads = jobs_and_threads(cfg.device, len(runs), args.jobs)
    if "threads" in script["cli_keys"] or cfg.threads:
        threads = 0  # the user's --threads (in the train.py flags) wins
    todo, done = [], []
    for s, seed in runs:
        folder = sweep_dir / f"{s}_s{seed}"
        if run_is_finished(folder):  # a cut or empty summary.json is not finished: --resume auto completes it
            done.append(folder.name)
            continue
        cmd = [sys.executable, str(ROOT / "train.py"), *train_args, "--scheduler", s, "--seed", str(seed),
               "--checkpoint_dir", str(sweep_dir), "--run_name", folder.name, "--resume", "auto",
               "--results_db", db]
        if threads:
            cmd += ["--threads", str(threads)]
        todo.append(Job(folder.name, cmd, folder / "train.log", {"PYTHONUNBUFFERED": "1"}))
    print(f"sweep '{args.name}': {len(schedules)} schedules x {len(args.seeds)} seeds = {len(runs)} runs in "
          f"{sweep_dir}; {len(done)} already finished, {len(todo)} to run, {jobs_n} at a time"
          f"{f', {threads} threads each' if threads else ''}", flush=True)

    counter = {"n": len(done)}
    failed = []

    def on_done(job: Job) -> None:
        counter["n"] += 1
        print(f"[{counter['n']}/{len(runs)}] {progress_line(sweep_dir / job.name, job)}", flush=True)
        if job.returncode not in (0, 130, 143):
            failed.append(job.name)

    runner = JobRunner(jobs_n)
    never_started = runner.run(todo, on_done)
    if runner.signum is not None:
        print(f"sweep stopped: {len(never_started)} runs not started, interrupted ones saved last.pt. "
              f"Run the same command again to continue.")
        return 128 + runner.signum
    report(sweep_dir, args.name, runs, db)
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(failed)} (see train.log in their folders)")
        return 1
    return 0


def progress_line(folder: Path, job) -> str:
    if job.returncode in (130, 143):
        return f"{job.name}: stopped after {job.seconds:.0f} s (resumable)"
    if job.returncode != 0:
        lines = [ln for ln in job.log.read_text(errors="replace").splitlines() if ln.strip()]
        return f"{job.name}: FAILED (exit {job.returncode}): {lines[-1] if lines else 'no output'}"
    s = read_summary(folder)
    if s is None:
        return f"{job.name}: exited 0 but left no valid summary.json; run the sweep again to complete it"
    split = "test" if "test_acc" in s else "val"
    return (f"{job.name}: {split} acc {s[f'{split}_acc']:.4f} (best.pt epoch {s['best_epoch']}), "
            f"{job.seconds:.0f} s")


def report(sweep_dir: Path, name: str, runs: list[tuple[str, int]], db: str, metric: str = "test_acc") -> None:
    """Leaderboard (printed, .md, .csv) by ``metric``, overlay plots, and the same-initial-weights check."""
    from resultsdb.leaderboard import leaderboard, read_run, to_csv, to_markdown
    results = [r for r in (read_run(s, seed, sweep_dir / f"{s}_s{seed}") for s, seed in runs) if r is not None]
    if not results:
        print("no run has finished an epoch yet: no leaderboard")
        return
    board = leaderboard(results, metric)
    md = to_markdown(board, f"sweep '{name}'")
    write_atomic(md.encode(), sweep_dir / "leaderboard.md")
    write_atomic(to_csv(board).encode(), sweep_dir / "leaderboard.csv")
    print(md)
    from evaluation.sweep_plots import plot_sweep
    plots = plot_sweep([r for r in results if r.key == board.key], sweep_dir)
    print(f"wrote {sweep_dir / 'leaderboard.md'}, leaderboard.csv, {', '.join(p.name for p in plots)}")
    print(initial_weights_check(db, [r.folder for r in results]))


def initial_weights_check(db: str, folders: list[Path]) -> str:
    """Whether the runs of each seed started from the same weights (hashes the trainer recorded)."""
    if db.lower() == "none" or not Path(db).is_file():
        return "initial weights: not checked (no results database)"
    from resultsdb.db import ResultsDB
    with ResultsDB(db) as conn:
        rows = [r for f in folders for r in conn.query("SELECT seed, init_weights FROM runs WHERE run_dir = ?",
                                                        [str(f.resolve())])]
    by_seed: dict[int, set] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], set()).add(r["init_weights"])
    bad = [seed for seed, hashes in by_seed.items() if len(hashes) > 1]
    if bad:
        return f"warning: runs of seed(s) {bad} started from DIFFERENT initial weights"
    return ("initial weights: identical across schedules for each seed ("
            + ", ".join(f"seed {s}: {next(iter(h))}" for s, h in sorted(by_seed.items())) + ")")


if __name__ == "__main__":
    run_cli(main)
