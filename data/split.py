"""Seeded, stratified train/val/test splits (scikit-learn's ``train_test_split``)."""

from __future__ import annotations

import numpy as np

SPLIT_SEED = 0  # fixed, so every training seed is scored on the same held-out images


def stratified_split(
    labels: np.ndarray, val_frac: float, test_frac: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test), each class in proportion; test may be empty when test_frac=0."""
    labels = np.asarray(labels)
    try:
        return _sklearn_split(labels, val_frac, test_frac, seed)
    except ValueError:
        # scikit-learn refuses classes with a single image or fewer held-out images than classes
        # (tiny user folders); split each class on its own instead, keeping singletons for training.
        return _per_class_split(labels, val_frac, test_frac, seed)


def _sklearn_split(labels: np.ndarray, val_frac: float, test_frac: float, seed: int):
    # Imported here: scikit-learn (and the scipy.stats it loads) costs ~1 s of start-up, which
    # commands that only check settings or read a checkpoint (sweep.py's checks, predict.py) skip.
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    test = np.array([], dtype=int)
    if test_frac > 0:
        idx, test = train_test_split(idx, test_size=test_frac, stratify=labels[idx], random_state=seed)
    val_of_rest = val_frac / (1.0 - test_frac)
    train, val = train_test_split(idx, test_size=val_of_rest, stratify=labels[idx], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def _per_class_split(labels: np.ndarray, val_frac: float, test_frac: float, seed: int):
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_frac))
        n_val = int(round(len(idx) * val_frac))
        if n_test + n_val >= len(idx):  # always keep at least one training image per class
            n_test, n_val = min(n_test, max(len(idx) - 1, 0)), 0
            n_val = min(int(round(len(idx) * val_frac)), len(idx) - 1 - n_test)
        parts[2].extend(idx[:n_test])
        parts[1].extend(idx[n_test : n_test + n_val])
        parts[0].extend(idx[n_test + n_val :])
    return tuple(np.sort(np.asarray(p, dtype=int)) for p in parts)
