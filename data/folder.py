"""``--dataset folder``: images sorted into one folder per class.

Layouts (``--data_dir D``):
    D/train/<class>/*, D/val/<class>/* and optionally D/test/<class>/*  (val may also be valid/validation;
        without it, val is carved from train)
    D/<class>/*   one folder, split into train/val/test by a seeded stratified split
                  (--val_split, --test_split)

Classes are the sorted union of class folders over all splits (plain string order, as torchvision's
ImageFolder: "1", "10", "2"), so a class missing from one split keeps its index. Hidden entries (any dot-name: .ipynb_checkpoints, .DS_Store) are never classes.
Images may sit in sub-folders of a class folder.

Example:
    python train.py --dataset folder --data_dir ~/photos --image_size 128 --check_data
"""
from __future__ import annotations

from pathlib import Path

from data.check import DataError, DataReport
from data.file_sets import FileList, build_bundle, is_hidden
from data.images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS
from data.types import DataBundle

SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def _visible_children(folder: Path, root: Path, report: DataReport) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if is_hidden(p.name):
            report.hidden.append(str(p.relative_to(root)))
        else:
            out.append(p)
    return out


def _scan_class(folder: Path, root: Path, split: str | None, files: FileList) -> int:
    """Add the images under one class folder (recursively, skipping hidden entries); return how many."""
    found = 0
    for p in _visible_children(folder, root, files.report):
        if p.is_dir():
            found += _scan_class(p, root, split, files)  # nested folders belong to the same class
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            files.add(p, _class_of(p, root, split), split)
            found += 1
        else:
            files.report.non_images.append(str(p.relative_to(root)))
    return found


def _class_of(path: Path, root: Path, split: str | None) -> str:
    parts = path.relative_to(root).parts
    return parts[1] if split is not None else parts[0]


def _scan_split(folder: Path, root: Path, split: str | None, files: FileList) -> None:
    key = split or "all"
    files.report.folder_classes[key] = []
    for p in _visible_children(folder, root, files.report):
        if not p.is_dir():
            what = "image outside a class folder" if p.suffix.lower() in IMAGE_EXTENSIONS else "not an image"
            files.report.non_images.append(f"{p.relative_to(root)} ({what})")
            continue
        files.report.folder_classes[key].append(p.name)
        if _scan_class(p, root, split, files) == 0:
            files.report.empty_classes.append(str(p.relative_to(root)))


def scan_folder(root: str | Path) -> FileList:
    """Find every candidate image, its class and split; problems go into the report."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"--data_dir {root} is not a folder; --dataset folder needs D/<class>/*.jpg or "
                        f"D/train/<class>/*.jpg (+ D/val/..., D/test/...)")
    files = FileList(source=f"folder {root}", report=DataReport(source=f"folder {root}"))
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)}
    if "train" not in children:
        _scan_split(root, root, None, files)
        files.report.folder_classes.pop("all", None)  # one folder: no cross-split comparison to make
        return files
    for split, names in SPLIT_DIRS.items():
        found = [children[n] for n in names if n in children]
        if found:
            _scan_split(found[0], root, split, files)
    used = {n for names in SPLIT_DIRS.values() for n in names if n in children}
    for name in sorted(set(children) - used):
        files.report.notes.append(f"folder '{children[name].name}' ignored (splits are train, val, test)")
    return files


def load(data_dir: str, val_split: float = 0.1, test_split: float = 0.2, image_size: int = 0,
         data_mode: str = "auto", verify: bool = False, num_workers: int = -1,
         class_names: list[str] | None = None, max_pixels: int = MAX_IMAGE_PIXELS, **_) -> DataBundle:
    """The folder at ``data_dir`` as a DataBundle (decoded in memory or streamed, see file_sets)."""
    return build_bundle(scan_folder(data_dir), "folder", val_split, test_split, image_size=image_size,
                        data_mode=data_mode, verify=verify, num_workers=num_workers,
                        class_names=class_names, max_pixels=max_pixels)
