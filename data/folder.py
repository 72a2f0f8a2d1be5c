"""``--dataset folder``: images sorted into one folder per class.

Layouts (``--data_dir D``):
    D/train/<class>/*, D/val/<class>/* and optionally D/test/<class>/*  (val may also be valid/validation;
        without it, val is carved from train)
    D/<class>/*   one folder, split into train/val/test by a seeded stratified split
                  (--val_split, --test_split)

Classes are the sorted union of class folders over all splits (plain string order, as torchvision's
ImageFolder: "1", "10", "2"), so a class missing from one split keeps its index. Hidden entries (any dot-name:
.ipynb_checkpoints, .DS_Store) are never classes.
Images may sit in sub-folders of a class folder. Links are followed, but each folder is entered and each
file counted once (a link loop such as ``cat/up -> ..`` is skipped and reported); FIFOs and devices are
skipped by type, unopened.

Example:
    python train.py --dataset folder --data_dir ~/photos --image_size 128 --check_data
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from data.check import DataError, DataReport
from data.file_sets import FileList, build_bundle, is_hidden
from data.images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, special_kind
from data.types import DataBundle

SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


class _Walk:
    """One scan's memory of what it has seen, so that links cannot make it loop or count twice.

    Every folder is entered once and every file kept once, by its identity ``(st_dev, st_ino)``
    (links followed): ``cat/up -> ..`` or ``cat/self -> .`` lead back into folders already entered
    and are skipped as loops; a file reached through two links (or two hard links) counts once.
    Special files (FIFOs, devices, sockets) are skipped by type from ``stat``, never opened.
    """

    def __init__(self, root: Path, files: FileList):
        self.root, self.files, self.report = root, files, files.report
        self.folders: set[tuple[int, int]] = set()
        self.kept: set[tuple[int, int]] = set()

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.root))

    def enter(self, folder: Path, st: os.stat_result) -> bool:
        """True the first time a folder is reached; a loop or a second link to it is noted instead."""
        key = (st.st_dev, st.st_ino)
        if key in self.folders:
            self.report.link_loops.append(self.rel(folder))
            return False
        self.folders.add(key)
        return True

    def children(self, folder: Path) -> list[tuple[Path, os.stat_result | None]]:
        """Visible entries of ``folder``, sorted, each with its stat (None: a broken link)."""
        out = []
        for p in sorted(folder.iterdir()):
            if is_hidden(p.name):
                self.report.hidden.append(self.rel(p))
                continue
            try:
                out.append((p, os.stat(p)))
            except OSError:  # a dangling link, a loop of links to links, no permission
                self.report.bad_files.append(f"{p}: cannot be read (a broken link?)")
        return out

    def add(self, p: Path, st: os.stat_result, cls: str, split: str | None) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self.kept:
            self.report.duplicates += 1
            return False
        self.kept.add(key)
        self.files.add(p, cls, split)
        return True

    def scan_class(self, folder: Path, cls: str, split: str | None) -> int:
        """Add the images under one class folder (recursively); return how many."""
        found = 0
        for p, st in self.children(folder):
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                if self.enter(p, st):
                    found += self.scan_class(p, cls, split)  # nested folders belong to the same class
            elif not stat.S_ISREG(st.st_mode):
                self.report.non_images.append(f"{self.rel(p)} ({special_kind(st.st_mode)}, skipped)")
            elif p.suffix.lower() in IMAGE_EXTENSIONS:
                found += self.add(p, st, cls, split)
            else:
                self.report.non_images.append(self.rel(p))
        return found

    def scan_split(self, folder: Path, split: str | None) -> None:
        key = split or "all"
        self.report.folder_classes[key] = []
        for p, st in self.children(folder):
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                what = (
                    "image outside a class folder"
                    if p.suffix.lower() in IMAGE_EXTENSIONS
                    else "not an image"
                    if stat.S_ISREG(st.st_mode)
                    else special_kind(st.st_mode)
                )
                self.report.non_images.append(f"{self.rel(p)} ({what})")
                continue
            if not self.enter(p, st):
                continue
            self.report.folder_classes[key].append(p.name)
            if self.scan_class(p, p.name, split) == 0:
                self.report.empty_classes.append(self.rel(p))


def scan_folder(root: str | Path) -> FileList:
    """Find every candidate image, its class and split; problems go into the report. Reads no image."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"--data_dir {root} is not a folder; --dataset folder needs D/<class>/*.jpg or "
            f"D/train/<class>/*.jpg (+ D/val/..., D/test/...)"
        )
    files = FileList(source=f"folder {root}", report=DataReport(source=f"folder {root}"))
    walk = _Walk(root, files)
    walk.enter(root, os.stat(root))
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)}
    if "train" not in children:
        walk.scan_split(root, None)
        files.report.folder_classes.pop("all", None)  # one folder: no cross-split comparison to make
        return files
    for split, names in SPLIT_DIRS.items():
        found = [children[n] for n in names if n in children]
        if found and walk.enter(found[0], os.stat(found[0])):
            walk.scan_split(found[0], split)
    used = {n for names in SPLIT_DIRS.values() for n in names if n in children}
    for name in sorted(set(children) - used):
        files.report.notes.append(f"folder '{children[name].name}' ignored (splits are train, val, test)")
    return files


def load(
    data_dir: str,
    val_split: float = 0.1,
    test_split: float = 0.2,
    image_size: int = 0,
    data_mode: str = "auto",
    verify: bool = False,
    num_workers: int = -1,
    class_names: list[str] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    **_,
) -> DataBundle:
    """The folder at ``data_dir`` as a DataBundle (decoded in memory or streamed, see file_sets)."""
    return build_bundle(
        scan_folder(data_dir),
        "folder",
        val_split,
        test_split,
        image_size=image_size,
        data_mode=data_mode,
        verify=verify,
        num_workers=num_workers,
        class_names=class_names,
        max_pixels=max_pixels,
    )
