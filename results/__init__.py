"""The results database (SQLite) and what reads it: queries, the run-folder importer, sweep leaderboards.

A bottom-layer package: it imports the standard library (and PyYAML for config.yaml) only, so the
trainer, ``evaluate.py``, ``results.py`` and ``sweep.py`` can all use it.
"""
