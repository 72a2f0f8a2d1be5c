"""The bottom layer: what every other package may use, importing nothing of the project.

- :mod:`common.errors` — errors a user can act on and the one-line CLI wrapper;
- :mod:`common.cli` — the argument parser every entry script uses;
- :mod:`common.fileio` — atomic file writes;
- :mod:`common.faults` — test hooks that make crash moments reachable;
- :mod:`common.cores` — the cores this process may use;
- :mod:`common.figures` — the one figure writer (Agg backend, atomic);
- :mod:`common.monitors` — the monitored metrics and their direction (min/max);
- :mod:`common.run_files` — whether a run folder is finished (a valid summary.json).
"""
