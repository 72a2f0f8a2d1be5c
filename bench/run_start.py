"""What a sweep's run costs to start: train.py forked from the preloading helper against a fresh python.

Runs the same short ``train.py`` (digits, a tiny model, 1 epoch by default) ``--runs`` times each way,
one at a time, alternating, in this one process: through common.prefork's helper (as sweep.py starts
its runs) and as fresh ``python train.py`` processes (``IMGCLF_PREFORK=0``). Prints the median wall
time of each and their difference, the start-up a fork saves per run. The helper's own start (its
imports, once per sweep) is timed separately.

    python bench/run_start.py
    python bench/run_start.py --runs 10 --epochs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.prefork import FreshProcesses, Preforker  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="run-start-"))
    flags = ["--width", "8", "--depth", "2", "--threads", "1", "--amp", "off", "--channels_last", "off"]
    env = {**os.environ, "XDG_CACHE_HOME": str(out / "cache")}
    start = time.perf_counter()
    forked = Preforker()
    forked._ensure_ready()
    helper_s = time.perf_counter() - start
    fresh = FreshProcesses()
    times: dict[str, list[float]] = {"forked": [], "fresh": []}
    for i in range(args.runs):
        for name, launch in (("forked", forked), ("fresh", fresh)):
            argv = [str(ROOT / "train.py"), *flags, "--epochs", str(args.epochs)]
            argv += ["--checkpoint_dir", str(out), "--run_name", f"{name}{i}", "--results_db", "none"]
            t = time.perf_counter()
            status = launch.start(argv, env, out / f"{name}{i}.log", cwd=ROOT).wait()
            times[name].append(time.perf_counter() - t)
            if status != 0:
                print(f"error: {name} run {i} exited {status}; see {out / f'{name}{i}.log'}", file=sys.stderr)
                return 1
    forked.close()
    f, r = statistics.median(times["forked"]), statistics.median(times["fresh"])
    print(f"train.py --epochs {args.epochs} (digits, width 8), {args.runs} runs each way, one at a time")
    print(f"helper ready (its imports, once per sweep): {helper_s:.2f} s")
    print(f"median per run: forked {f:.2f} s, fresh python {r:.2f} s; a fork saves {r - f:.2f} s ({r / f:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
