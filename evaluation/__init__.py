"""Evaluation and prediction: everything ``evaluate.py``, ``predict.py`` and ``bench/`` share.

- :mod:`evaluation.inference` predicts image files with a checkpoint's model
  (:func:`artifacts.model_io.load_model_from_checkpoint` builds it);
- :mod:`evaluation.metrics` turns predictions into scikit-learn metrics (plus the ECE);
- :mod:`evaluation.plots` draws the confusion matrix and the reliability diagram;
- :mod:`evaluation.report` prints tables and writes the output files;
- :mod:`evaluation.inputs` expands files, folders and globs into image paths.
"""
