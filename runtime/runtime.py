"""Process-wide runtime choices, each made once: seeds, threads, device and the AMP policy."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from common.cores import usable_cores
from common.errors import UsageError


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; ``deterministic`` also asks torch for deterministic kernels.

    On CUDA that makes a resumed run bit-identical to an uninterrupted one: deterministic
    algorithms (ops without one warn), no cuDNN autotuning, and cuBLAS's fixed workspace, which
    cuBLAS reads when it starts, so call this before the first CUDA operation.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _busy_cores(interval: float = 0.25) -> float:
    """Cores kept busy by other processes right now, from two /proc/stat samples (Linux)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)


def default_threads(busy_cores: Callable[[float], float] | None = None) -> int:
    """Intra-op threads: the cores this process may use, minus those other processes keep busy.

    OpenMP threads wait for each other by spinning; one that shares its core with a busy process
    stalls the rest (measured here, 2 cores with one busy: 2 threads ran at 35 % of their idle
    speed, 1 thread at 100 % of its own). So cores that are busy when training starts are left
    out - but only load that persists: a first 0.25 s sample that sees busy cores is checked
    again over 1 s, and the smaller count is used, so a short process that happened to run at
    start (a compiler, a test) does not halve the run's speed. ``--threads N`` overrides, and
    ``--resume`` reuses the run's recorded count; see bench/threads.py.
    """
    busy_cores = busy_cores or _busy_cores
    cores = usable_cores()
    try:
        busy = busy_cores(0.25)
        if int(busy + 0.5) > 0:
            busy = min(busy, busy_cores(1.0))
    except (OSError, ValueError, IndexError):  # no /proc/stat: not Linux
        busy = 0.0
    return max(1, cores - int(busy + 0.5))


def set_threads(threads: int) -> int:
    n = threads if threads > 0 else default_threads()
    torch.set_num_threads(n)
    return n


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}'; valid: auto, cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return dev


@dataclass
class AmpPolicy:
    """One AMP code path: ``autocast()`` is a real or a null context, the scaler on or off."""

    enabled: bool
    dtype: torch.dtype
    device_type: str

    def autocast(self) -> AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        # Loss scaling is needed only for float16; bfloat16 has float32's exponent range.
        return torch.amp.GradScaler(self.device_type, enabled=self.enabled and self.dtype == torch.float16)


AMP_DTYPES = ("auto", "float16", "bfloat16")


def amp_dtype_of(name: str, device: torch.device) -> torch.dtype:
    """``--amp_dtype``: auto is float16 on CUDA and bfloat16 elsewhere; the one place it is checked."""
    if name not in AMP_DTYPES:
        raise UsageError(f"unknown amp_dtype '{name}'; valid: {', '.join(AMP_DTYPES)}")
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return getattr(torch, name)


def amp_policy(enabled: bool, dtype_name: str, device: torch.device) -> AmpPolicy:
    dtype = amp_dtype_of(dtype_name, device)
    if enabled and dtype == torch.float16 and device.type == "cpu":
        raise UsageError("float16 autocast is for GPUs; on CPU use --amp_dtype bfloat16 (or auto)")
    return AmpPolicy(enabled, dtype, device.type)


# --- RNG state, in a form torch.load(weights_only=True) accepts ---
def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "state": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["state"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module behind DataParallel/DDP/compile wrappers: what checkpoints store."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)
