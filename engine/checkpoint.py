"""Checkpoints: one self-describing dict, written atomically, read without running any code.

Writes go to a temp file in the same folder, are fsynced and renamed over the target, so a
crash or a full disk mid-write never leaves a broken file under the final name. Reads use
``weights_only=True``: a file carrying a pickled object that would run code is refused.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from engine import faults
from engine.errors import AppError, UsageError

VERSION = 1
TMP_PREFIX = "."  # temp files are hidden and never end in .pt: ``*.pt`` globs see only whole files
REQUIRED_KEYS = ("model", "config", "class_names", "preprocessing", "version")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename; the old file survives a failure."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.tmp-{os.getpid()}")
    view, half = memoryview(data), len(data) // 2
    try:
        with open(tmp, "wb") as f:
            # Two halves so the tests can crash or fill the disk with a half-written temp file.
            f.write(view[:half])
            f.flush()
            faults.point(f"write:{path.name}")
            f.write(view[half:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise AppError(f"could not write {path}: {e.strerror or e}. The previous file is intact; "
                       f"free disk space or choose another --checkpoint_dir, then --resume auto") from None
    _fsync_dir(path.parent)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files left by a process killed mid-write (not those of a live process)."""
    removed = []
    for tmp in Path(folder).glob(f"{TMP_PREFIX}*.tmp-*"):
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process is writing into this folder right now
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_checkpoint(state: dict[str, Any], *paths: Path) -> None:
    """Serialise ``state`` once and write it atomically to each of ``paths``."""
    buf = io.BytesIO()
    torch.save({**state, "version": VERSION}, buf)
    data = buf.getvalue()
    for path in paths:
        write_atomic(data, Path(path))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
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
