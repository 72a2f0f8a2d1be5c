"""Value checks on a resolved Config, run before any data is loaded or any file is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from common.errors import UsageError, unknown_name
from common.monitors import MONITORS
from settings.config import LR_AUTO, Config, finite_floats, stage_widths

# Upper bounds of sizes: far above any sensible run, far below what would try to allocate terabytes
# (``--image_size 100000`` asked for 50 TB before the first batch). Side in pixels; channels per stage.
MAX_IMAGE_SIDE = 4096
MAX_CHANNELS = 8192
MAX_STAGES = 64
MAX_BATCH = 65536
MAX_THREADS = 1024


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def check_warmup(cfg: Config) -> None:
    """The warmup settings (plot_schedule.py checks them too, without data or model)."""
    _require(cfg.warmup_epochs >= 0 and cfg.warmup_steps >= 0, "warmup length must be >= 0")
    _require(
        not (cfg.warmup_epochs > 0 and cfg.warmup_steps > 0), "give either --warmup_epochs or --warmup_steps, not both"
    )
    _require(
        cfg.warmup_epochs < cfg.epochs,
        f"--warmup_epochs {cfg.warmup_epochs:g} must be shorter than training (--epochs {cfg.epochs})",
    )
    _require(
        0 <= cfg.warmup_start_factor <= 1, f"--warmup_start_factor must be in [0, 1] (got {cfg.warmup_start_factor})"
    )
    _require(
        cfg.warmup_mode != "exponential" or cfg.warmup_start_factor > 0,
        "exponential warmup needs --warmup_start_factor > 0",
    )


def check_sizes(cfg: Config) -> None:
    """Sizes that decide how much memory is allocated and the model's shape: bounded (see MAX_*).
    Also run on a loaded checkpoint's config, so an edited one is refused before a model is built."""
    _require(
        cfg.image_size <= MAX_IMAGE_SIDE,
        f"--image_size must be <= {MAX_IMAGE_SIDE} pixels (got {cfg.image_size}); 0 keeps the dataset's size",
    )
    _require(cfg.width >= 1 and cfg.depth >= 1, "--width and --depth must be >= 1")
    _require(
        cfg.width <= MAX_CHANNELS and cfg.depth <= MAX_STAGES,
        f"--width must be <= {MAX_CHANNELS} and --depth <= {MAX_STAGES} (got {cfg.width}, {cfg.depth})",
    )
    widths = stage_widths(cfg)
    _require(
        len(widths) <= MAX_STAGES and all(w <= MAX_CHANNELS for w in widths),
        f"--widths: at most {MAX_STAGES} stages of at most {MAX_CHANNELS} channels (got {cfg.widths})",
    )
    _require(
        cfg.batch_size <= MAX_BATCH and cfg.accum_steps <= MAX_BATCH,
        f"--batch_size and --accum_steps must be <= {MAX_BATCH} (got {cfg.batch_size}, {cfg.accum_steps})",
    )
    _require(
        cfg.threads <= MAX_THREADS and cfg.num_workers <= MAX_THREADS,
        f"--threads and --num_workers must be <= {MAX_THREADS} (got {cfg.threads}, {cfg.num_workers})",
    )


def check_schedule(cfg: Config, also: Sequence[str] = ()) -> None:
    """The monitor, warmup mode and schedule names with their hyperparameters (plot_schedule.py checks
    these too, without data or model; ``also``: more schedule names, with their defaults)."""
    if cfg.monitor not in MONITORS:
        raise unknown_name("--monitor", cfg.monitor, MONITORS)
    from schedulers import WARMUP_MODES, resolve_params

    if cfg.warmup_mode not in WARMUP_MODES:
        raise unknown_name("--warmup_mode", cfg.warmup_mode, WARMUP_MODES)
    resolve_params(cfg.scheduler, cfg.scheduler_params, cfg.epochs, cfg.monitor)  # presets scale with --epochs
    for name in also:
        resolve_params(name, {}, cfg.epochs, cfg.monitor)


def check_config(cfg: Config) -> None:
    """Raise a one-line UsageError naming the first invalid value and what would be valid."""
    for f in dataclasses.fields(cfg):  # NaN/inf in any setting: the same check as on the way in
        if f.name != "lr" or cfg.lr != LR_AUTO:
            finite_floats(f.name, getattr(cfg, f.name))
    check_sizes(cfg)
    _require(cfg.lr == LR_AUTO or cfg.lr > 0, f"--lr must be > 0 (got {cfg.lr}), or '{LR_AUTO}' for the LR range test")
    _require(cfg.epochs >= 1, f"--epochs must be >= 1 (got {cfg.epochs})")
    _require(cfg.batch_size >= 1, f"--batch_size must be >= 1 (got {cfg.batch_size})")
    _require(cfg.accum_steps >= 1, f"--accum_steps must be >= 1 (got {cfg.accum_steps})")
    _require(
        cfg.early_stopping >= 0, f"--early_stopping PATIENCE must be >= 0 (got {cfg.early_stopping}); 0 disables it"
    )
    _require(cfg.min_delta >= 0, f"--min_delta must be >= 0 (got {cfg.min_delta})")
    _require(cfg.save_every >= 0, f"--save_every must be >= 0 (got {cfg.save_every})")
    _require(cfg.keep_last >= 0, f"--keep_last must be >= 0 (got {cfg.keep_last}; 0 keeps every epoch file)")
    check_warmup(cfg)
    _require(
        0 <= cfg.freeze_epochs <= cfg.epochs,
        f"--freeze_epochs must be in [0, --epochs {cfg.epochs}] (got {cfg.freeze_epochs}); 0 trains every layer",
    )
    _require(
        cfg.backbone_lr_mult > 0,
        f"--backbone_lr_mult must be > 0 (got {cfg.backbone_lr_mult}); to keep the backbone fixed use --freeze_epochs",
    )
    _require(
        0 < cfg.val_split < 1 and 0 <= cfg.test_split < 1 and cfg.val_split + cfg.test_split < 1,
        "--val_split must be in (0, 1), --test_split in [0, 1), and together below 1",
    )
    _require(cfg.class_weights in ("none", "auto"), f"unknown --class_weights '{cfg.class_weights}'; valid: none, auto")
    _require(0 <= cfg.label_smoothing < 1, f"--label_smoothing must be in [0, 1) (got {cfg.label_smoothing})")
    _require(0 <= cfg.ema < 1, f"--ema must be in [0, 1) (got {cfg.ema}); 0 disables it")
    _require(0 <= cfg.dropout < 1, f"--dropout must be in [0, 1) (got {cfg.dropout})")
    _require(
        not stage_widths(cfg) or cfg.model == "custom", f"--widths shapes the custom CNN only (got --model {cfg.model})"
    )
    _require(cfg.max_image_pixels >= 1, f"--max_image_pixels must be >= 1 (got {cfg.max_image_pixels})")
    _require(cfg.image_size >= 0, "--image_size must be >= 0 (0 keeps the dataset's size)")
    _require(cfg.max_nonfinite >= 1, "--max_nonfinite must be >= 1")
    _require(cfg.grad_clip >= 0, "--grad_clip must be >= 0 (0 disables it)")
    _require(cfg.threads >= 0, "--threads must be >= 0 (0 picks from the machine)")
    _require(cfg.num_workers >= -1, f"--num_workers must be >= -1 (got {cfg.num_workers}); -1 picks from the machine")
    _require(
        cfg.lr_scaling in ("none", "linear", "sqrt"),
        f"unknown --lr_scaling '{cfg.lr_scaling}'; valid: none, linear, sqrt",
    )
    _require(
        cfg.data_mode in ("auto", "memory", "stream"),
        f"unknown --data_mode '{cfg.data_mode}'; valid: auto, memory, stream",
    )
    _require(
        cfg.dataset != "folder" or Path(cfg.data_dir).is_dir(),
        f"--data_dir {cfg.data_dir} is not an existing folder; --dataset folder needs one holding "
        f"<class>/<image> files (or train/, val/, test/ with <class>/ folders): point --data_dir at it",
    )
    _require(
        cfg.resume in ("", "auto") or Path(cfg.resume).is_file(),
        f"--resume {cfg.resume}: checkpoint not found; check the path, or use --resume auto to continue "
        f"the run named by --run_name (or start it)",
    )
    # Names need the registries, which import torch: checked last, so that a mistyped value fails in
    # well under a second instead of after the multi-second torch import; and cheapest registry
    # first (schedulers, optimizers, models need torch; data also pulls in decoders and scikit-learn).
    check_schedule(cfg)
    from models import valid_model
    from models.optim import OPTIMIZERS, SCHEDULE_FREE_SCHEDULE, check_schedule_free
    from schedulers import uses_swa

    if cfg.optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", cfg.optimizer, OPTIMIZERS)
    check_schedule_free(cfg.optimizer, cfg.scheduler)
    _require(
        not (cfg.ema > 0 and cfg.scheduler == SCHEDULE_FREE_SCHEDULE),
        f"--ema and --scheduler {SCHEDULE_FREE_SCHEDULE} both average the weights; use one of them",
    )
    valid_model(cfg.model)
    from data import DATASETS
    from data.transforms import AUGMENTATIONS

    if cfg.augment not in AUGMENTATIONS:
        raise unknown_name("augmentation preset", cfg.augment, AUGMENTATIONS)
    if cfg.dataset not in DATASETS:
        raise unknown_name("dataset", cfg.dataset, DATASETS)
    _require(
        not (cfg.ema > 0 and uses_swa(cfg.scheduler, cfg.scheduler_params)),
        f"--ema and schedule '{cfg.scheduler}' (SWALR) both average the weights; use one of them",
    )
