"""What the web page may show and open: the runs under ``--checkpoint_dir``, its results database, uploads.

Everything here is plain Python (no Streamlit), so it is tested directly. The page only opens
checkpoint files found by scanning the checkpoint folder, and ``safe_checkpoint`` re-checks every
path it is given: a name with ``..``, an absolute path or a symlink that leads outside the folder
is refused.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import AppError
from common.run_files import read_summary
from resultsdb.db import DB_FILE

MB = 1024 * 1024
LEADERBOARD_COLUMNS = ("run_dir", "model_name", "dataset", "scheduler_type", "status", "epochs", "best_epoch",
                       "monitor", "best_metric", "test_accuracy", "test_loss")


@dataclass
class RunInfo:
    name: str  # folder path relative to the checkpoint folder
    folder: Path
    checkpoints: list[str] = field(default_factory=list)  # file names, best.pt first
    summary: dict[str, Any] = field(default_factory=dict)

    def image(self, *candidates: str) -> Path | None:
        """The first of ``candidates`` (relative paths) that exists in the run folder."""
        return next((self.folder / c for c in candidates if (self.folder / c).is_file()), None)


def _model_files(folder: Path) -> list[str]:
    files = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and (p.suffix == ".onnx" or (p.suffix == ".pt" and not p.name.endswith(".torchscript.pt")))]
    order = {"best.pt": 0, "last.pt": 1}
    return sorted(files, key=lambda n: (order.get(n, 2), n))


def list_runs(root: Path) -> list[RunInfo]:
    """Run folders below ``root`` (any depth) that hold a checkpoint or an ONNX export, sorted by name."""
    root = root.resolve()
    runs = []
    for folder in sorted({p.parent for pattern in ("*.pt", "*.onnx") for p in root.rglob(pattern)}):
        if not folder.resolve().is_relative_to(root):  # reached through a symlink pointing elsewhere
            continue
        files = _model_files(folder)
        if not files:
            continue
        summary = read_summary(folder) or {}
        runs.append(RunInfo(str(folder.relative_to(root)), folder, files, summary))
    return runs


def safe_checkpoint(root: Path, run: str, file: str) -> Path:
    """``root/run/file`` if it is a model file inside ``root`` (symlinks resolved); else AppError."""
    root = root.resolve()
    path = (root / run / file).resolve()
    if not path.is_relative_to(root) or Path(file).name != file:
        raise AppError(f"refused: {run}/{file} is outside the checkpoint folder")
    if not path.is_file() or path.suffix not in (".pt", ".onnx"):
        raise AppError(f"{run}/{file} is not a checkpoint in {root}")
    return path


def leaderboard(root: Path) -> list[dict[str, Any]] | None:
    """Rows of the results database's ``runs`` table, best test accuracy first; None without a database.

    The file is opened read-only and only the columns it has are read, so a database written by
    another version (or being written by a running training) never breaks the page.
    """
    path = root / DB_FILE
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=2)
        try:
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            cols = [c for c in LEADERBOARD_COLUMNS if c in have]
            if not cols:
                return None
            order = "test_accuracy IS NULL, test_accuracy DESC" if "test_accuracy" in have else cols[0]
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY {order}").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return [dict(zip(cols, r)) for r in rows]


def upload_problem(name: str, size: int, max_mb: float) -> str:
    """Why an upload is refused before decoding ('' when it may be decoded)."""
    from data.images import IMAGE_EXTENSIONS
    if size > max_mb * MB:
        shown = f"{size / MB:.1f} MB" if size >= MB / 10 else f"{size / 1024:.0f} KB"
        return f"{name} is {shown}; the limit is {max_mb:g} MB (--max_upload_mb)"
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        return f"{name} is not an image file (accepted: {', '.join(sorted(IMAGE_EXTENSIONS))})"
    return ""
