"""Where a run lives and where it starts from: run folders, ``--resume PATH|auto``, config merging."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.checkpoint import load_checkpoint
from settings.config import Config, from_dict
from common.errors import UsageError
from common.spelling import plural

# Settings a resumed run cannot change: they define the model, its data or the schedule's shape.
FROZEN_ON_RESUME = ("model", "width", "depth", "widths", "dataset", "image_size", "scheduler", "warmup_epochs",
                    "warmup_steps", "warmup_mode", "warmup_start_factor", "accum_steps", "batch_size",
                    "backbone_lr_mult")  # its param groups are in the optimizer state


@dataclass
class RunStart:
    cfg: Config
    run_dir: Path
    checkpoint: dict[str, Any] | None  # None: a fresh run
    message: str


def default_run_name(cfg: Config) -> str:
    return f"{cfg.model}_{cfg.dataset}"


def _has_checkpoints(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.pt"))


def _fresh_dir(cfg: Config, explicit_name: bool) -> Path:
    root = Path(cfg.checkpoint_dir)
    name = cfg.run_name or default_run_name(cfg)
    folder = root / name
    if not _has_checkpoints(folder):
        return folder  # new, or left by a run killed before its first checkpoint
    if explicit_name:
        raise UsageError(f"run folder {folder} already holds checkpoints; continue it with --resume auto, "
                         f"or choose another --run_name")
    n = 2
    while _has_checkpoints(root / f"{name}_{n}"):
        n += 1
    return root / f"{name}_{n}"  # never overwrite an earlier run


def _merge_for_resume(saved: Config, cfg: Config, cli_keys: list[str], path: Path) -> Config:
    """The checkpoint's config, with the settings given on this command line on top."""
    merged = saved
    scheduler_keys = [k for k in cli_keys if k.startswith("scheduler_")]
    updates = {k: getattr(cfg, k) for k in cli_keys if hasattr(cfg, k) and not k.startswith("scheduler_")}
    if scheduler_keys:
        updates["scheduler_params"] = {**saved.scheduler_params, **cfg.scheduler_params}
    for key in FROZEN_ON_RESUME:
        if key in updates and updates[key] != getattr(saved, key):
            raise UsageError(f"{path} was trained with {key}={getattr(saved, key)!r}; it cannot be resumed with "
                             f"{key}={updates[key]!r}. Start a new run without --resume")
    merged = dataclasses.replace(merged, **updates)
    return merged


def start_run(cfg: Config, cli_keys: list[str]) -> RunStart:
    """Decide the run folder and the checkpoint to start from (if any)."""
    explicit_name = "run_name" in cli_keys or bool(cfg.run_name)
    if not cfg.resume:
        folder = _fresh_dir(cfg, explicit_name)
        return RunStart(dataclasses.replace(cfg, run_name=folder.name), folder, None, f"starting run {folder}")
    if cfg.resume == "auto":
        folder = Path(cfg.checkpoint_dir) / (cfg.run_name or default_run_name(cfg))
        path = folder / "last.pt"
        if not path.is_file():
            return RunStart(dataclasses.replace(cfg, run_name=folder.name, resume=""), folder, None,
                            f"--resume auto: no checkpoint in {folder}, starting the run fresh")
    else:
        path = Path(cfg.resume)
    ckpt = load_checkpoint(path)
    merged = _merge_for_resume(from_dict(ckpt["config"]), cfg, cli_keys, path)
    if "run_name" in cli_keys and cfg.resume != "auto":
        folder = Path(merged.checkpoint_dir) / cfg.run_name
        if folder.resolve() != path.parent.resolve() and _has_checkpoints(folder):
            raise UsageError(f"run folder {folder} already holds checkpoints; choose another --run_name")
    else:
        folder = path.parent
    merged = dataclasses.replace(merged, run_name=folder.name, resume="")
    part = ckpt.get("partial_epoch")  # saved by an interrupt inside an epoch
    where = f"epoch {ckpt['epoch']}" + (f" + {plural(part['batches'], 'batch')} of epoch {part['epoch']}"
                                        if part else "")
    return RunStart(merged, folder, ckpt, f"resuming {path} ({where}) into {folder}")
