"""Dataset registry: name -> loader returning a :class:`DataBundle` of uint8 splits.

Add a dataset by writing ``load(data_dir, val_split, test_split, **cfg)`` in its own module and
adding one line to ``DATASETS``. Loaders take what they need from the keyword arguments
(seed, strict, image_size, data_mode, verify, num_workers, max_pixels) and ignore the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.errors import unknown_name
from common.progress import phase
from data import csv_list, digits, folder
from data.check import enforce_strict, report_of
from data.torchvision_sets import LOADERS as TORCHVISION_LOADERS
from data.transforms import resize_uint8
from data.types import DataBundle, Split

DATASETS: dict[str, Callable[..., DataBundle]] = {
    "digits": digits.load,  # bundled with scikit-learn, no files needed
    **TORCHVISION_LOADERS,  # fashion_mnist, mnist, cifar10, cifar100
    "folder": folder.load,  # D/<class>/* or D/train|val|test/<class>/*
    "csv": csv_list.load,  # a CSV of path,label rows
}


def load_dataset(name: str, data_dir: str, **kwargs) -> DataBundle:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name](data_dir, **kwargs)


def load_from_config(cfg, verify: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The dataset a Config describes; ``verify`` decodes even streamed files (for --check_data);
    ``class_names`` (a checkpoint's) keeps that run's class order for the same set of classes."""
    return load_dataset(
        cfg.dataset,
        cfg.data_dir,
        val_split=cfg.val_split,
        test_split=cfg.test_split,
        seed=cfg.seed,
        strict=cfg.strict_data,
        image_size=cfg.image_size,
        data_mode=cfg.data_mode,
        verify=verify,
        num_workers=cfg.num_workers,
        class_names=class_names,
        max_pixels=cfg.max_image_pixels,
    )


def preprocessing_of(bundle: DataBundle) -> dict[str, Any]:
    """What a later user of the model needs to feed it images exactly as in evaluation."""
    h, w = bundle.image_size
    return {
        "input_size": [h, w],
        "channels": bundle.channels,
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "resize": "bilinear-antialias",
        "scale": "0-255 -> 0-1, then (x - mean) / std",
    }


def run_check(cfg) -> int:
    """``train.py --check_data``: load and verify every image, print the report; exit status."""
    report = report_of(load_from_config(cfg, verify=True))
    print(report.format())
    return 1 if cfg.strict_data and report.bad_files else 0


def prepare_data(cfg, class_names: list[str] | None = None) -> DataBundle:
    """Load the dataset a Config describes at its training size; ``bundle.report`` holds the dataset check's
    findings (``--strict_data`` turns unreadable files into an error). ``class_names``: a checkpoint's,
    whose class order (and so split) the bundle keeps."""
    with phase(f"loading {cfg.dataset}"):  # seconds for the larger sets: said, off a terminal too
        bundle = load_from_config(cfg, class_names=class_names)
    enforce_strict(report_of(bundle), cfg.strict_data)
    if cfg.image_size and bundle.image_size != (cfg.image_size, cfg.image_size):
        size = (cfg.image_size, cfg.image_size)
        for split in bundle.splits().values():
            if split.in_memory:  # streamed splits are decoded at their size already
                split.images = resize_uint8(split.images, size)  # once, not every batch
    return bundle


__all__ = [
    "DATASETS",
    "DataBundle",
    "Split",
    "load_dataset",
    "load_from_config",
    "prepare_data",
    "preprocessing_of",
    "run_check",
]
