"""The results database (SQLite) and what reads and feeds it: queries, the run-folder importer, a
sweep's job runner and leaderboard.

Named ``resultsdb``, not ``results``: a package ``results/`` beside the ``results.py`` script would
shadow it (``import results`` finds the package first), so the script could not be imported.
A bottom-layer package: it imports the standard library (and PyYAML, for config.yaml) and the
error classes only, so the trainer, ``evaluate.py``, ``results.py`` and ``sweep.py`` can all use it.
"""
