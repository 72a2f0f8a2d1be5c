"""Query the results database that train.py, evaluate.py and sweep.py write (or rebuild it from run folders).

Examples:
    python results.py runs                                   # every run: status, schedule, best/test accuracy
    python results.py best                                   # the best schedule per model and dataset
    python results.py best --dataset digits --top 5 --epoch_max 10 --metric loss
    python results.py classes 3                              # per-class metrics of run 3
    python results.py classes cosine --epoch 12 --format csv # ... of every cosine run, at epoch 12
    python results.py compare 3 4 7                          # runs side by side, and their val accuracy per epoch
    python results.py import checkpoints                     # rebuild the database from run folders
    python results.py best --results_db postgresql://lab@db-host:5432/lab   # the database several machines share

The database is <checkpoint_dir>/results.db (default checkpoints/results.db); --results_db picks another.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from common.cli import ArgParser, add_shared_flags
from common.errors import AppError, UsageError, run_cli
from resultsdb.db import DB_FILE
from resultsdb.table import FORMATS, render

DEFAULT_DB = Path("checkpoints") / DB_FILE


def build_parser() -> ArgParser:
    common = ArgParser(add_help=False)
    common.add_argument("--results_db", default=None, metavar="PATH|URL",
                        help=f"the database: a SQLite file or a URL such as postgresql://USER@HOST:PORT/DB "
                             f"(default: {DEFAULT_DB}; for import: DIR/results.db)")
    common.add_argument("--format", choices=FORMATS, default="table", help="(default: table)")
    add_shared_flags(common)
    p = ArgParser(description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgParser)
    b = sub.add_parser("best", parents=[common], help="the best schedule per model and dataset")
    b.add_argument("--dataset", default=None)
    b.add_argument("--model", default=None)
    b.add_argument("--metric", choices=("accuracy", "loss"), default="accuracy",
                   help="validation metric to rank by (default: accuracy)")
    b.add_argument("--epoch_max", type=int, default=None, metavar="N", help="only epochs 1..N count")
    b.add_argument("--top", type=int, default=1, metavar="K", help="schedules per model/dataset (default: 1)")
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
        raise UsageError(f"no results database at {path}: train a run first, pass --results_db PATH, or rebuild "
                         f"it with `python results.py import DIR`")
    with ResultsDB(path) as db:
        if args.command == "best":
            if args.top < 1:
                raise UsageError(f"--top must be >= 1 (got {args.top})")
            rows = queries.best(db, args.dataset, args.model, args.metric, args.epoch_max, args.top)
        elif args.command == "classes":
            rows = queries.classes(db, args.target, args.epoch)
        elif args.command == "runs":
            rows = queries.runs(db)
        else:
            rows, per_epoch = queries.compare(db, args.run_ids)
            if args.format == "json":
                print(json.dumps({"runs": rows, "epochs": per_epoch}, indent=2))
                return 0
            if args.format == "table":
                print(render(rows, "table") + "\n\nvalidation accuracy per epoch\n" + render(per_epoch, "table"))
                return 0
    print(render(rows, args.format))
    return 0


if __name__ == "__main__":
    run_cli(main)
