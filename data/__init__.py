"""Dataset registry: name -> loader returning a :class:`DataBundle` of uint8 splits.

Add a dataset by writing ``load(data_dir, val_split, test_split, **cfg)`` in its own module and
adding one line to ``DATASETS``.
"""
from __future__ import annotations

from typing import Callable

from data import digits
from data.types import DataBundle, Split
from engine.errors import unknown_name

DATASETS: dict[str, Callable[..., DataBundle]] = {
    "digits": digits.load,
}


def load_dataset(name: str, data_dir: str, **kwargs) -> DataBundle:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name](data_dir, **kwargs)


__all__ = ["DATASETS", "DataBundle", "Split", "load_dataset"]
