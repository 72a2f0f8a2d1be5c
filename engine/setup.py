"""Everything a run trains with, built from a Config: the runtime choices, the components, and
the checkpoint that holds them (``checkpoint_state``) and gives them back (``restore``).

``fit`` (engine/trainer.py), ``lr_find.py`` and ``bench/`` build runs through these functions.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from artifacts.checkpoint import Checkpoint
from common.errors import AppError, UsageError, first_line
from common.monitors import mode_of
from common.spelling import plural
from data import DataBundle, preprocessing_of
from data.order import batch_count
from engine.early_stopping import EarlyStopping
from engine.ema import make_ema
from models import build_model
from models.optim import build_optimizer, is_schedule_free, optimizer_name
from runtime import distributed as ddp
from runtime.autotune import Choice, decide
from runtime.runtime import amp_policy, rng_state, unwrap
from schedulers import Plan, build_scheduler, is_horizon_free, make_plan, uses_swa
from settings import config as config_mod
from settings.config import Config


@dataclass
class Components:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    stopper: EarlyStopping
    ema: AveragedModel | None  # averaged weights: an EMA per update (--ema) or SWA per epoch (SWALR)
    plan: Plan
    swa: bool = False  # ema is SWA's equal average, updated at SWA epoch ends
    runtime: dict = field(default_factory=dict)  # the auto choices and their evidence (autotune.Choice)


def steps_per_epoch(num_train: int, batch_size: int, accum_steps: int, world: int = 1) -> int:
    """Optimizer updates per epoch; under torchrun a batch is ``batch_size`` on each of ``world`` ranks."""
    return math.ceil(batch_count(num_train, batch_size, (0, world), lockstep=True) / accum_steps)


def build_components(cfg: Config, bundle: DataBundle, device: torch.device, amp) -> Components:
    """The model (on ``device``, wrapped for DDP under torchrun), optimizer, schedule, scaler, early
    stopping and averaged weights of a run, fresh."""
    model = build_model(
        cfg.model,
        len(bundle.class_names),
        bundle.channels,
        bundle.image_size[0],
        **config_mod.model_args(cfg),
        pretrained=cfg.pretrained,
        pretrained_weights=cfg.pretrained_weights,
        verbose=True,
    ).to(device)
    if cfg.channels_last == "on":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(
        optimizer_name(cfg.optimizer, cfg.scheduler),
        model,
        ddp.scaled_lr(cfg.lr, cfg.lr_scaling),
        cfg.weight_decay,
        cfg.momentum,
        cfg.backbone_lr_mult,
    )
    spe = steps_per_epoch(len(bundle.train), cfg.batch_size, cfg.accum_steps, ddp.world())
    plan = make_plan(cfg.epochs, spe, cfg.warmup_epochs, cfg.warmup_steps, cfg.monitor)
    scheduler = build_scheduler(
        optimizer, cfg.scheduler, cfg.scheduler_params, plan, cfg.warmup_mode, cfg.warmup_start_factor
    )
    ema = None
    swa = uses_swa(cfg.scheduler, cfg.scheduler_params)
    if cfg.ema > 0:
        ema = make_ema(model, cfg.ema)
    elif swa:  # equal average of parameters; BN statistics are recomputed for it (update_bn)
        ema = AveragedModel(model)
    return Components(
        ddp.wrap(model, device, cfg.sync_bn, partly_frozen=cfg.freeze_epochs > 0),
        optimizer,
        scheduler,
        amp.make_scaler(),
        EarlyStopping(cfg.early_stopping, cfg.min_delta, mode_of(cfg.monitor)),
        ema,
        plan,
        swa,
    )


def eval_model(c: Components) -> nn.Module:
    """The weights evaluation uses: the EMA average when enabled, else the trained model."""
    # An SWA average exists only from its first epoch on; until then the trained model is evaluated.
    return c.ema.module if c.ema is not None and c.ema.n_averaged > 0 else unwrap(c.model)  # no DDP collectives


# Training batches that re-estimate BatchNorm statistics at the schedule-free average (the package
# README's recipe uses 50; PreciseBN-style: a cumulative average, as torch's update_bn computes it).
SCHEDULE_FREE_BN_BATCHES = 50


def schedule_free_eval(c: Components, bn_loader, device: torch.device) -> None:
    """A schedule-free optimizer's weights become its average x, the point to evaluate, save and export;
    BatchNorm statistics gathered while training at y are recomputed at x (schedulefree's README). The
    next ``train_one_epoch`` switches back (optimizer.train()). Other optimizers: nothing to do."""
    if not is_schedule_free(c.optimizer):
        return
    c.optimizer.eval()
    update_bn(itertools.islice(bn_loader, SCHEDULE_FREE_BN_BATCHES), unwrap(c.model), device)
    ddp.broadcast_buffers(c.model)  # every rank evaluates (and rank 0 saves) rank 0's statistics


def train_weights_at_eval_point(c: Components) -> dict[str, torch.Tensor] | None:
    """Inside an epoch (an interrupt): switch a schedule-free optimizer to x for the checkpoint's
    ``model`` (evaluate.py reads the average) and return y, the training point, saved beside it so
    that the resumed run continues from y to the last bit. None for other optimizers."""
    if not is_schedule_free(c.optimizer):
        return None
    y = {k: v.detach().clone() for k, v in unwrap(c.model).state_dict().items()}
    c.optimizer.eval()
    return y


def runtime_choice(
    cfg: Config, bundle: DataBundle, device: torch.device, threads: int, recorded: dict | None
) -> Choice:
    """AMP and memory format for this run: ``auto`` measured (runtime/autotune.py), on/off as given."""
    if recorded and (cfg.amp, cfg.channels_last) == (
        ("on" if recorded["amp"] else "off"),
        ("on" if recorded["channels_last"] else "off"),
    ):
        # Resumed with the run's own choices: replayed exactly, not measured or re-judged today.
        fields = {k: v for k, v in recorded.items() if k in Choice.__dataclass_fields__}
        return Choice(
            **{**fields, "reason": f"recorded in the checkpoint ({recorded['reason']})", "warning": "", "cached": False}
        )
    k, (h, w) = len(bundle.class_names), bundle.image_size

    def model_fn() -> nn.Module:  # a throwaway copy of the run's model, for timing only
        return build_model(cfg.model, k, bundle.channels, h, **config_mod.model_args(cfg))

    return decide(
        cfg.amp,
        cfg.amp_dtype,
        cfg.channels_last,
        device=device,
        threads=threads,
        model_fn=model_fn,
        model_key=config_mod.architecture_key(cfg, k),
        shape=(cfg.batch_size, bundle.channels, h, w),
        num_classes=k,
    )


def resolve_runtime(
    cfg: Config, bundle: DataBundle, device: torch.device, threads: int, recorded: dict | None
) -> tuple[Config, Choice, Any]:
    """The run's AMP, memory format and threads, decided once and written into its config.

    The decisions go into config.yaml and checkpoints, so ``--resume`` replays them exactly. Every
    rank takes rank 0's measured choice (each measuring alone could differ by noise).
    """
    choice = ddp.from_main(runtime_choice(cfg, bundle, device, threads, recorded))
    cfg = dataclasses.replace(
        cfg,
        threads=threads,
        amp="on" if choice.amp else "off",
        amp_dtype=choice.dtype if choice.amp else cfg.amp_dtype,
        channels_last="on" if choice.channels_last else "off",
    )
    return cfg, choice, amp_policy(choice.amp, choice.dtype, device)


def compiled(model: nn.Module, device: torch.device) -> nn.Module:
    """``--compile``: torch.compile for training. The default mode: CUDA graphs ("reduce-overhead")
    would need a fixed batch shape and no host-side work per step; max-autotune's minutes of kernel
    search rarely pay off in one run. The last, smaller batch of an epoch compiles once more."""
    if ddp.is_main():
        print(f"--compile: torch.compile(mode='default') on {device.type}; the first steps compile (cold start)")
    return torch.compile(model, mode="default")


# ---------------------------------------------------------------- the checkpoint, both ways
def checkpoint_state(
    c: Components,
    cfg: Config,
    bundle: DataBundle,
    epoch: int,
    global_step: int,
    history: list[dict],
    nonfinite: int = 0,
    partial: dict | None = None,
) -> Checkpoint:
    """Everything needed to continue exactly; ``epoch`` counts completed epochs, ``partial`` is the
    position and accumulators inside the next one when an interrupt cut it short. A schedule-free
    optimizer is saved in eval mode (its README asks it): ``model`` is the average x."""
    train_weights = train_weights_at_eval_point(c) if partial is not None else None
    return Checkpoint(
        world_size=ddp.world(),  # resume with the same world size is exact; see rank_states
        rank_states=ddp.gather_to_main({"rng": rng_state(), "partial": partial}) if ddp.is_dist() else None,
        nonfinite_consecutive=nonfinite,  # the guard's count must not reset on resume
        partial_epoch=partial,
        model=unwrap(c.model).state_dict(),
        ema=c.ema.state_dict() if c.ema is not None else None,
        optimizer=c.optimizer.state_dict(),
        train_weights=train_weights,
        scheduler=c.scheduler.state_dict(),
        scaler=c.scaler.state_dict(),
        early_stopping=c.stopper.state_dict(),
        epoch=epoch,
        global_step=global_step,
        best_metric=c.stopper.best,
        rng=rng_state(),
        config=config_mod.to_dict(cfg),
        class_names=list(bundle.class_names),
        preprocessing=preprocessing_of(bundle),
        history=history,
        runtime=c.runtime,
    )


def restore(c: Components, ckpt: Checkpoint, cfg: Config, num_classes: int) -> None:
    """Put a checkpoint's state into freshly built components (the inverse of ``checkpoint_state``)."""
    saved = config_mod.from_dict(ckpt["config"])
    if len(ckpt["class_names"]) != num_classes:
        raise UsageError(
            f"the checkpoint has {len(ckpt['class_names'])} classes but dataset '{cfg.dataset}' has "
            f"{num_classes}; start a new run without --resume"
        )
    if saved.epochs != cfg.epochs and not is_horizon_free(cfg.scheduler, cfg.scheduler_params):
        raise UsageError(
            f"schedule '{cfg.scheduler}' was laid out for {plural(saved.epochs, 'epoch')}; changing "
            f"--epochs to {cfg.epochs} on resume would bend its curve. Keep --epochs {saved.epochs}, or "
            f"use a schedule that does not depend on the length (step, plateau, exponential)"
        )
    try:
        unwrap(c.model).load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"checkpoint weights do not fit model '{cfg.model}': {first_line(e)}") from None
    try:
        c.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("world_size", 1) == ddp.world():
            c.scheduler.load_state_dict(ckpt["scheduler"])
        else:  # updates per epoch changed with the global batch: replay the finished epochs at the new length
            replay_schedule(c.scheduler, c.plan.steps_per_epoch, ckpt.get("history", [])[: ckpt["epoch"]], cfg.monitor)
        c.scaler.load_state_dict(ckpt["scaler"])
        c.stopper.load_state_dict(ckpt["early_stopping"])
        if c.ema is not None and ckpt.get("ema") is not None:
            c.ema.load_state_dict(ckpt["ema"])
        if ckpt.get("train_weights") is not None:  # schedule-free, saved inside an epoch: continue from y itself
            c.optimizer.train()
            unwrap(c.model).load_state_dict(ckpt["train_weights"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        # engine/run.py refuses every setting change that could cause this: what is left is a damaged
        # or hand-made checkpoint.
        raise AppError(
            f"the training state in the checkpoint does not fit this run "
            f"({type(e).__name__}: {first_line(e)}); the file is damaged or was edited. Resume another "
            f"checkpoint of the run, or start a new run from its weights with --pretrained_weights"
        ) from None


def replay_schedule(scheduler, steps_per_epoch: int, history: list[dict], monitor: str) -> None:
    """Step a fresh schedule through finished epochs (plateau decisions from their ``monitor`` values,
    as the live loop made them)."""
    with warnings.catch_warnings():  # no optimizer.step() happens here, on purpose
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for row in history:
            for _ in range(steps_per_epoch):
                scheduler.step_update()
            scheduler.step_epoch(row[monitor])
