"""``fit``: a run in three phases -- set up, epochs, final test -- inside one lifecycle.

``set_up`` builds everything from a Config (or a checkpoint) into a :class:`Run`; ``train_epochs``
trains epoch by epoch, checkpointing each; ``final_test`` scores best.pt and writes summary.json.
The sinks (metrics.csv and curves, TensorBoard, the results database, the console, and any the
caller adds) hear the run through one :class:`tracking.sink.Lifecycle` that spans the epochs *and*
the final test, so whatever fails or is interrupted, each ends with the status that fits.

The order of work inside an epoch end is fixed so that a resumed run replays exactly: validate,
step the schedule, update early stopping, record the row, then save (RNG state included).
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from artifacts.checkpoint import Checkpoint, prune_epoch_files, save_checkpoint
from artifacts.model_io import load_model_from_checkpoint
from common import faults
from common.errors import AppError, UsageError
from common.fileio import remove_stale_temps, write_atomic
from common.progress import phase
from common.run_files import SUMMARY
from common.spelling import plural
from data import DataBundle, prepare_data, preprocessing_of
from data.loader import Feed, balanced_sample_weights, loss_weights, make_loader
from engine.loop import NonFiniteGuard, Updater, evaluate, global_stats, predict_logits, scores, train_one_epoch
from engine.lr_finder import choose_lr
from engine.run import RunStart, start_run
from engine.setup import (
    Components,
    build_components,
    checkpoint_state,
    compiled,
    eval_model,
    resolve_runtime,
    restore,
    schedule_free_eval,
)
from models import set_backbone_frozen
from models.optim import is_schedule_free
from runtime import distributed as ddp
from runtime.interrupt import GracefulStop
from runtime.runtime import AmpPolicy, resolve_device, seed_everything, set_rng_state, set_threads, unwrap
from settings import config as config_mod
from settings.config import Config
from tracking.console import ConsoleSink
from tracking.history import COLUMNS, CsvSink
from tracking.recorder import RunRecorder, class_metrics
from tracking.sink import Lifecycle, RunInfo, RunResult, Sink
from tracking.tensorboard import TensorBoardSink


@dataclass
class Run:
    """One run while it trains: what set-up built, and where the epochs stand."""

    cfg: Config
    run_dir: Path
    bundle: DataBundle
    device: torch.device
    amp: AmpPolicy
    c: Components
    updater: Updater
    train_loader: Any
    val_loader: Any
    bn_loader: Any  # SWA's and schedule-free's BN statistics: training images, no augmentation, fixed order
    resumed: bool
    epoch: int = 0  # completed epochs
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    partial: dict | None = None  # position inside the next epoch, when a signal cut it short
    stop_reason: str = ""

    def state(self, epoch: int, partial: dict | None = None) -> Checkpoint:
        return checkpoint_state(
            self.c,
            self.cfg,
            self.bundle,
            epoch,
            self.global_step,
            self.history,
            self.updater.guard.consecutive,
            partial,
        )


def fit(cfg: Config, cli_keys: list[str], progress: bool | None = None, sinks: Sequence[Sink] = ()) -> dict[str, Any]:
    """Train (or resume, or complete) a run and return its summary.

    ``sinks``: more listeners besides the run's own (e.g. a sweep's pruning reporter), rank 0 only.
    The run folder's lock (common/runlock.py) is held from the fresh/resume decision to the end.
    """
    start = start_run(cfg, cli_keys)
    try:
        run = set_up(start)
        # The console first: its line shows before the files are written and curves.png is drawn.
        own: list[Sink] = [ConsoleSink(), CsvSink(run.run_dir), RunRecorder(run.cfg, run.run_dir)]
        if run.cfg.tensorboard:
            own.append(TensorBoardSink(run.run_dir))
        # The signal handler outlives the sinks: a second Ctrl-C while they close cannot kill them unended.
        with (
            GracefulStop(coalesce_s=1.0 if ddp.is_dist() else 0.0) as stop,
            Lifecycle([*own, *sinks] if ddp.is_main() else []) as life,
        ):
            life.start(
                RunInfo(
                    run.cfg,
                    run.run_dir,
                    list(run.bundle.class_names),
                    run.global_step,
                    list(run.history),
                    None if run.resumed else run.c.model,
                )
            )
            train_epochs(run, life, stop, progress)
            life.training_done = True  # from here a signal stops the final test at once; last.pt holds the run
            stop.at_once(lambda: interrupted(stop, "the final test (training is complete)", run.run_dir))
            return final_test(run, life, stop)
    finally:
        start.lock.release()


# ---------------------------------------------------------------- phase 1: set up
def set_up(start: RunStart) -> Run:
    """The device, data, runtime choices and components of the run ``start`` decided (engine/run.py),
    restored from a checkpoint when resuming."""
    cfg, run_dir, ckpt = start.cfg, start.run_dir, start.checkpoint
    seed_everything(cfg.seed, cfg.deterministic)  # before CUDA starts: --deterministic sets cuBLAS up
    device = ddp.setup(cfg.device)  # None unless started by torchrun
    say(start.message)
    threads = set_threads(cfg.threads or (ddp.threads_per_rank() if device else 0))
    device = device or resolve_device(cfg.device)
    bundle = prepare_data(cfg, ckpt["class_names"] if ckpt is not None else None)
    cfg, choice, amp = resolve_runtime(cfg, bundle, device, threads, ckpt and ckpt.get("runtime"))
    if cfg.lr == config_mod.LR_AUTO:  # resuming (e.g. a sweep's re-run) keeps the LR chosen at the start
        cfg = (
            choose_lr(cfg, bundle, device, amp, run_dir / "lr_find")
            if ckpt is None
            else dataclasses.replace(cfg, lr=float(ckpt["config"]["lr"]))
        )
    c = build_components(cfg, bundle, device, amp)
    c.runtime = {**asdict(choice), "threads": threads}
    ddp.decorrelate_rng(cfg.seed)  # dropout masks differ between ranks; rank 0 keeps the 1-process stream
    guard = NonFiniteGuard(cfg.max_nonfinite)
    epoch, global_step, history, partial = 0, 0, [], None
    if ckpt is not None:
        restore(c, ckpt, cfg, len(bundle.class_names))
        epoch, global_step = ckpt["epoch"], ckpt["global_step"]
        history = [r for r in ckpt.get("history", []) if r["epoch"] <= epoch]
        guard.consecutive = ckpt.get("nonfinite_consecutive", 0)
        own, note = ddp.own_rank_state(ckpt)  # this rank's RNG and position in the epoch
        if note:  # saved by another number of processes: continue from the epoch boundary
            say(note)
            global_step = epoch * c.plan.steps_per_epoch
        if own["rng"] is not None:
            set_rng_state(own["rng"])
        partial = own["partial"]
    if ddp.is_main():
        prepare_folder(cfg, run_dir)

    say(bundle.report.summary())
    k = len(bundle.class_names)
    weights = loss_weights(bundle.train.labels, k).to(device) if cfg.class_weights == "auto" else None
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    sample_weights = balanced_sample_weights(bundle.train.labels, k) if cfg.balanced_sampler else None
    feed = Feed(
        preprocessing_of(bundle),
        device,
        channels_last=choice.channels_last,
        num_workers=ddp.workers_per_rank(cfg.num_workers),  # streamed data: a node's cores shared by its ranks
        strict=cfg.strict_data,
    )
    sharded = dataclasses.replace(feed, shard=(ddp.rank(), ddp.world()))  # each rank's part of every global batch
    train_loader = make_loader(
        bundle.train,
        cfg.batch_size,
        sharded,
        augment_preset=cfg.augment,
        shuffle=True,
        seed=cfg.seed,
        sample_weights=sample_weights,
    )
    val_loader = make_loader(bundle.val, max(cfg.batch_size, 256), sharded)
    say(
        f"{cfg.model} on {cfg.dataset}: {len(bundle.train)}/{len(bundle.val)}/"
        f"{len(bundle.test) if bundle.test else 0} train/val/test images, {k} classes, "
        f"{sum(p.numel() for p in c.model.parameters()):,} parameters, device {device}"
        f"{' (' + plural(threads, 'thread') + ')' if device.type == 'cpu' else ''}; "
        f"{c.plan.steps_per_epoch} updates/epoch, warmup {plural(c.plan.warmup_steps, 'update')}{ddp.describe(cfg)}"
    )
    say(choice.line())
    if choice.warning:
        say(choice.warning)
    bn_loader = make_loader(bundle.train, cfg.batch_size, feed) if c.swa or is_schedule_free(c.optimizer) else None
    train_model = compiled(c.model, device) if cfg.compile else c.model  # checkpoints keep the plain module
    updater = Updater(
        train_model,
        criterion,
        c.optimizer,
        c.scheduler,
        c.scaler,
        amp,
        accum_steps=cfg.accum_steps,
        grad_clip=cfg.grad_clip,
        guard=guard,
        ema=None if c.swa else c.ema,
    )
    return Run(
        cfg,
        run_dir,
        bundle,
        device,
        amp,
        c,
        updater,
        train_loader,
        val_loader,
        bn_loader,
        resumed=ckpt is not None,
        epoch=epoch,
        global_step=global_step,
        history=history,
        partial=partial,
    )


def prepare_folder(cfg: Config, run_dir: Path) -> None:
    """The run folder with the resolved config.yaml; partial writes of a killed run removed."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_mod.save_yaml(cfg, run_dir / "config.yaml")
    except OSError as e:
        raise UsageError(
            f"cannot write the run folder {run_dir}: {e.strerror or e}; choose a writable --checkpoint_dir"
        ) from None
    for tmp in remove_stale_temps(run_dir):
        say(f"removed {tmp.name}, a partial write left by a killed run")


# ---------------------------------------------------------------- phase 2: the epochs
def train_epochs(run: Run, life: Lifecycle, stop: GracefulStop, progress: bool | None) -> None:
    """Train from ``run.epoch`` to the last epoch (or an early stop), saving every epoch."""
    cfg, c = run.cfg, run.c
    if c.stopper.should_stop:  # resumed after early stopping had ended the epochs: only the final test is left
        run.stop_reason = early_stop_reason(run)
        return
    on_update = life.on_update if life.wants_updates else None
    for epoch in range(run.epoch + 1, cfg.epochs + 1):
        run.train_loader.set_epoch(epoch)
        if cfg.freeze_epochs:  # a function of the epoch alone, so a resumed run freezes the same way
            set_backbone_frozen(unwrap(c.model), epoch <= cfg.freeze_epochs)
            if epoch in (1, run.epoch + 1, cfg.freeze_epochs + 1):
                say(
                    f"epoch {epoch}: "
                    + (
                        f"training the classifier head only until epoch {cfg.freeze_epochs} "
                        f"(backbone and its BatchNorm statistics frozen)"
                        if epoch <= cfg.freeze_epochs
                        else "backbone unfrozen: training every layer"
                    )
                )
        stats, run.global_step = train_one_epoch(
            run.updater,
            run.train_loader,
            epoch=epoch,
            global_step=run.global_step,
            progress=progress if ddp.is_main() else False,
            should_stop=stop,
            resume_from=run.partial,
            on_update=on_update,
        )
        run.partial = None
        ddp.broadcast_buffers(c.model)  # every rank evaluates (and rank 0 saves) rank 0's BN statistics
        if stats.batches < len(run.train_loader):  # cut short by a signal: save the position in the epoch
            state = run.state(epoch - 1, stats.partial_state(epoch))
            if ddp.is_main():
                save_checkpoint(state, run.run_dir / "last.pt")
            raise interrupted(stop, f"epoch {epoch}, batch {stats.batches}/{len(run.train_loader)}", run.run_dir)
        stats = global_stats(stats)  # sums and counts over all ranks
        if c.swa and c.scheduler.swa_active:  # before evaluating: val loss, best.pt use the average
            c.ema.update_parameters(c.model)
            update_bn(run.bn_loader, c.ema, run.device)
        schedule_free_eval(c, run.bn_loader, run.device)  # evaluated and saved at x; the next epoch trains at y
        val_loss, val_acc = evaluate(eval_model(c), run.val_loader, run.amp, tta=cfg.tta)
        in_warmup = c.scheduler.epoch_start_t < c.plan.warmup_steps  # this epoch was (partly) warmup
        monitored = {"val_loss": val_loss, "val_acc": val_acc}[cfg.monitor]
        c.scheduler.step_epoch(monitored)  # plateau follows --monitor (its mode from common.monitors)
        improved = c.stopper.update(monitored, epoch, counts=not in_warmup)
        record = stats.record(epoch, val_loss, val_acc, improved)
        run.history.append({k: record[k] for k in COLUMNS})  # metrics.csv's row, as checkpoints keep it
        run.epoch = epoch
        state = run.state(epoch)
        life.on_epoch(run.global_step, record)  # metrics.csv, TensorBoard, the database, the console line
        # last.pt goes last: it is the commit point. A crash before it re-runs this epoch, which
        # rewrites best.pt / epoch_NNN.pt identically; after it, they are already complete.
        paths = [run.run_dir / "best.pt"] if improved else []
        if cfg.save_every and epoch % cfg.save_every == 0:
            paths.append(run.run_dir / f"epoch_{epoch:03d}.pt")
        if ddp.is_main():
            save_checkpoint(state, *paths, run.run_dir / "last.pt")
            prune_epoch_files(run.run_dir, cfg.keep_last)  # after the commit point: a crash never loses the newest
        faults.point("epoch_end", release=stop)  # tests: pause here until signalled
        request = life.stop_request()  # e.g. a sweep's pruned trial: ends here, last.pt saved
        if request is not None and epoch < cfg.epochs:
            raise request
        if c.stopper.should_stop:
            run.stop_reason = early_stop_reason(run)
            say(run.stop_reason)
            return
        if ddp.any_rank(stop()) and epoch < cfg.epochs:
            raise interrupted(stop, f"the end of epoch {epoch}", run.run_dir)


def early_stop_reason(run: Run) -> str:
    s = run.c.stopper
    return (
        f"early stopping: {run.cfg.monitor} has not improved by more than {run.cfg.min_delta:g} for "
        f"{plural(s.bad_epochs, 'epoch')} (best {s.best:.4f} at epoch {s.best_epoch})"
    )


# ---------------------------------------------------------------- phase 3: the final test
def final_test(run: Run, life: Lifecycle, stop: GracefulStop) -> dict[str, Any]:
    """Score best.pt on the test split (val if there is none), write summary.json, tell the sinks."""
    cfg, run_dir = run.cfg, run.run_dir
    ddp.barrier()  # rank 0 has finished writing best.pt
    faults.point("final_test", release=stop)  # tests: fail or pause here
    if not (run_dir / "best.pt").is_file():  # every epoch's validation metric was NaN/inf
        raise AppError(
            f"{cfg.monitor} was non-finite in every epoch, so no epoch was a best and there is no "
            f"best.pt (the final weights are in {run_dir / 'last.pt'}). Lower --lr, set --grad_clip, "
            f"or check the data"
        )
    best = load_model_from_checkpoint(run_dir / "best.pt", run.device)  # as evaluate.py will read it
    split = "test" if run.bundle.test is not None else "val"
    loader = make_loader(
        run.bundle.split(split),
        256,
        Feed(
            best.preprocessing,
            run.device,
            num_workers=ddp.workers_per_rank(cfg.num_workers),
            strict=cfg.strict_data,
            shard=(ddp.rank(), ddp.world()),
        ),
    )
    with phase(f"scoring best.pt on {len(run.bundle.split(split)):,} {split} images"):
        logits, labels = predict_logits(best.model, loader, best.amp, tta=best.cfg.tta)
    loss, acc = scores(logits, labels)
    # Every rank's images (a collective: all ranks call it): per-class metrics and the confusion matrix.
    logits, labels = ddp.gather_rows(logits, labels)
    summary = {
        "run_dir": str(run_dir),
        "best_epoch": best.epoch,
        "best_metric": best.best_metric,
        "monitor": cfg.monitor,
        f"{split}_loss": loss,
        f"{split}_acc": acc,
        "stopped_early": bool(run.stop_reason),
        "stop_reason": run.stop_reason or f"finished all {plural(cfg.epochs, 'epoch')}",
    }
    if not ddp.is_main():
        return summary
    preds = logits.argmax(1)
    summary["per_class"] = class_metrics(labels.tolist(), preds.tolist(), run.bundle.class_names)
    write_atomic(json.dumps(summary, indent=2).encode(), run_dir / SUMMARY)  # the run is finished from here
    life.finish(
        RunResult(summary, split, labels.numpy(), preds.numpy(), list(run.bundle.class_names), best.global_step)
    )
    return summary


def interrupted(stop: GracefulStop, where: str, run_dir: Path) -> BaseException:
    """Rank 0 says where it stopped and how to resume; other ranks leave quietly with the same status."""
    if stop.signum is None:  # only another rank was signalled
        stop.signum = signal.SIGTERM
    return stop.error(where, run_dir) if ddp.is_main() else SystemExit(128 + stop.signum)


def say(*args: Iterable[Any]) -> None:
    """``print`` on global rank 0 alone (one writer)."""
    if ddp.is_main():
        print(*args, flush=True)
