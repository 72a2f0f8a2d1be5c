"""What the web page may list and open: the runs under ``--checkpoint_dir`` and their files.

Plain Python (no Streamlit), so it is tested directly. The folder is walked without following
links, and every file is read through :class:`webapp.boundary.Boundary`, so nothing outside the
checkpoint folder is listed or opened. Runs are grouped by dataset and model (from each run's
``config.yaml``): the page never puts digits and Fashion-MNIST runs side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import AppError
from common.run_files import SUMMARY, read_summary
from webapp.boundary import Boundary

SMALL_FILE = 4 * 1024 * 1024  # summary.json / config.yaml are a few KB: anything past this is not ours
MODEL_SUFFIXES = (".pt", ".onnx")


@dataclass
class RunInfo:
    name: str  # folder path relative to the checkpoint folder ("." for the folder itself)
    checkpoints: list[str] = field(default_factory=list)  # file names, best.pt first
    summary: dict[str, Any] = field(default_factory=dict)  # empty: unfinished (no valid summary.json)
    dataset: str = "?"
    model: str = "?"
    problem: str = ""  # why summary.json or config.yaml could not be read (one line)

    @property
    def group(self) -> str:
        """The comparability group the page shows runs in: dataset and model."""
        return f"{self.dataset} · {self.model}"


def _is_model_file(name: str) -> bool:
    return not name.startswith(".") and name.endswith(MODEL_SUFFIXES) and not name.endswith(".torchscript.pt")


def _model_files(box: Boundary, rel: str, names: list[str]) -> list[str]:
    files = []
    for n in names:
        try:
            if _is_model_file(n) and box.file(rel, n):
                files.append(n)
        except AppError:  # a link to a file outside the folder: not offered
            continue
    order = {"best.pt": 0, "last.pt": 1}
    return sorted(files, key=lambda n: (order.get(n, 2), n))


def _read_run(box: Boundary, rel: str, files: list[str]) -> RunInfo:
    import yaml

    run = RunInfo(rel, files)
    try:
        if box.file(rel, SUMMARY) is not None:  # AppError when it is a link to outside
            # common.run_files decides what a finished run is, for the page as for sweep and import
            run.summary = read_summary(box.resolve(rel)) or {}
            if not run.summary:
                run.problem = f"{rel}/{SUMMARY} is incomplete or not valid JSON: the run counts as unfinished"
        text = box.read_bytes(rel, "config.yaml", limit=SMALL_FILE)
        cfg = yaml.safe_load(text) if text else {}
        if isinstance(cfg, dict):
            run.dataset, run.model = str(cfg.get("dataset", "?")), str(cfg.get("model", "?"))
    except (AppError, yaml.YAMLError, UnicodeDecodeError) as e:
        run.problem = run.problem or box.one_line(e)
    return run


def list_runs(box: Boundary) -> list[RunInfo]:
    """Run folders below the checkpoint folder (any depth) that hold a checkpoint or an ONNX export.

    Links to folders are not followed (a link loop cannot trap the walk, a link to elsewhere
    cannot add runs); a model file that is a link to outside is not offered.
    """
    runs = []
    for dirpath, dirnames, filenames in os.walk(box.root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, box.root)
        files = _model_files(box, rel, filenames)
        if files:
            runs.append(_read_run(box, rel, files))
    return sorted(runs, key=lambda r: r.name)


def groups(runs: list[RunInfo]) -> dict[str, list[RunInfo]]:
    """Runs by comparability group, the largest group first."""
    out: dict[str, list[RunInfo]] = {}
    for r in runs:
        out.setdefault(r.group, []).append(r)
    return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def safe_checkpoint(box: Boundary, run: str, file: str) -> Path:
    """The resolved ``run/file`` if it is a model file inside the folder; else AppError."""
    if Path(file).name != file:
        raise AppError(f"refused: {run}/{file} is outside the checkpoint folder")
    path = box.file(run, file)
    if path is None or path.suffix not in MODEL_SUFFIXES:
        raise AppError(f"{run}/{file} is not a checkpoint in the checkpoint folder")
    return path


def run_image(box: Boundary, run: str, *candidates: str, max_pixels: int):
    """The first of ``candidates`` (names in the run folder) as a uint8 (3, H, W) tensor, with its name.

    (None, None) when none exists. An image that is unreadable, too large or a link to outside
    raises AppError with one line naming it relative to the checkpoint folder.
    """
    from data.images import ImageError, open_image

    for name in candidates:
        path = box.file(run, name)
        if path is None:
            continue
        where = f"{run}/{name}" if run != "." else name
        try:
            return open_image(path, 3, max_pixels, name=where, say_animated=False), name
        except ImageError as e:
            raise AppError(box.one_line(e)) from None
    return None, None
