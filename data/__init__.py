"""Dataset registry: name -> loader returning a :class:`DataBundle` of uint8 splits.

Add a dataset by writing ``load(data_dir, val_split, test_split, **cfg)`` in its own module and
adding one line to ``DATASETS``. Loaders take what they need from the keyword arguments
(seed, strict, image_size, data_mode, verify, num_workers) and ignore the rest.
"""
from __future__ import annotations

from typing import Callable

from data import csv_list, digits, folder
from data.torchvision_sets import LOADERS as TORCHVISION_LOADERS
from data.types import DataBundle, Split
from engine.errors import unknown_name

DATASETS: dict[str, Callable[..., DataBundle]] = {
    "digits": digits.load,                    # bundled with scikit-learn, no files needed
    **TORCHVISION_LOADERS,                    # fashion_mnist, mnist, cifar10, cifar100
    "folder": folder.load,                    # D/<class>/* or D/train|val|test/<class>/*
    "csv": csv_list.load,                     # a CSV of path,label rows
}


def load_dataset(name: str, data_dir: str, **kwargs) -> DataBundle:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name](data_dir, **kwargs)


def load_from_config(cfg, verify: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The dataset a Config describes; ``verify`` decodes even streamed files (for --check_data);
    ``class_names`` (a checkpoint's) keeps that run's class order for the same set of classes."""
    return load_dataset(cfg.dataset, cfg.data_dir, val_split=cfg.val_split, test_split=cfg.test_split,
                        seed=cfg.seed, strict=cfg.strict_data, image_size=cfg.image_size, data_mode=cfg.data_mode,
                        verify=verify, num_workers=cfg.num_workers, class_names=class_names)


__all__ = ["DATASETS", "DataBundle", "Split", "load_dataset", "load_from_config"]
