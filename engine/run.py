"""Where a run lives and where it starts from: run folders, ``--resume PATH|auto``, config merging."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.checkpoint import RESUME_KEYS, load_checkpoint
from common.errors import AppError, UsageError
from common.runlock import RunLock, RunLocked
from common.spelling import plural
from settings.config import LR_AUTO, Config, from_dict

# Settings a resumed run cannot change: they define the model, its data, the optimizer's state or the
# schedule's shape, all restored from the checkpoint (a new value would be recorded but not used).
FROZEN_ON_RESUME = (
    "model",
    "width",
    "depth",
    "widths",
    "dataset",
    "image_size",
    "val_split",
    "test_split",
    "scheduler",
    "scheduler_params",
    "warmup_epochs",
    "warmup_steps",
    "warmup_mode",
    "warmup_start_factor",
    "accum_steps",
    "batch_size",
    "optimizer",
    "lr",
    "lr_scaling",
    "weight_decay",
    "momentum",
    "backbone_lr_mult",
    "seed",
    "monitor",
    "ema",
    "pretrained",
    "pretrained_weights",
)


@dataclass
class RunStart:
    cfg: Config
    run_dir: Path
    checkpoint: dict[str, Any] | None  # None: a fresh run
    message: str
    lock: RunLock  # held from the decision to the end of the run by the writer (never taken by other ranks)


def default_run_name(cfg: Config) -> str:
    return f"{cfg.model}_{cfg.dataset}"


def is_writer() -> bool:
    """Whether this process writes the run: one process, or global rank 0 under torchrun (read from
    torchrun's environment: the process group does not exist yet when the run folder is decided)."""
    return int(os.environ.get("RANK", "0")) == 0


def _has_checkpoints(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.pt"))


def _lock(folder: Path, writer: bool) -> RunLock:
    return RunLock(folder).acquire() if writer else RunLock(folder)  # release() of an untaken lock: no-op


def _fresh_dir(cfg: Config, explicit_name: bool, writer: bool) -> tuple[Path, RunLock]:
    """A folder for a new run, locked: the named one, or the first free ``<name>_N``."""
    root = Path(cfg.checkpoint_dir)
    name = cfg.run_name or default_run_name(cfg)
    n = 1
    while True:
        folder = root / (name if n == 1 else f"{name}_{n}")
        n += 1
        if _has_checkpoints(folder) and not explicit_name:
            continue  # never overwrite an earlier run
        if explicit_name and _has_checkpoints(folder):
            raise UsageError(
                f"run folder {folder} already holds checkpoints; continue it with --resume auto, "
                f"or choose another --run_name"
            )
        try:
            lock = _lock(folder, writer)
        except RunLocked:
            if explicit_name:
                raise
            continue  # another process is starting that one
        if _has_checkpoints(folder):  # written between the look and the lock
            lock.release()
            continue
        return folder, lock


def _merge_for_resume(saved: Config, cfg: Config, cli_keys: list[str], path: Path) -> Config:
    """The checkpoint's config with this command line's settings on top; a setting the resumed run
    would not really use (restored from the checkpoint instead) is refused, not recorded."""
    updates = {k: getattr(cfg, k) for k in cli_keys if hasattr(cfg, k) and not k.startswith("scheduler_")}
    if any(k.startswith("scheduler_") for k in cli_keys):
        updates["scheduler_params"] = {**saved.scheduler_params, **cfg.scheduler_params}
    if updates.get("lr") == LR_AUTO:  # a sweep re-run: the LR chosen when the run started is kept
        del updates["lr"]
    for key in FROZEN_ON_RESUME:
        if key in updates and updates[key] != getattr(saved, key):
            raise UsageError(
                f"{path} was trained with {key}={getattr(saved, key)!r}; it cannot be resumed with "
                f"{key}={updates[key]!r} (the checkpoint's state would override it). Leave it out to "
                f"continue the run; Start a new run without --resume to change it"
            )
    return dataclasses.replace(saved, **updates)


def _resumable(ckpt: dict[str, Any], cfg: Config, cli_keys: list[str], path: Path) -> Config:
    """The resumed run's config; UsageError when ``ckpt`` cannot be continued as asked."""
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UsageError(
            f"{path} holds weights only (no {', '.join(missing)}), so there is no training to "
            f"continue; start a new run from it with --pretrained_weights {path}"
        )
    return _merge_for_resume(from_dict(ckpt["config"]), cfg, cli_keys, path)


def _newest_epoch(folder: Path, skip: Path) -> int:
    """The epoch of ``folder``'s last.pt, the run's commit point (0 when it is ``skip``, missing or
    unreadable). Numbered files are not consulted: one may be a step ahead of last.pt after a crash
    between the two writes, and resuming last.pt then really retrains that epoch."""
    last = folder / "last.pt"
    if not last.is_file() or last.resolve() == skip.resolve():
        return 0
    try:
        return int(load_checkpoint(last)["epoch"])
    except AppError:
        return 0  # a damaged last.pt: resuming an earlier file is the way back


def _resume_plan(cfg: Config, cli_keys: list[str]) -> tuple[Path, Path]:
    """(checkpoint path, run folder) of a ``--resume PATH`` command."""
    path = Path(cfg.resume)
    if "run_name" in cli_keys:
        return path, Path(cfg.checkpoint_dir) / cfg.run_name
    return path, path.parent


def start_run(cfg: Config, cli_keys: list[str]) -> RunStart:
    """Decide the run folder and the checkpoint to start from (if any), holding the folder's lock.

    The lock (common/runlock.py) is taken before any decision that depends on what the folder holds,
    so two commands aimed at one run never both start it; the caller keeps ``RunStart.lock`` for the
    whole run. Everything that can be refused from the checkpoint alone is refused before locking,
    so a refused command creates nothing.
    """
    writer = is_writer()
    explicit_name = "run_name" in cli_keys or bool(cfg.run_name)
    if not cfg.resume:
        folder, lock = _fresh_dir(cfg, explicit_name, writer)
        return RunStart(dataclasses.replace(cfg, run_name=folder.name), folder, None, f"starting run {folder}", lock)
    if cfg.resume == "auto":
        folder = Path(cfg.checkpoint_dir) / (cfg.run_name or default_run_name(cfg))
        lock = _lock(folder, writer)
        path = folder / "last.pt"
        if not path.is_file():  # new, or killed before its first last.pt: training really redoes it all
            return RunStart(
                dataclasses.replace(cfg, run_name=folder.name, resume=""),
                folder,
                None,
                f"--resume auto: no checkpoint in {folder}, starting the run fresh",
                lock,
            )
        try:
            return _resumed(cfg, cli_keys, path, folder, lock)
        except BaseException:
            lock.release()
            raise
    path, folder = _resume_plan(cfg, cli_keys)
    _resumable(load_checkpoint(path), cfg, cli_keys, path)  # refuse before locking
    if folder.resolve() != path.parent.resolve() and _has_checkpoints(folder):
        raise UsageError(f"run folder {folder} already holds checkpoints; choose another --run_name")
    lock = _lock(folder, writer)
    try:
        return _resumed(cfg, cli_keys, path, folder, lock)
    except BaseException:
        lock.release()
        raise


def _resumed(cfg: Config, cli_keys: list[str], path: Path, folder: Path, lock) -> RunStart:
    """The start of a resumed run, decided under the folder's lock."""
    ckpt = load_checkpoint(path)
    merged = _resumable(ckpt, cfg, cli_keys, path)
    if folder.resolve() == path.parent.resolve():
        newest = _newest_epoch(folder, path)
        if newest > ckpt["epoch"]:
            raise UsageError(
                f"{path} is epoch {ckpt['epoch']} but {folder} already holds epochs up to {newest}; "
                f"resuming it there would replace them. Branch from it with --run_name NEW_NAME, or "
                f"continue the run with --resume auto"
            )
    elif _has_checkpoints(folder):
        raise UsageError(f"run folder {folder} already holds checkpoints; choose another --run_name")
    merged = dataclasses.replace(merged, run_name=folder.name, resume="")
    part = ckpt.get("partial_epoch")  # saved by an interrupt inside an epoch
    where = f"epoch {ckpt['epoch']}" + (
        f" + {plural(part['batches'], 'batch')} of epoch {part['epoch']}" if part else ""
    )
    return RunStart(merged, folder, ckpt, f"resuming {path} ({where}) into {folder}", lock)
