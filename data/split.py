"""Seeded, stratified train/val/test splits (scikit-learn's ``train_test_split``)."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0  # fixed, so every training seed is scored on the same held-out images


def stratified_split(labels: np.ndarray, val_frac: float, test_frac: float,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test), each class in proportion; test may be empty when test_frac=0."""
    idx = np.arange(len(labels))
    test = np.array([], dtype=int)
    if test_frac > 0:
        idx, test = train_test_split(idx, test_size=test_frac, stratify=labels[idx], random_state=seed)
    val_of_rest = val_frac / (1.0 - test_frac)
    train, val = train_test_split(idx, test_size=val_of_rest, stratify=labels[idx], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)
