"""``--dataset csv``: a file of ``path,label`` rows; ``--data_dir`` is the CSV file itself.

Relative paths are resolved against the CSV's folder, so the list and its images move together.
A header row (``path,label``) is optional; with a header, an optional ``split`` column
(train / val / test) fixes each image's split, otherwise the rows are split by a seeded stratified
split (--val_split, --test_split). Missing files are reported like unreadable ones.

Example:
    python train.py --dataset csv --data_dir labels/all.csv --image_size 96
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from data.check import DataError, DataReport
from data.file_sets import FileList, build_bundle
from data.images import MAX_IMAGE_PIXELS, ImageError, regular_file
from data.types import DataBundle

SPLITS = {"train", "val", "test"}


def _columns(header: list[str]) -> dict[str, int] | None:
    """Column positions when the first row is a header, else None."""
    names = [h.strip().lower() for h in header]
    if "path" in names and "label" in names:
        return {n: names.index(n) for n in ("path", "label", "split") if n in names}
    return None


def read_csv_list(csv_path: str | Path) -> FileList:
    """Rows of the CSV as candidate samples; malformed rows stop with the line number."""
    csv_path = Path(csv_path).expanduser()
    if not csv_path.is_file():
        raise DataError(
            f"--data_dir {csv_path} is not a file; --dataset csv needs the path of a CSV of path,label rows"
        )
    source = f"csv {csv_path}"
    files = FileList(source=source, report=DataReport(source=source))
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")  # a BOM from spreadsheet exports is fine
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise DataError(
            f"{csv_path}:{line}: not UTF-8 text (byte {e.object[e.start : e.start + 1]!r}); save the CSV as UTF-8"
        ) from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    cols = _columns(rows[0]) if rows else None
    start = 1 if cols else 0
    cols = cols or {"path": 0, "label": 1}
    seen: dict[str, int] = {}  # real path -> the line that listed it
    for line, row in enumerate(rows[start:], start=start + 1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) <= max(cols.values()):
            raise DataError(f"{csv_path}:{line}: expected {','.join(cols)} but got {','.join(row)!r}")
        rel, label = row[cols["path"]].strip(), row[cols["label"]].strip()
        split = row[cols["split"]].strip().lower() if "split" in cols else None
        if split is not None and split not in SPLITS:
            raise DataError(f"{csv_path}:{line}: split must be train, val or test (got {split!r})")
        path = Path(rel).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        if not label:
            raise DataError(f"{csv_path}:{line}: empty label for {rel}")
        try:
            regular_file(path)  # by type, unopened: a FIFO listed in the CSV must not block
        except ImageError as e:
            files.report.bad_files.append(f"{e} (line {line})")
            continue
        # One image listed twice would sit in two splits (or under two labels): a leak, refused.
        first = seen.setdefault(os.path.realpath(path), line)
        if first != line:
            raise DataError(
                f"{csv_path}:{line}: {rel} is already listed on line {first}; list each image once (with one label)"
            )
        files.add(path, label, split)
    if "split" in cols:
        files.report.folder_classes = {
            s: sorted({c for c, sp in zip(files.classes, files.splits) if sp == s}) for s in SPLITS if s in files.splits
        }
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
    """The CSV list at ``data_dir`` as a DataBundle."""
    return build_bundle(
        read_csv_list(data_dir),
        "csv",
        val_split,
        test_split,
        image_size=image_size,
        data_mode=data_mode,
        verify=verify,
        num_workers=num_workers,
        class_names=class_names,
        max_pixels=max_pixels,
    )
