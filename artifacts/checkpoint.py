"""Checkpoints: one self-describing dict, written atomically, read without running any code.

Writes are atomic (:func:`common.fileio.write_atomic`): a crash or a full disk mid-write never
leaves a broken file under the final name. Reads use
``weights_only=True``: a file carrying a pickled object that would run code is refused.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any, TypedDict

import torch

from common.errors import AppError, UsageError, first_line
from common.fileio import link_atomic, write_atomic
from settings.config import from_dict
from settings.validate import MAX_IMAGE_SIDE, check_sizes

VERSION = 1  # the format version: a reader refuses any other


class Checkpoint(TypedDict, total=False):
    """Every key a checkpoint may hold: the one place they are spelled.

    A weights-only checkpoint (e.g. one written by ``bench/predict_latency.py``) holds the
    REQUIRED_KEYS; a training checkpoint holds them all, so that ``--resume`` continues exactly.
    """

    version: int  # VERSION; written by save_checkpoint
    model: dict[str, torch.Tensor]  # the unwrapped model's state_dict
    config: dict[str, Any]  # settings.config.to_dict of the run's resolved Config
    class_names: list[str]
    preprocessing: dict[str, Any]  # input_size, channels, mean, std (data.preprocessing_of)
    ema: dict[str, Any] | None  # the averaged model (EMA or SWA), when the run keeps one
    optimizer: dict[str, Any]
    train_weights: dict[str, torch.Tensor] | None  # schedule-free, saved inside an epoch: y (``model`` holds x)
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    early_stopping: dict[str, Any]  # EarlyStopping.state_dict: best, best epoch, bad epochs
    epoch: int  # completed epochs
    global_step: int  # optimizer updates so far
    best_metric: float | None  # the monitored value of the best epoch
    history: list[dict[str, Any]]  # metrics.csv's rows up to ``epoch``
    rng: dict[str, Any]  # runtime.rng_state of rank 0 (the only rank, alone)
    world_size: int  # processes that trained it: resuming with as many is exact
    rank_states: list[dict[str, Any]] | None  # under torchrun: each rank's rng and partial epoch
    partial_epoch: dict[str, Any] | None  # position and sums inside an epoch a signal cut short
    nonfinite_consecutive: int  # the non-finite guard's count: not reset by a resume
    runtime: dict[str, Any]  # AMP / channels_last decisions and their evidence, threads


KEYS = frozenset(Checkpoint.__annotations__)
REQUIRED_KEYS = ("model", "config", "class_names", "preprocessing", "version")
# What --resume needs on top: a weights-only checkpoint can seed a new run (--pretrained_weights) only.
RESUME_KEYS = ("optimizer", "scheduler", "scaler", "early_stopping", "epoch", "global_step")


def save_checkpoint(state: Checkpoint, *paths: Path) -> None:
    """Serialise ``state`` once and write it atomically under each of ``paths``, in order.

    The first path gets the file; the others become hard links to it (copies where the file
    system has no links), so ``best.pt`` and ``last.pt`` of one epoch share their bytes on disk.
    A key :class:`Checkpoint` does not declare is a programming error, refused before writing.
    """
    unknown = set(state) - KEYS
    if unknown:
        raise ValueError(f"checkpoint keys not declared in artifacts.checkpoint.Checkpoint: {sorted(unknown)}")
    buf = io.BytesIO()
    torch.save({**state, "version": VERSION}, buf)
    first, *others = [Path(p) for p in paths]
    write_atomic(buf.getvalue(), first)
    for path in others:
        link_atomic(first, path)


def prune_epoch_files(folder: Path, keep: int) -> list[Path]:
    """``--keep_last N``: delete all but the ``keep`` newest ``epoch_NNN.pt`` (0 keeps them all)."""
    if keep <= 0:
        return []
    numbered = [p for p in Path(folder).glob("epoch_*.pt") if p.stem[len("epoch_") :].isdigit()]
    old = sorted(numbered, key=lambda p: int(p.stem[len("epoch_") :]))[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint on the CPU, refusing code, corrupt files and unknown format versions."""
    path = Path(path)
    if not path.is_file():  # a wrong path on the command line: a usage error (exit 2)
        raise UsageError(
            f"checkpoint not found: {path}; check the path (runs live in "
            f"<checkpoint_dir>/<run_name>/, e.g. checkpoints/custom_digits/last.pt)"
        )
    if path.stat().st_size == 0:
        raise AppError(
            f"checkpoint {path} is empty (0 bytes): a copy or download that did not finish; "
            f"use another checkpoint, e.g. an epoch_NNN.pt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise AppError(
            f"refusing to load {path}: it contains pickled objects that could run code "
            f"({first_line(e)}). Only load checkpoints you trust, and re-save "
            f"them as plain tensors"
        ) from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise AppError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: "
            f"{first_line(e, 120)}); use another checkpoint, e.g. an epoch_NNN.pt"
        ) from None
    if not isinstance(ckpt, dict):
        raise AppError(f"{path} is not a checkpoint of this tool (it holds a {type(ckpt).__name__})")
    version = ckpt.get("version")
    if version is None or any(k not in ckpt for k in REQUIRED_KEYS):
        raise AppError(
            f"{path} is not a checkpoint of this tool's format (missing "
            f"{', '.join(k for k in REQUIRED_KEYS if k not in ckpt)})"
        )
    if version != VERSION:
        raise AppError(
            f"{path} has checkpoint format version {version}; this version reads only "
            f"version {VERSION}. Use the release that wrote it, or retrain"
        )
    check_fields(ckpt, path)
    return ckpt


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _field_problem(ckpt: dict[str, Any]) -> str:
    """What is wrong with the fields every reader trusts ("" when nothing): their types and sizes."""
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        return "'model' is not a state_dict of tensors"
    if not isinstance(ckpt["config"], dict):
        return f"'config' is a {type(ckpt['config']).__name__}, not a mapping of settings"
    names = ckpt["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        return f"'class_names' must be a non-empty list of names, got {type(names).__name__}"
    pre = ckpt["preprocessing"]
    if not isinstance(pre, dict):
        return f"'preprocessing' is a {type(pre).__name__}, not a mapping"
    size, channels = pre.get("input_size"), pre.get("channels")  # absent in old files: model_io says so
    if "input_size" in pre and not (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(_is_int(v) and 1 <= v <= MAX_IMAGE_SIDE for v in size)
    ):
        return f"'preprocessing.input_size' must be [height, width] of 1..{MAX_IMAGE_SIDE} pixels, got {size!r:.60}"
    if "channels" in pre and not (_is_int(channels) and 1 <= channels <= 4):
        return f"'preprocessing.channels' must be 1 to 4, got {channels!r:.40}"
    for key in ("mean", "std"):
        v = pre.get(key)
        if key in pre and not (
            isinstance(v, list) and all(_is_number(x) for x in v) and ("channels" not in pre or len(v) == channels)
        ):
            return f"'preprocessing.{key}' must be one finite number per channel, got {v!r:.60}"
    if "std" in pre and any(x <= 0 for x in pre["std"]):
        return "'preprocessing.std' must be positive"
    for key in ("epoch", "global_step", "world_size", "nonfinite_consecutive"):
        if key in ckpt and not (_is_int(ckpt[key]) and ckpt[key] >= 0):
            return f"'{key}' must be a count (an integer >= 0), got {ckpt[key]!r:.40}"
    if ckpt.get("best_metric") is not None and not isinstance(ckpt["best_metric"], (int, float)):
        return f"'best_metric' must be a number, got {ckpt['best_metric']!r:.40}"
    for key in ("optimizer", "scheduler", "scaler", "early_stopping", "rng", "runtime"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            return f"'{key}' must be a mapping, got {type(ckpt[key]).__name__}"
    for key in ("ema", "partial_epoch"):
        if ckpt.get(key) is not None and not isinstance(ckpt[key], dict):
            return f"'{key}' must be a mapping or empty, got {type(ckpt[key]).__name__}"
    history = ckpt.get("history", [])
    if not isinstance(history, list) or not all(isinstance(r, dict) and _is_int(r.get("epoch")) for r in history):
        return "'history' must be a list of epoch rows"
    return ""


def check_fields(ckpt: dict[str, Any], path: Path) -> None:
    """The one check of a loaded checkpoint's fields, so no reader meets a wrong type later: raises
    AppError naming the file and the field (a damaged or hand-edited checkpoint)."""
    problem = _field_problem(ckpt)
    if not problem:
        try:
            check_sizes(from_dict(ckpt["config"], source=f"the config saved in {path}"))
        except UsageError as e:
            problem = f"its saved config is invalid: {e}"
    if problem:
        raise AppError(
            f"{path} is damaged or was edited: {problem}; use another checkpoint of the run "
            f"(e.g. an epoch_NNN.pt) or retrain"
        )
