"""The scheduler lab behind ``sweep.py``: an Optuna study whose trials are ordinary train.py runs.

``space``: what is searched (a grid of schedules, or a --search file) and how a trial's values become
train.py flags. ``identity``: the sweep's settings (sweep.yaml) and each run folder's state.
``study``: storage, sampler and pruner. ``trials``: the objective that runs a configuration on
every seed. ``progress``: the k/N lines and progress.txt. ``report``: leaderboard and plots.
"""
