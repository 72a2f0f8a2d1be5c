"""Checkpoints: one self-describing dict, written atomically, read without running any code.

Writes are atomic (:func:`common.fileio.write_atomic`): a crash or a full disk mid-write never
leaves a broken file under the final name. Reads use
``weights_only=True``: a file carrying a pickled object that would run code is refused.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, TypedDict

import torch

from common.errors import AppError, UsageError
from common.fileio import link_atomic, write_atomic

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
    numbered = [p for p in Path(folder).glob("epoch_*.pt") if p.stem[len("epoch_"):].isdigit()]
    old = sorted(numbered, key=lambda p: int(p.stem[len("epoch_"):]))[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint on the CPU, refusing code, corrupt files and unknown format versions."""
    path = Path(path)
    if not path.is_file():  # a wrong path on the command line: a usage error (exit 2)
        raise UsageError(f"checkpoint not found: {path}; check the path (runs live in "
                         f"<checkpoint_dir>/<run_name>/, e.g. checkpoints/custom_digits/last.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise AppError(f"refusing to load {path}: it contains pickled objects that could run code "
                       f"({str(e).splitlines()[0][:160]}). Only load checkpoints you trust, and re-save "
                       f"them as plain tensors") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise AppError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:120]}); use another checkpoint, e.g. an epoch_NNN.pt") from None
    if not isinstance(ckpt, dict):
        raise AppError(f"{path} is not a checkpoint of this tool (it holds a {type(ckpt).__name__})")
    version = ckpt.get("version")
    if version is None or any(k not in ckpt for k in REQUIRED_KEYS):
        raise AppError(f"{path} is not a checkpoint of this tool's format (missing "
                       f"{', '.join(k for k in REQUIRED_KEYS if k not in ckpt)})")
    if version != VERSION:
        raise AppError(f"{path} has checkpoint format version {version}; this version reads only "
                       f"version {VERSION}. Use the release that wrote it, or retrain")
    return ckpt
