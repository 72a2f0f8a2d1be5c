"""Several processes under torchrun: the process group, who writes, and how values are combined.

``torchrun`` starts one copy of ``train.py`` per device and tells each its place through the
environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``). The training code stays one code path:
it calls the functions here, which are no-ops in a plain ``python train.py`` (no process group is
ever created there), so single-process runs behave exactly as before.

Rules every caller relies on:
- Only global rank 0 writes (``is_main``): prints, checkpoints, metrics, summaries, database rows.
- Means are never averaged across ranks: sums and counts are all-reduced (``all_sum``).
- A decision that changes control flow is taken from an all-reduced value, so every rank takes it
  at the same update (``any_rank``, :class:`BatchAgreement`); otherwise one rank would wait forever
  in a collective the others never reach.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from common.cores import usable_cores
from common.errors import AppError, UsageError
from common.spelling import plural


def launched_world() -> int:
    """Processes torchrun started for this job (1 under a plain ``python``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """The one process that prints and writes files."""
    return rank() == 0


def local_world() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if is_dist() else 1


def setup(device_name: str) -> torch.device | None:
    """Join the process group torchrun describes and return this rank's device; None when not launched.

    CUDA: NCCL, one device per local rank. CPU (``--device cpu``, or auto without a GPU): gloo.
    """
    if launched_world() <= 1:
        return None
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed; run train.py without torchrun")
    if device_name not in ("auto", "cpu", "cuda"):
        raise UsageError(
            f"--device {device_name} under torchrun: use cuda (one GPU per local rank, NCCL) "
            f"or cpu (gloo); the device of each process follows LOCAL_RANK"
        )
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available()):
        if torch.cuda.device_count() <= local:
            raise UsageError(
                f"local rank {local} has no GPU of its own ({torch.cuda.device_count()} on this "
                f"node); start at most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    atexit.register(shutdown)
    return device


@contextlib.contextmanager
def peer_failures():
    """A collective that fails because another process died: one line, not a traceback.

    torchrun ends the whole job when a process exits with an error; the survivors' pending
    all-reduce fails at once (gloo: "Connection closed by peer") and says so here.
    """
    try:
        yield
    except RuntimeError as e:
        text = str(e)
        if not is_dist() or not (isinstance(e, dist.DistError) or "closed by peer" in text or "NCCL" in text):
            raise
        raise AppError(
            f"rank {rank()} stopped because another process of this torchrun job failed (its "
            f"error is above): {text.splitlines()[0][:160]}"
        ) from None


def shutdown() -> None:
    if is_dist():
        dist.destroy_process_group()


def threads_per_rank() -> int:
    """``--threads 0`` under torchrun: this node's cores shared among its ranks."""
    return max(1, usable_cores() // local_world())


def workers_per_rank(num_workers: int) -> int:
    """``--num_workers -1`` under torchrun: data-loader workers from this rank's share of the cores."""
    if num_workers >= 0 or not is_dist():
        return num_workers
    return max(0, min(8, usable_cores() // local_world() - 1))


def decorrelate_rng(seed: int) -> None:
    """Ranks > 0 get their own torch RNG stream (dropout masks); rank 0 keeps the single-process one."""
    if rank() > 0:
        torch.manual_seed(seed + 1_000_003 * rank())


def describe(cfg) -> str:
    """The start line's part about processes, global batch and LR (empty in a single process)."""
    if not is_dist():
        return ""
    return (
        f"; {world()} processes ({dist.get_backend()}) x batch {cfg.batch_size} = global batch "
        f"{world() * cfg.batch_size}, lr {scaled_lr(cfg.lr, cfg.lr_scaling):g} (--lr_scaling {cfg.lr_scaling})"
    )


def own_rank_state(ckpt: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """This rank's {"rng", "partial"} to resume from, and a note when the world size changed.

    Same world size: each rank gets back its own RNG state and position in the epoch (exact).
    Another world size (including 1 <-> N): rank 0 takes the saved RNG, the others keep their
    fresh streams, and the run continues from the end of the last finished epoch.
    """
    saved = int(ckpt.get("world_size", 1))
    if saved == world():
        states = ckpt.get("rank_states")
        if states:
            return states[rank()], ""
        return {"rng": ckpt["rng"], "partial": ckpt.get("partial_epoch")}, ""
    part = ckpt.get("partial_epoch")
    redo = (
        f"; the {plural(part['batches'], 'batch')} of epoch {part['epoch']} it had done are trained again"
        if part
        else ""
    )
    note = (
        f"note: {_processes(saved)} wrote this checkpoint, this run has {world()}: continuing from the "
        f"end of epoch {ckpt['epoch']}{redo}. Batches and updates per epoch change, so the result is close to "
        f"but not the same as an uninterrupted run (resume with {saved} for an exact one)"
    )
    return {"rng": ckpt["rng"] if is_main() else None, "partial": None}, note


def _processes(n: int) -> str:
    return "a single process" if n == 1 else f"{n} processes"


def scaled_lr(lr: float, rule: str) -> float:
    """``--lr_scaling``: none keeps --lr; linear multiplies it by the world size; sqrt by its root."""
    return {"none": lr, "linear": lr * world(), "sqrt": lr * math.sqrt(world())}[rule]


# --- combining values ---
def _comm_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo reduces CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums over ranks, in float64 (exact for counts up to 2**53)."""
    if not is_dist():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on at least one."""
    return all_sum([float(flag)])[0] > 0 if is_dist() else flag


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` as a list on rank 0 (None elsewhere); ``[obj]`` in a single process."""
    if not is_dist():
        return [obj]
    out = [None] * world() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` alone): one decision, e.g. a measured AMP choice, for all."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor's rows from every rank, concatenated in rank order, on rank 0 (unchanged alone)."""
    if not is_dist():
        return tensors
    parts = gather_to_main(tuple(t.cpu() for t in tensors))
    return tuple(torch.cat(col) for col in zip(*parts)) if parts is not None else tensors


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), as DDP does before each forward.

    Called before evaluating and saving, so that all ranks evaluate the very weights rank 0 saves.
    """
    if is_dist():
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def wrap(model: nn.Module, device: torch.device, sync_bn: bool, partly_frozen: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` (unchanged in a single process).

    ``partly_frozen`` (``--freeze_epochs``): the backbone gets no gradients for a while, which DDP
    must be told (``find_unused_parameters``), or it would wait for those gradients forever.
    """
    if not is_dist():
        return model
    if sync_bn:
        if device.type != "cuda":
            raise UsageError("--sync_bn needs CUDA: PyTorch's SyncBatchNorm has no CPU (gloo) implementation")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=partly_frozen
    )


class BatchAgreement:
    """One all-reduce per training batch, so that every rank decides alike at the same update.

    It carries three numbers: the batch's loss denominator (so each rank's mean loss can be weighted
    into the mean over the *global* batch -- exact also when the last batch splits unevenly or
    class weights make denominators differ), whether any rank's loss is non-finite (all drop the
    batch together), and whether any rank was asked to stop (all stop after the same update).
    In a single process it costs nothing: the loss value, weight 1, and the local stop flag.
    """

    def __init__(self, should_stop: Callable[[], bool], class_weight: torch.Tensor | None = None):
        self.should_stop = should_stop
        self.class_weight = class_weight
        self.stop = False

    def loss_value(
        self, loss: torch.Tensor, labels: torch.Tensor, need_value: bool = True
    ) -> tuple[float | None, float]:
        """(loss value for the non-finite guard: NaN if any rank's is non-finite, this rank's share).

        Alone and without ``need_value`` (a GradScaler guards float16 on the device) it reads
        nothing back from the device: the value is None.
        """
        if not is_dist():
            return (loss.item() if need_value else None), 1.0
        w = self.class_weight
        denom = w[labels].sum().double() if w is not None else torch.tensor(float(labels.shape[0]), dtype=torch.float64)
        t = torch.stack(
            [
                denom.to(loss.device),
                (~torch.isfinite(loss.detach())).double(),
                torch.tensor(float(self.should_stop()), dtype=torch.float64, device=loss.device),
            ]
        )
        t = t.to(_comm_device())
        dist.all_reduce(t)
        total, bad, stop = t.tolist()
        self.stop = stop > 0
        value = loss.item() if bad == 0 else math.nan
        # DDP averages gradients over ranks: (sum_r share_r * mean_r) / world == the global-batch mean.
        return value, float(denom) * world() / total

    def stop_requested(self) -> bool:
        return self.stop if is_dist() else self.should_stop()
