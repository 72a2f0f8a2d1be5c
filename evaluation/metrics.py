"""Classification metrics from predicted probabilities: scikit-learn's, plus the calibration error.

Every number but the ECE comes from scikit-learn (``accuracy_score``, ``top_k_accuracy_score``,
``precision_recall_fscore_support``, ``confusion_matrix``); scikit-learn has no multiclass ECE,
so :func:`calibration_bins` and :func:`expected_calibration_error` are the one small
implementation, shared by ``metrics.json`` and the reliability diagram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ECE_BINS = 15  # the usual choice (Guo et al., 2017), so numbers compare with the literature


@dataclass
class Evaluation:
    """What ``evaluate.py`` reports: headline metrics, per-class scores and the confusion matrix."""

    metrics: dict[str, Any]  # exactly what metrics.json holds
    macro: tuple[float, float, float]  # precision, recall, F1
    weighted: tuple[float, float, float]
    confusion: np.ndarray  # (C, C) counts, rows = true class, columns = predicted class
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray  # probability of the predicted class


def calibration_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin ``(lo, hi]``: mean confidence, accuracy and sample count.

    Empty bins get confidence and accuracy NaN (count 0), so they drop out of sums and plots.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    # ceil(c * n) - 1 puts c in (k/n, (k+1)/n]; clip keeps c == 0 in the first bin.
    idx = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / counts
    return mean_conf, accuracy, counts.astype(int)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE = sum over bins of (bin size / N) * |bin accuracy - bin mean confidence|.

    ``confidence`` is the top-1 probability of each sample and ``correct`` whether the top-1
    class was right: 0 means the model is right as often as it claims; 0.1 means it is off by 10
    points on average. Equal-width bins over [0, 1], ``n_bins`` of them (15 by convention).
    """
    mean_conf, accuracy, counts = calibration_bins(confidence, correct, n_bins)
    total = counts.sum()
    if total == 0:
        return 0.0
    used = counts > 0
    return float(np.sum(counts[used] / total * np.abs(accuracy[used] - mean_conf[used])))


def evaluate_predictions(y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str]) -> Evaluation:
    """All evaluation metrics for true labels ``y_true`` and predicted probabilities (N, C)."""
    # Imported here: scikit-learn costs ~1.5 s of start-up that predict.py, which scores nothing, skips.
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.arange(len(class_names))
    y_pred = probs.argmax(1)
    confidence = probs.max(1)
    # zero_division=0: a class never predicted (or absent from the split) scores 0, not a warning.
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    macro = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)[:3]
    weighted = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="weighted", zero_division=0)[:3]
    top5 = None
    if len(class_names) >= 5:
        top5 = float(top_k_accuracy_score(y_true, probs, k=5, labels=labels))
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "top5_accuracy": top5,
        "macro_f1": float(macro[2]),
        "weighted_f1": float(weighted[2]),
        "ece": expected_calibration_error(confidence, y_pred == y_true),
        "num_samples": int(len(y_true)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
    }
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return Evaluation(metrics, tuple(map(float, macro)), tuple(map(float, weighted)), cm, y_true, y_pred, confidence)


def most_confused(cm: np.ndarray, class_names: Sequence[str], k: int = 10) -> list[tuple[str, str, int, float]]:
    """The ``k`` largest off-diagonal cells: (true, predicted, count, share of the true class)."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]  # ties in row order
    rows = cm.sum(1)
    out = []
    for t, pr in zip(*np.unravel_index(flat, cm.shape)):
        if off[t, pr] == 0:
            break
        out.append((class_names[t], class_names[pr], int(off[t, pr]), float(off[t, pr] / max(rows[t], 1))))
    return out
