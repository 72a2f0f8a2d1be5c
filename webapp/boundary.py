"""The page's folder boundary: every file it reads is resolved here and must lie inside ``--checkpoint_dir``.

One check for every read (checkpoints, images, JSON, the results database): the path is resolved
with ``realpath`` (every symlink on the way followed, the file's own included) and refused unless the
result is inside the resolved checkpoint folder. So a run folder that is a link to elsewhere, or a
``curves.png`` that is a link to a file outside, is refused like ``../secret``. Messages name files
relative to the checkpoint folder: the page never shows a server path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from common.errors import AppError

# An absolute path inside a message (Python's, Pillow's, SQLite's ...): shown as its last part.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/:,;()]+/)+([^\s'\",;:()]*)")


class Boundary:
    """The resolved checkpoint folder, and the one way the page turns a relative name into a file."""

    def __init__(self, root: str | Path):
        self.root = Path(os.path.realpath(root))

    def resolve(self, *parts: str | Path) -> Path:
        """``root/parts...`` with every link resolved; AppError unless it lies inside the folder."""
        name = "/".join(str(p) for p in parts)
        path = Path(os.path.realpath(self.root.joinpath(*parts)))
        if not path.is_relative_to(self.root):
            raise AppError(f"refused: {name} is outside the checkpoint folder")
        return path

    def file(self, *parts: str | Path) -> Path | None:
        """The resolved regular file ``root/parts...``; None when there is none; AppError when it leads outside."""
        path = self.resolve(*parts)
        return path if path.is_file() else None

    def read_bytes(self, *parts: str | Path, limit: int) -> bytes | None:
        """The bytes of a file inside the folder (None when absent); refused above ``limit`` bytes."""
        path = self.file(*parts)
        if path is None:
            return None
        name = "/".join(str(p) for p in parts)
        try:
            size = path.stat().st_size
            if size > limit:
                raise AppError(f"{name} is {size:,} bytes; the page reads at most {limit:,}")
            return path.read_bytes()
        except OSError as e:
            raise AppError(f"cannot read {name} ({e.strerror or type(e).__name__})") from None

    def relative(self, path: str | Path) -> str | None:
        """``path`` (absolute, e.g. a results database's ``run_dir``) relative to the folder; None outside it."""
        resolved = Path(os.path.realpath(path))
        return str(resolved.relative_to(self.root)) if resolved.is_relative_to(self.root) else None

    def one_line(self, error: BaseException | str) -> str:
        """An error as one line without server paths (the folder's own prefix dropped, other paths shortened)."""
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        text = lines[0] if lines else type(error).__name__
        text = text.replace(f"{self.root}/", "").replace(str(self.root), "the checkpoint folder")
        return ABSOLUTE_PATH.sub(lambda m: m.group(1) or "…", text)
