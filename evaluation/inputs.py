"""Turn ``predict.py``'s INPUT arguments (files, folders, glob patterns) into a list of image paths.

- a file named explicitly is always tried, whatever its extension (a bad one gets an error row);
- a folder is searched recursively for files with an image extension;
- a glob pattern (``*``, ``?``, ``[...]``, ``**``) expands like a folder or a file list;
- hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``, ...) inside folders and globs are
  skipped: they are editor or OS leftovers, not data;
- links are followed, each folder entered once (a link loop ends), each file listed once;
- a path that does not exist is kept, so it is reported as an error row rather than silently lost.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.images import IMAGE_EXTENSIONS


@dataclass
class ExpandedInputs:
    paths: list[Path] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # folders/patterns that held no image


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _hidden(name: str) -> bool:
    return name.startswith(".")


def images_under(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted), skipping hidden files and folders.

    Links are followed, but each real folder is entered once (by ``(st_dev, st_ino)``), so a loop
    such as ``up -> ..`` ends; special files are left for the decoder to refuse by type, unopened.
    """
    found, entered = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in entered:
            dirs[:] = []  # top-down walk: emptying dirs keeps os.walk from descending the loop
            continue
        entered.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not _hidden(d))  # pruning here keeps os.walk out of them
        found += [Path(root) / f for f in sorted(files) if not _hidden(f) and is_image_name(Path(f))]
    return found


def _expand_pattern(pattern: str) -> list[Path]:
    found: list[Path] = []
    # glob's "*" never matches names starting with "." (include_hidden defaults to False).
    for match in sorted(glob.glob(pattern, recursive=True)):
        p = Path(match)
        if p.is_dir():
            found += images_under(p)
        elif is_image_name(p):
            found.append(p)
    return found


def expand_inputs(inputs: Sequence[str]) -> ExpandedInputs:
    """Paths for ``inputs`` in the order given, each file once."""
    out = ExpandedInputs()
    seen: set[str] = set()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = images_under(p)
        elif p.exists() or not glob.has_magic(raw):
            found = [p]
        else:
            found = _expand_pattern(raw)
        if not found:
            out.empty.append(raw)
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                out.paths.append(f)
    return out
