"""``fit``: build everything from a Config, train epoch by epoch, checkpoint, stop, report.

The order of work inside an epoch end is fixed so that a resumed run replays exactly: validate,
step the schedule, update early stopping, record the row, then save (RNG state included).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from common import faults
from common.errors import AppError, UsageError
from common.fileio import remove_stale_temps
from data import DataBundle, prepare_data, preprocessing_of
from data.loader import balanced_sample_weights, loss_weights, make_loader
from data.order import batch_count
from engine import config as config_mod
from engine import distributed as ddp
from engine import trial_report
from engine.autotune import Choice, decide
from engine.checkpoint import prune_epoch_files, save_checkpoint
from engine.config import Config
from engine.early_stopping import EarlyStopping
from engine.ema import make_ema
from engine.history import CurvesWriter, write_metrics_csv
from engine.interrupt import GracefulStop
from engine.loop import (NonFiniteGuard, epoch_summary, evaluate, global_stats, predict_logits, scores,
                         train_one_epoch)
from engine.lr_finder import LRFind, range_test, report, write_outputs
from engine.model_io import load_model_from_checkpoint
from engine.optim import build_optimizer
from engine.recorder import RunRecorder, class_metrics
from engine.run import start_run
from engine.runtime import amp_policy, resolve_device, rng_state, seed_everything, set_rng_state, set_threads, unwrap
from engine.tensorboard import TensorBoardSink
from models import build_model, set_backbone_frozen
from schedulers import Plan, build_scheduler, is_horizon_free, make_plan, uses_swa


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
    model = build_model(cfg.model, len(bundle.class_names), bundle.channels, bundle.image_size[0],
                        **config_mod.model_args(cfg), pretrained=cfg.pretrained,
                        pretrained_weights=cfg.pretrained_weights, verbose=True).to(device)
    if cfg.channels_last == "on":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model, ddp.scaled_lr(cfg.lr, cfg.lr_scaling), cfg.weight_decay,
                                cfg.momentum, cfg.backbone_lr_mult)
    spe = steps_per_epoch(len(bundle.train), cfg.batch_size, cfg.accum_steps, ddp.world())
    plan = make_plan(cfg.epochs, spe, cfg.warmup_epochs, cfg.warmup_steps, cfg.monitor)
    scheduler = build_scheduler(optimizer, cfg.scheduler, cfg.scheduler_params, plan,
                                cfg.warmup_mode, cfg.warmup_start_factor)
    mode = "min" if cfg.monitor == "val_loss" else "max"
    ema = None
    swa = uses_swa(cfg.scheduler, cfg.scheduler_params)
    if cfg.ema > 0:
        ema = make_ema(model, cfg.ema)
    elif swa:  # equal average of parameters; BN statistics are recomputed for it (update_bn)
        ema = AveragedModel(model)
    return Components(ddp.wrap(model, device, cfg.sync_bn, partly_frozen=cfg.freeze_epochs > 0), optimizer, scheduler, amp.make_scaler(),
                      EarlyStopping(cfg.early_stopping, cfg.min_delta, mode), ema, plan, swa)


def restore(c: Components, ckpt: dict[str, Any], cfg: Config, num_classes: int) -> None:
    saved = config_mod.from_dict(ckpt["config"])
    if len(ckpt["class_names"]) != num_classes:
        raise UsageError(f"the checkpoint has {len(ckpt['class_names'])} classes but dataset '{cfg.dataset}' has "
                         f"{num_classes}; start a new run without --resume")
    if saved.epochs != cfg.epochs and not is_horizon_free(cfg.scheduler, cfg.scheduler_params):
        raise UsageError(f"schedule '{cfg.scheduler}' was laid out for {saved.epochs} epochs; changing --epochs "
                         f"to {cfg.epochs} on resume would bend its curve. Keep --epochs {saved.epochs}, or use "
                         f"a schedule that does not depend on the length (step, plateau, exponential)")
    try:
        unwrap(c.model).load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"checkpoint weights do not fit model '{cfg.model}': {str(e).splitlines()[0]}") from None
    c.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("world_size", 1) == ddp.world():
        c.scheduler.load_state_dict(ckpt["scheduler"])
    else:  # updates per epoch changed with the global batch: replay the finished epochs at the new length
        replay_schedule(c.scheduler, c.plan.steps_per_epoch, ckpt.get("history", [])[:ckpt["epoch"]], cfg.monitor)
    c.scaler.load_state_dict(ckpt["scaler"])
    c.stopper.load_state_dict(ckpt["early_stopping"])
    if c.ema is not None and ckpt.get("ema") is not None:
        c.ema.load_state_dict(ckpt["ema"])


def replay_schedule(scheduler, steps_per_epoch: int, history: list[dict], monitor: str) -> None:
    """Step a fresh schedule through finished epochs (plateau decisions from their ``monitor`` values,
    as the live loop made them)."""
    with warnings.catch_warnings():  # no optimizer.step() happens here, on purpose
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for row in history:
            for _ in range(steps_per_epoch):
                scheduler.step_update()
            scheduler.step_epoch(row[monitor])


def checkpoint_state(c: Components, cfg: Config, bundle: DataBundle, epoch: int, global_step: int,
                     history: list[dict], nonfinite: int = 0, partial: dict | None = None) -> dict[str, Any]:
    """Everything needed to continue exactly; ``epoch`` counts completed epochs, ``partial`` is the
    position and accumulators inside the next one when an interrupt cut it short."""
    return {
        "world_size": ddp.world(),  # resume with the same world size is exact; see rank_states
        "rank_states": ddp.gather_to_main({"rng": rng_state(), "partial": partial}) if ddp.is_dist() else None,
        "nonfinite_consecutive": nonfinite,  # the guard's count must not reset on resume
        "partial_epoch": partial,
        "model": unwrap(c.model).state_dict(),
        "ema": c.ema.state_dict() if c.ema is not None else None,
        "optimizer": c.optimizer.state_dict(),
        "scheduler": c.scheduler.state_dict(),
        "scaler": c.scaler.state_dict(),
        "early_stopping": c.stopper.state_dict(),
        "epoch": epoch,
        "global_step": global_step,
        "best_metric": c.stopper.best,
        "rng": rng_state(),
        "config": config_mod.to_dict(cfg),
        "class_names": list(bundle.class_names),
        "preprocessing": preprocessing_of(bundle),
        "history": history,
        "runtime": c.runtime,
    }


def runtime_choice(cfg: Config, bundle: DataBundle, device: torch.device, threads: int,
                   recorded: dict | None) -> Choice:
    """AMP and memory format for this run: ``auto`` measured (engine/autotune.py), on/off as given."""
    if recorded and (cfg.amp, cfg.channels_last) == (("on" if recorded["amp"] else "off"),
                                                     ("on" if recorded["channels_last"] else "off")):
        # Resumed with the run's own choices: replayed exactly, not measured or re-judged today.
        fields = {k: v for k, v in recorded.items() if k in Choice.__dataclass_fields__}
        return Choice(**{**fields, "reason": f"recorded in the checkpoint ({recorded['reason']})",
                         "warning": "", "cached": False})
    k, (h, w) = len(bundle.class_names), bundle.image_size

    def model_fn() -> nn.Module:  # a throwaway copy of the run's model, for timing only
        return build_model(cfg.model, k, bundle.channels, h, **config_mod.model_args(cfg))

    return decide(cfg.amp, cfg.amp_dtype, cfg.channels_last, device, threads, model_fn,
                  config_mod.architecture_key(cfg, k), (cfg.batch_size, bundle.channels, h, w), k)


def resolve_runtime(cfg: Config, bundle: DataBundle, device: torch.device, threads: int, recorded: dict | None
                    ) -> tuple[Config, Choice, Any]:
    """The run's AMP, memory format and threads, decided once and written into its config.

    The decisions go into config.yaml and checkpoints, so ``--resume`` replays them exactly. Every
    rank takes rank 0's measured choice (each measuring alone could differ by noise).
    """
    choice = ddp.from_main(runtime_choice(cfg, bundle, device, threads, recorded))
    cfg = dataclasses.replace(cfg, threads=threads, amp="on" if choice.amp else "off",
                              amp_dtype=choice.dtype if choice.amp else cfg.amp_dtype,
                              channels_last="on" if choice.channels_last else "off")
    return cfg, choice, amp_policy(choice.amp, choice.dtype, device)


def compiled(model: nn.Module, device: torch.device) -> nn.Module:
    """``--compile``: torch.compile for training. The default mode: CUDA graphs ("reduce-overhead")
    would need a fixed batch shape and no host-side work per step; max-autotune's minutes of kernel
    search rarely pay off in one run. The last, smaller batch of an epoch compiles once more."""
    if ddp.is_main():
        print(f"--compile: torch.compile(mode='default') on {device.type}; the first steps compile (cold start)")
    return torch.compile(model, mode="default")


def eval_model(c: Components) -> nn.Module:
    """The weights evaluation uses: the EMA average when enabled, else the trained model."""
    # An SWA average exists only from its first epoch on; until then the trained model is evaluated.
    return c.ema.module if c.ema is not None and c.ema.n_averaged > 0 else unwrap(c.model)  # no DDP collectives


def fit(cfg: Config, cli_keys: list[str], progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume) a run and return its summary."""
    start = start_run(cfg, cli_keys)
    cfg, run_dir = start.cfg, start.run_dir
    seed_everything(cfg.seed, cfg.deterministic)  # before CUDA starts: --deterministic sets cuBLAS up
    device = ddp.setup(cfg.device)  # None unless started by torchrun
    say = print if ddp.is_main() else _silent  # one writer: global rank 0
    say(start.message)
    threads = set_threads(cfg.threads or (ddp.threads_per_rank() if device else 0))
    device = device or resolve_device(cfg.device)
    bundle = prepare_data(cfg, start.checkpoint["class_names"] if start.checkpoint is not None else None)
    recorded = start.checkpoint and start.checkpoint.get("runtime")
    cfg, choice, amp = resolve_runtime(cfg, bundle, device, threads, recorded)
    if cfg.lr == config_mod.LR_AUTO:  # resuming (e.g. a sweep's re-run) keeps the LR chosen at the start
        cfg = (choose_lr(cfg, bundle, device, amp, run_dir / "lr_find") if start.checkpoint is None
               else dataclasses.replace(cfg, lr=float(start.checkpoint["config"]["lr"])))
    c = build_components(cfg, bundle, device, amp)
    c.runtime = {**asdict(choice), "threads": threads}
    cl = choice.channels_last
    ddp.decorrelate_rng(cfg.seed)  # dropout masks differ between ranks; rank 0 keeps the 1-process stream
    pre = preprocessing_of(bundle)
    first_epoch, global_step, history, partial = 0, 0, [], None
    if start.checkpoint is not None:
        restore(c, start.checkpoint, cfg, len(bundle.class_names))
        first_epoch, global_step = start.checkpoint["epoch"], start.checkpoint["global_step"]
        history = [r for r in start.checkpoint.get("history", []) if r["epoch"] <= first_epoch]
        own, note = ddp.own_rank_state(start.checkpoint)  # this rank's RNG and position in the epoch
        if note:  # saved by another number of processes: continue from the epoch boundary
            say(note)
            global_step = first_epoch * c.plan.steps_per_epoch
        if own["rng"] is not None:
            set_rng_state(own["rng"])
        partial = own["partial"]
    if ddp.is_main():
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            config_mod.save_yaml(cfg, run_dir / "config.yaml")
        except OSError as e:
            raise UsageError(f"cannot write the run folder {run_dir}: {e.strerror or e}; choose a writable "
                             f"--checkpoint_dir") from None
        for tmp in remove_stale_temps(run_dir):
            say(f"removed {tmp.name}, a partial write left by a killed run")
    # The results database (--results_db) is written by rank 0 alone, like every other file.
    recorder = RunRecorder(cfg if ddp.is_main() else dataclasses.replace(cfg, results_db="none"), run_dir)
    recorder.start(c.model if start.checkpoint is None else None, history)
    trial = trial_report.from_env() if ddp.is_main() else None  # started by sweep.py as a study's trial
    if trial is not None:
        trial.start(history)

    say(bundle.report.summary())
    k = len(bundle.class_names)
    weights = loss_weights(bundle.train.labels, k).to(device) if cfg.class_weights == "auto" else None
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    sample_weights = balanced_sample_weights(bundle.train.labels, k) if cfg.balanced_sampler else None
    shard = (ddp.rank(), ddp.world())  # each rank's part of every global batch (the whole batch alone)
    workers = ddp.workers_per_rank(cfg.num_workers)  # streamed data: this node's cores shared by its ranks
    train_loader = make_loader(bundle.train, cfg.batch_size, pre, device, augment_preset=cfg.augment, shuffle=True,
                               seed=cfg.seed, sample_weights=sample_weights, channels_last=cl,
                               num_workers=workers, strict=cfg.strict_data, shard=shard)
    val_loader = make_loader(bundle.val, max(cfg.batch_size, 256), pre, device, channels_last=cl,
                             num_workers=workers, strict=cfg.strict_data, shard=shard)
    say(f"{cfg.model} on {cfg.dataset}: {len(bundle.train)}/{len(bundle.val)}/"
        f"{len(bundle.test) if bundle.test else 0} train/val/test images, {len(bundle.class_names)} classes, "
        f"{sum(p.numel() for p in c.model.parameters()):,} parameters, device {device}"
        f"{' (' + str(threads) + ' threads)' if device.type == 'cpu' else ''}; "
        f"{c.plan.steps_per_epoch} updates/epoch, warmup {c.plan.warmup_steps} updates{ddp.describe(cfg)}")
    say(choice.line())
    if choice.warning:
        say(choice.warning)

    guard = NonFiniteGuard(cfg.max_nonfinite)
    if start.checkpoint is not None:
        guard.consecutive = start.checkpoint.get("nonfinite_consecutive", 0)
    stop_reason = ""
    # SWA's BN statistics come from the training images without augmentation, in a fixed order.
    bn_loader = make_loader(bundle.train, cfg.batch_size, pre, device, channels_last=cl,
                            num_workers=workers, strict=cfg.strict_data) if c.swa else None
    train_model = compiled(c.model, device) if cfg.compile else c.model  # checkpoints keep the plain module
    sink = TensorBoardSink(run_dir, global_step) if cfg.tensorboard and ddp.is_main() else None
    # Ctrl-C / SIGTERM: finish the step, save last.pt, say how to resume. An error closes the sink.
    curves = CurvesWriter(run_dir / "curves.png")  # rank 0 updates it; not redrawn after every epoch
    with (GracefulStop(coalesce_s=1.0 if ddp.is_dist() else 0.0) as stop, recorder, sink or contextlib.nullcontext(),
          curves):
        for epoch in range(first_epoch + 1, cfg.epochs + 1):
            train_loader.set_epoch(epoch)
            if cfg.freeze_epochs:  # a function of the epoch alone, so a resumed run freezes the same way
                set_backbone_frozen(unwrap(c.model), epoch <= cfg.freeze_epochs)
                if epoch in (1, first_epoch + 1, cfg.freeze_epochs + 1):
                    say(f"epoch {epoch}: " + (f"training the classifier head only until epoch {cfg.freeze_epochs} "
                          f"(backbone and its BatchNorm statistics frozen)" if epoch <= cfg.freeze_epochs
                          else "backbone unfrozen: training every layer"))
            stats, global_step = train_one_epoch(
                train_model, train_loader, criterion, c.optimizer, c.scheduler, c.scaler, amp, epoch=epoch,
                global_step=global_step, accum_steps=cfg.accum_steps, grad_clip=cfg.grad_clip, guard=guard,
                ema=None if c.swa else c.ema, progress=progress if ddp.is_main() else False, should_stop=stop,
                resume_from=partial, on_update=sink and sink.update)
            partial = None
            ddp.broadcast_buffers(c.model)  # every rank evaluates (and rank 0 saves) rank 0's BN statistics
            if stats.batches < len(train_loader):  # cut short by a signal: save the position in the epoch
                state = checkpoint_state(c, cfg, bundle, epoch - 1, global_step, history, guard.consecutive,
                                         stats.partial_state(epoch))
                if ddp.is_main():
                    save_checkpoint(state, run_dir / "last.pt")
                raise interrupted(stop, f"epoch {epoch}, batch {stats.batches}/{len(train_loader)}", run_dir)
            stats = global_stats(stats)  # sums and counts over all ranks
            if c.swa and c.scheduler.swa_active:  # before evaluating: val loss, best.pt use the average
                c.ema.update_parameters(c.model)
                update_bn(bn_loader, c.ema, device)
            val_loss, val_acc = evaluate(eval_model(c), val_loader, amp, tta=cfg.tta)
            in_warmup = c.scheduler.epoch_start_t < c.plan.warmup_steps  # this epoch was (partly) warmup
            monitored = val_loss if cfg.monitor == "val_loss" else val_acc
            c.scheduler.step_epoch(monitored)  # plateau follows --monitor (mode max for val_acc)
            improved = c.stopper.update(monitored, epoch, counts=not in_warmup)
            history.append({"epoch": epoch, "lr": stats.lr, "train_loss": stats.loss, "train_acc": stats.acc,
                            "val_loss": val_loss, "val_acc": val_acc, "seconds": round(stats.seconds, 3)})
            say(epoch_summary(epoch, cfg.epochs, stats, val_loss, val_acc, improved))
            if sink is not None:
                sink.epoch(global_step, history[-1])
            state = checkpoint_state(c, cfg, bundle, epoch, global_step, history, guard.consecutive)
            if ddp.is_main():
                write_metrics_csv(history, run_dir / "metrics.csv")
                recorder.epoch(history)
                curves.update(history)
                if trial is not None:
                    trial.on_epoch(history)
            # last.pt goes last: it is the commit point. A crash before it re-runs this epoch, which
            # rewrites best.pt / epoch_NNN.pt identically; after it, they are already complete.
            paths = [run_dir / "best.pt"] if improved else []
            if cfg.save_every and epoch % cfg.save_every == 0:
                paths.append(run_dir / f"epoch_{epoch:03d}.pt")
            if ddp.is_main():
                save_checkpoint(state, *paths, run_dir / "last.pt")
                prune_epoch_files(run_dir, cfg.keep_last)  # after the commit point: a crash never loses the newest
            faults.point("epoch_end", release=stop)  # tests: pause here until signalled
            pruned = trial.should_stop(run_dir) if trial is not None else None
            if pruned is not None and epoch < cfg.epochs:  # at this epoch boundary, last.pt saved
                raise pruned
            if c.stopper.should_stop:
                stop_reason = (f"early stopping: {cfg.monitor} has not improved by more than {cfg.min_delta:g} "
                               f"for {c.stopper.bad_epochs} epochs (best {c.stopper.best:.4f} at epoch "
                               f"{c.stopper.best_epoch})")
                say(stop_reason)
                break
            if ddp.any_rank(stop()) and epoch < cfg.epochs:
                raise interrupted(stop, f"the end of epoch {epoch}", run_dir)
    return finish(cfg, run_dir, bundle, device, stop_reason, sink, recorder)


def lr_range_test(cfg: Config, bundle: DataBundle, device: torch.device, amp, start_lr: float = 1e-7,
                  end_lr: float = 10.0, num_iter: int = 100) -> LRFind:
    """The LR range test on throw-away copies of the run's model and optimizer; RNG state restored."""
    state = rng_state()  # a run after it must start exactly as it would without it
    c = build_components(dataclasses.replace(cfg, lr=start_lr, scheduler="constant", scheduler_params={}, ema=0.0,
                                             warmup_epochs=0.0, warmup_steps=0), bundle, device, amp)
    loader = make_loader(bundle.train, cfg.batch_size, preprocessing_of(bundle), device, augment_preset=cfg.augment,
                         shuffle=True, seed=cfg.seed, channels_last=cfg.channels_last == "on",
                         num_workers=ddp.workers_per_rank(cfg.num_workers),  # as training: cores shared by ranks
                         strict=cfg.strict_data)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    result = range_test(c.model, c.optimizer, loader, criterion, amp, start_lr, end_lr, num_iter)
    set_rng_state(state)
    return result


def choose_lr(cfg: Config, bundle: DataBundle, device: torch.device, amp, out_dir: Path) -> Config:
    """``--lr auto``: the LR range test's suggestion becomes the run's LR (and so its config.yaml's)."""
    result = lr_range_test(cfg, bundle, device, amp)  # every rank: the same images, so the same suggestion
    if ddp.is_main():
        write_outputs(result, out_dir)
        print(f"--lr auto: {report(result)}; plot in {out_dir / 'lr_find.png'}")
    return dataclasses.replace(cfg, lr=float(f"{result.steepest:.3g}"))


def finish(cfg: Config, run_dir: Path, bundle: DataBundle, device: torch.device, stop_reason: str,
           sink: TensorBoardSink | None = None, recorder: RunRecorder | None = None) -> dict[str, Any]:
    """Score best.pt on the test split (val if there is none) and write ``summary.json``; TensorBoard
    gets the confusion matrix and the hparams, and ``sink`` is closed; so does the results database."""
    ddp.barrier()  # rank 0 has finished writing best.pt
    if not (run_dir / "best.pt").is_file():  # every epoch's validation metric was NaN/inf
        if sink is not None:
            sink.close()  # the epochs' curves stay readable
        if recorder is not None:
            recorder.end("failed")
        raise AppError(f"{cfg.monitor} was non-finite in every epoch, so no epoch was a best and there is no "
                       f"best.pt (the final weights are in {run_dir / 'last.pt'}). Lower --lr, set --grad_clip, "
                       f"or check the data")
    best = load_model_from_checkpoint(run_dir / "best.pt", device)  # as evaluate.py will read it
    split_name = "test" if bundle.test is not None else "val"
    loader = make_loader(bundle.split(split_name), 256, best.preprocessing, device,
                         num_workers=ddp.workers_per_rank(cfg.num_workers),
                         strict=cfg.strict_data, shard=(ddp.rank(), ddp.world()))
    logits, labels = predict_logits(best.model, loader, best.amp, tta=best.cfg.tta)
    loss, acc = scores(logits, labels)
    # Every rank's images (a collective: all ranks call it): per-class metrics and the confusion matrix.
    logits, labels = ddp.gather_rows(logits, labels)
    summary = {"run_dir": str(run_dir), "best_epoch": best.epoch, "best_metric": best.best_metric,
               "monitor": cfg.monitor, f"{split_name}_loss": loss, f"{split_name}_acc": acc,
               "stopped_early": bool(stop_reason), "stop_reason": stop_reason or f"finished all {cfg.epochs} epochs"}
    if not ddp.is_main():
        return summary
    summary["per_class"] = class_metrics(labels.tolist(), logits.argmax(1).tolist(), bundle.class_names)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if recorder is not None:
        recorder.finish(summary, split_name)
    if sink is not None:
        sink.finish(best.global_step, cfg, labels.numpy(), logits.argmax(1).numpy(), bundle.class_names,
                    {f"{split_name}_acc": acc, f"{split_name}_loss": loss, "best_epoch": best.epoch})
        sink.close()
    print(f"{split_name} accuracy of best.pt (epoch {best.epoch}): {acc:.4f}  |  run folder: {run_dir}")
    return summary


def interrupted(stop: GracefulStop, where: str, run_dir: Path) -> BaseException:
    """Rank 0 says where it stopped and how to resume; other ranks leave quietly with the same status."""
    if stop.signum is None:  # only another rank was signalled
        stop.signum = signal.SIGTERM
    return stop.error(where, run_dir) if ddp.is_main() else SystemExit(128 + stop.signum)


def _silent(*_args, **_kwargs) -> None:
    """``print`` on ranks other than 0."""
