"""Turn a list of (image file, class, split) into a DataBundle: shared by ``folder`` and ``csv``.

Steps: read every header (mode and size: cheap, and it finds non-images), choose the channels and
one square input size, then either decode everything once into a uint8 cache (fits the memory
budget) or keep the paths for DataLoader workers to stream (``DiskLoader``). Splits missing from
the source are carved from the training images by a seeded stratified split.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from common.spelling import plural
from data.check import DataError, DataReport, TooFewClasses
from data.disk_loader import FileDataset, collate, resolve_workers
from data.images import MAX_IMAGE_PIXELS, ImageError, header
from data.split import SPLIT_SEED, stratified_split
from data.types import DataBundle, Split, channel_stats

MEMORY_BUDGET = 2 * 1024**3  # decoded bytes a folder may take in memory before it is streamed
MAX_DEFAULT_SIZE = 224  # default input side for folders of large or mixed-size images
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
HIDDEN_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
STATS_SAMPLE = 512  # streamed sets: images decoded to estimate mean/std


@dataclass
class FileList:
    """Candidate samples found by a scanner; ``split`` None means "not assigned, split me"."""

    source: str
    paths: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    report: DataReport | None = None

    def add(self, path: Path | str, cls: str, split: str | None) -> None:
        self.paths.append(str(path))
        self.classes.append(cls)
        self.splits.append(split)


def is_hidden(name: str) -> bool:
    """Dot-names (.ipynb_checkpoints, .DS_Store, ...) and OS litter are never classes or samples."""
    return name.startswith(".") or name in HIDDEN_NAMES


def class_order(names) -> list[str]:
    """Class names as plain sorted strings, exactly torchvision's ``ImageFolder`` order ("10" before "2"),
    so indices match models and code written against ImageFolder."""
    return sorted(set(names))


def default_size(sizes: Counter) -> int:
    """Native side for uniform square images up to 224 px, else the median short side, capped."""
    if len(sizes) == 1:
        ((w, h),) = sizes
        if w == h and w <= MAX_DEFAULT_SIZE:
            return w
    short = [min(w, h) for (w, h), n in sizes.items() for _ in range(n)]
    return int(min(MAX_DEFAULT_SIZE, statistics.median_low(short)))


def decode_all(ds: FileDataset, num_workers: int, keep: bool) -> tuple[torch.Tensor | None, list[bool], list[str]]:
    """Decode every file once, in worker processes (decoding holds the GIL, so threads do not help).

    Returns the uint8 cache (None unless ``keep``), which files decoded, and the failures.
    """
    n = len(ds)
    out = torch.empty((n, ds.channels, ds.size, ds.size), dtype=torch.uint8) if keep else None
    ok = [False] * n
    bad: list[str] = []
    workers = resolve_workers(num_workers) if n > 256 else 0  # forking costs more than a few images
    for x, idx, errors in DataLoader(ds, batch_size=64, collate_fn=collate, num_workers=workers):
        bad += errors
        for j, i in enumerate(idx.tolist()):
            ok[i] = True
            if keep:
                out[i] = x[j]
    return out, ok, bad


def probe_all(files: FileList, report: DataReport, max_pixels: int = MAX_IMAGE_PIXELS) -> list[int]:
    """Indices of the files whose header reads and is within ``max_pixels``; the rest go to
    ``report.bad_files``. Only headers are read: nothing is decoded here."""
    good, animated = [], 0
    for i, path in enumerate(files.paths):
        try:
            mode, size, turn, moving = header(path)
        except ImageError as e:
            report.bad_files.append(str(e))
            continue
        if size[0] * size[1] > max_pixels:
            report.bad_files.append(f"{path}: {size[0]}x{size[1]} is over max_image_pixels ({max_pixels})")
            continue
        report.modes[mode] += 1
        report.sizes[size] += 1
        report.exif_rotated += turn != 1
        animated += moving
        good.append(i)
    if animated:
        report.notes.append(f"{plural(animated, 'animated image')}: the first frame of each is used")
    if not good:
        raise DataError(
            f"no readable images in {files.source}"
            + (f" ({len(report.bad_files)} unreadable)" if report.bad_files else "")
            + "; expected D/<class>/*.jpg, D/train/<class>/*.jpg or a CSV of path,label rows"
        )
    return good


def build_bundle(
    files: FileList,
    name: str,
    val_split: float,
    test_split: float,
    image_size: int = 0,
    data_mode: str = "auto",
    verify: bool = False,
    num_workers: int = -1,
    class_names: list[str] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> DataBundle:
    """Probe, size, split, then decode once or stream: the DataBundle of a file dataset.

    ``class_names`` (a checkpoint's) fixes the class -> index order when it names the same classes,
    so a run trained under an older order gets its own indices and its own split back.

    The split is drawn from the file list before decoding, so it is the same in memory and when
    streamed, and one newly corrupt file does not reshuffle every other image's split.
    """
    report = files.report or DataReport(source=files.source)
    good = probe_all(files, report, max_pixels)
    channels = report.channels = 1 if set(report.modes) <= GRAY_MODES else 3
    side = image_size or default_size(report.sizes)
    if image_size == 0 and len(report.sizes) > 1:
        report.notes.append(
            f"images resized to {side}x{side} (median short side, at most {MAX_DEFAULT_SIZE}; --image_size N to choose)"
        )
    paths = [files.paths[i] for i in good]
    found = class_order(files.classes[i] for i in good)
    class_names = list(class_names) if class_names and sorted(class_names) == found else found
    index = {c: k for k, c in enumerate(class_names)}
    labels = torch.tensor([index[files.classes[i]] for i in good], dtype=torch.long)
    split_of = np.array([files.splits[i] or "" for i in good], dtype=object)
    parts = assign_splits(split_of, labels.numpy(), val_split, test_split, report)
    require_two_classes(files.source, class_names, labels[torch.from_numpy(parts[0])])
    if report.exif_rotated:
        report.notes.append(
            f"{plural(report.exif_rotated, 'image')} rotated by their EXIF tag (as photo viewers show them)"
        )

    ds = FileDataset(paths, labels, channels, side, max_pixels=max_pixels)
    estimate = len(good) * channels * side * side
    stream = data_mode == "stream" or (data_mode == "auto" and estimate > MEMORY_BUDGET)
    images, ok = None, [True] * len(paths)
    if stream:
        report.notes.append(
            f"streamed from disk by DataLoader workers ({estimate / 1024**3:.1f} GB decoded "
            f"would exceed the {MEMORY_BUDGET / 1024**3:.0f} GB memory budget)"
            if data_mode == "auto"
            else "streamed from disk by DataLoader workers (--data_mode stream)"
        )
    if not stream or verify:  # --check_data decodes streamed files too, so truncated ones are found now
        images, ok, bad = decode_all(ds, num_workers, keep=not stream)
        report.bad_files += bad

    def take(rows: np.ndarray) -> Split:
        rows = torch.from_numpy(np.array([r for r in rows if ok[r]], dtype=np.int64))
        return Split(images[rows] if images is not None else None, labels[rows], [paths[j] for j in rows.tolist()])

    train, val, test = (take(p) if p is not None else None for p in parts)
    if len(train) == 0 or len(val) == 0:
        raise DataError(
            f"{files.source}: {len(train)} training and {len(val)} validation images after "
            f"skipping unreadable files; add images or lower --val_split"
        )
    mean, std = stream_stats(ds, train, num_workers) if stream else channel_stats(train.images)
    return DataBundle(name, class_names, train, val, test, mean, std, input_shape=(channels, side, side), report=report)


def require_two_classes(source: str, class_names: list[str], train_labels: torch.Tensor) -> None:
    """A classifier needs at least two classes to train on; one class "learns" loss 0 and accuracy 1."""
    counts = train_labels.bincount(minlength=len(class_names)).tolist()
    found = [f"{c} ({plural(n, 'image')})" for c, n in zip(class_names, counts) if n > 0]
    if len(found) < 2:
        raise TooFewClasses(
            f"{source}: the training split has images of {len(found)} class"
            f"{'' if len(found) == 1 else 'es'} ({', '.join(found) or 'none'}); a classifier needs "
            f"at least 2: one folder (or CSV label) per class, e.g. D/<class>/*.jpg"
        )


def assign_splits(
    split_of: np.ndarray, labels: np.ndarray, val_frac: float, test_frac: float, report: DataReport
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Row indices of train/val/test: given splits kept, missing val (and test) carved from train."""
    given = {s: np.flatnonzero(split_of == s) for s in ("train", "val", "test")}
    unassigned = np.flatnonzero(split_of == "")
    if len(unassigned):  # one folder / a CSV without a split column: split everything
        tr, va, te = stratified_split(labels[unassigned], val_frac, test_frac, SPLIT_SEED)
        report.notes.append(
            f"split automatically (seeded, stratified): {len(tr)} train / {len(va)} val / "
            f"{len(te)} test (--val_split {val_frac:g}, --test_split {test_frac:g})"
        )
        return unassigned[tr], unassigned[va], unassigned[te] if len(te) else None
    train, test = given["train"], given["test"] if len(given["test"]) else None
    if len(given["val"]):
        return train, given["val"], test
    tr, va, _ = stratified_split(labels[train], val_frac, 0.0, SPLIT_SEED)
    report.notes.append(
        f"no val split: {len(va)} validation images carved from train (seeded, stratified, --val_split {val_frac:g})"
    )
    return train[tr], train[va], test


def stream_stats(ds: FileDataset, train: Split, num_workers: int = -1) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of a streamed set from a fixed random sample of training images."""
    rows = np.sort(
        np.random.default_rng(SPLIT_SEED).permutation(len(train))[:STATS_SAMPLE]
    )  # small sets: all, in order
    sample = FileDataset(
        [train.ids[r] for r in rows],
        train.labels[torch.from_numpy(rows)],
        ds.channels,
        ds.size,
        max_pixels=ds.max_pixels,
    )
    images, ok, _ = decode_all(sample, num_workers, keep=True)
    if not any(ok):  # nothing decodable in the sample: neutral statistics, the bad files get reported
        return (0.5,) * ds.channels, (0.25,) * ds.channels
    return channel_stats(images[torch.tensor(ok)])
