"""The embedded default: scikit-learn's bundled handwritten digits (1,797 real 8x8 images)."""

from __future__ import annotations

import torch

from data.split import stratified_split
from data.types import DataBundle, Split, channel_stats


def load(data_dir: str, val_split: float = 0.1, test_split: float = 0.2, **_) -> DataBundle:
    """Digits as uint8 (N, 1, 8, 8); pixel values 0-16 are rescaled to 0-255."""
    from sklearn.datasets import load_digits  # scikit-learn only when the digits are loaded: ~1 s of start-up

    d = load_digits()
    images = torch.from_numpy(d.images).mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(d.target).long()
    tr, va, te = stratified_split(d.target, val_split, test_split)

    def take(idx) -> Split:
        idx_t = torch.from_numpy(idx)
        return Split(images[idx_t], labels[idx_t], ids=[f"index {i}" for i in idx])

    train = take(tr)
    mean, std = channel_stats(train.images)
    return DataBundle(
        "digits", [str(c) for c in d.target_names], train, take(va), take(te) if len(te) else None, mean, std
    )
