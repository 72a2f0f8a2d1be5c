"""Query the results database that train.py, evaluate.py and sweep.py write (or rebuild it from run folders).

Examples:
    python results.py runs                                   # every run: status, schedule, best/test accuracy
    python results.py best                                   # the groups of comparable runs, or their leaderboard
    python results.py best --sweep lab                       # the leaderboard of sweep 'lab' (test accuracy)
    python results.py best --dataset digits --epochs 5 --metric val_loss --epoch_max 3 --top 3
    python results.py best --key 9cab8434                    # one group, by its comparability key
    python results.py classes 3                              # per-class metrics of run 3
    python results.py classes cosine --epoch 12 --format csv # ... of every cosine run, at epoch 12
    python results.py compare 3 4 7                          # runs side by side, and their val accuracy per epoch
    python results.py import checkpoints                     # rebuild the database from run folders
    python results.py best --results_db postgresql://lab@db-host:5432/lab   # the database several machines share

The database is <checkpoint_dir>/results.db (default checkpoints/results.db); --results_db picks another.
`best` ranks only comparable runs -- one comparability key (resultsdb/compare.py): same data, model and
settings, differing only in schedule and seed -- and says how many runs it left out; the columns are
explained in resultsdb/leaderboard.py. Schedules are named as the runs were; a preset's id, name and
specification name count as one schedule.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import ArgParser, add_shared_flags
from common.errors import AppError, UsageError, run_cli
from resultsdb.db import DB_FILE
from resultsdb.leaderboard import DEFAULT_METRIC, METRICS
from resultsdb.table import FORMATS, render

DEFAULT_DB = Path("checkpoints") / DB_FILE


def build_parser() -> ArgParser:
    common = ArgParser(add_help=False)
    common.add_argument(
        "--results_db",
        default=None,
        metavar="PATH|URL",
        help=f"the database: a SQLite file or a URL such as postgresql://USER@HOST:PORT/DB "
        f"(default: {DEFAULT_DB}; for import: DIR/results.db)",
    )
    common.add_argument("--format", choices=FORMATS, default="table", help="(default: table)")
    add_shared_flags(common)
    p = ArgParser(description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgParser)
    b = sub.add_parser(
        "best", parents=[common], help="rank the schedules of comparable runs, with confidence intervals"
    )
    b.add_argument("--sweep", default=None, metavar="NAME", help="the runs of sweep NAME (<checkpoint_dir>/NAME/)")
    b.add_argument("--dataset", default=None)
    b.add_argument("--model", default=None)
    b.add_argument("--epochs", type=int, default=None, metavar="N", help="runs planned for N epochs")
    b.add_argument("--key", default=None, metavar="KEY", help="a comparability key, or the start of its hash")
    b.add_argument(
        "--metric",
        choices=tuple(METRICS),
        default=DEFAULT_METRIC,
        help=f"what to rank by (default: {DEFAULT_METRIC}, the test accuracy of best.pt)",
    )
    b.add_argument("--epoch_max", type=int, default=None, metavar="N", help="val_acc/val_loss: only epochs 1..N count")
    b.add_argument("--top", type=int, default=None, metavar="K", help="show the first K schedules (default: all)")
    c = sub.add_parser("classes", parents=[common], help="per-class metrics of a run or a schedule")
    c.add_argument("target", metavar="RUN_ID|SCHEDULER")
    c.add_argument("--epoch", type=int, default=None, metavar="N", help="default: the latest evaluated epoch")
    sub.add_parser("runs", parents=[common], help="every recorded run")
    m = sub.add_parser("compare", parents=[common], help="runs side by side")
    m.add_argument("run_ids", type=int, nargs="+", metavar="RUN_ID")
    i = sub.add_parser("import", parents=[common], help="rebuild the database from the run folders under DIR")
    i.add_argument("dir", type=Path, metavar="DIR")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from resultsdb.server import ServerError

    try:
        return _main(argv)
    except ServerError as e:
        raise AppError(f"results database: {e}") from None


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import sqlite3

    from resultsdb.db import unusable

    try:
        return _command(args)
    except sqlite3.Error as e:  # garbage, truncated, read-only, a folder: one line and how to rebuild
        path = args.results_db or (args.dir / DB_FILE if args.command == "import" else DEFAULT_DB)
        raise unusable(path, e, str(args.dir) if args.command == "import" else "checkpoints") from None


def _command(args) -> int:
    from resultsdb import queries
    from resultsdb.db import ResultsDB
    from resultsdb.server import is_url

    if args.command == "import":
        if not args.dir.is_dir():
            raise UsageError(f"{args.dir} is not a folder; give the folder holding run folders (e.g. checkpoints)")
        from resultsdb.importer import import_dir

        path = args.results_db or args.dir / DB_FILE
        with ResultsDB(path) as db:
            folders = import_dir(db, args.dir)
            n_epochs = db.query("SELECT COUNT(*) AS n FROM scheduler_results")[0]["n"]
        print(f"imported {len(folders)} run folders under {args.dir} into {path} ({n_epochs} epoch rows in all)")
        return 0

    path = args.results_db or DEFAULT_DB
    if not is_url(str(path)) and not Path(path).is_file():
        raise UsageError(
            f"no results database at {path}: train a run first, pass --results_db PATH, or rebuild "
            f"it with `python results.py import DIR`"
        )
    with ResultsDB(path) as db:
        if args.command == "best":
            return best(db, args)
        if args.command == "classes":
            rows = queries.classes(db, args.target, args.epoch, same_schedule(args.target))
        elif args.command == "runs":
            rows = queries.runs(db)
        else:
            rows, per_epoch, notes = queries.compare(db, args.run_ids)
            if args.format == "json":
                print(json.dumps({"runs": rows, "epochs": per_epoch, "notes": notes}, indent=2))
                return 0
            if args.format == "table":
                print(
                    render(rows, "table")
                    + "\n\nvalidation accuracy per epoch\n"
                    + render(per_epoch, "table")
                    + "".join("\n" + n for n in notes)
                )
                return 0
            print("\n".join(notes), file=sys.stderr)
    print(render(rows, args.format))
    return 0


def canonical_schedule(name: str) -> str:
    """A preset's id for any of its names (id, name, specification name); other schedules as named."""
    from schedulers.registry import preset_of

    return preset_of(name) or name


def same_schedule(name: str) -> list[str]:
    """Every name a run of schedule ``name`` may be recorded under (a preset's three names)."""
    from schedulers.presets import PRESET_IDS

    pid = canonical_schedule(name)
    return [pid, *(n for n, i in PRESET_IDS.items() if i == pid and canonical_schedule(n) == pid)]


def best(db, args) -> int:
    """``results.py best``: the leaderboard of one group of comparable runs, or the groups to pick from."""
    from resultsdb import queries
    from resultsdb.leaderboard import Sample, describe, format_row, rank, to_csv

    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be >= 1 (got {args.top})")
    rows = queries.run_values(
        db, args.metric, args.dataset, args.model, args.epochs, args.sweep, args.key, args.epoch_max
    )
    if not rows:
        print(render([], args.format))
        return 0
    groups = queries.key_groups(rows)
    filtered = any(v is not None for v in (args.sweep, args.dataset, args.model, args.epochs, args.key))
    if len(groups) > 1 and not filtered:
        if args.format == "table":
            print(
                f"{len(rows)} runs in {len(groups)} groups of comparable settings (not ranked together); rank "
                f"one with --key HASH, or narrow with --sweep, --dataset, --model, --epochs:"
            )
        print(render(groups, args.format))
        return 0
    names: dict[str, str] = {}  # canonical -> the first name a run used
    samples = [
        Sample(
            names.setdefault(canonical_schedule(r["scheduler_type"]), r["scheduler_type"]),
            r["seed"],
            r["value"],
            r["comparability_key"],
        )
        for r in rows
    ]
    board = rank(samples, args.metric, groups[0]["comparability_key"])
    shown = board.rows[: args.top] if args.top else board.rows
    if args.format == "json":
        print(
            json.dumps(
                {"metric": board.metric, "comparability_key": board.key, "rows": shown, "notes": board.notes}, indent=2
            )
        )
    elif args.format == "csv":
        print(to_csv(dataclasses.replace(board, rows=shown)), end="")
        print("\n".join(board.notes), file=sys.stderr)
    else:
        print(describe(board))
        print(render([format_row(board, r) for r in shown], "table"))
        print("\n".join(board.notes))
    return 0


if __name__ == "__main__":
    run_cli(main)
