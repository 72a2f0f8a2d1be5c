"""``amp: auto`` and ``channels_last: auto``: decided once per machine, model and batch shape, by measurement.

Why measure: bfloat16 autocast is ~2x faster than float32 on a CPU with bfloat16 instructions
(AVX512_BF16/AMX) and ~10x *slower* on one without (AVX2 laptops), where every op converts in
software. NHWC (channels_last) helps some convolution shapes and hurts others. So:

* CUDA: float16 + GradScaler, or bfloat16 where the GPU has it and it measures faster;
* CPU: bfloat16 only where the CPU has native bfloat16 (flags in /proc/cpuinfo, and neither
  ``ATEN_CPU_CAPABILITY`` nor ``ONEDNN_MAX_CPU_ISA`` caps it away) **and** it measures faster;
* otherwise float32. The memory format is the faster of the two in the same measurement.

A measurement times a few forward+backward steps of a throwaway copy of the real model on
random inputs of the real batch shape (~0.1-3 s, inside ``torch.random.fork_rng``: the run's
random numbers are untouched). Decisions are cached in ``$XDG_CACHE_HOME/imgclf/runtime.json``
(``~/.cache/imgclf``); an unreadable cache is ignored. The trainer writes the decision into the
run's config, so ``--resume`` replays it exactly, whatever this machine would pick today.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from common.errors import AppError
from common.fileio import write_atomic
from common.progress import phase
from runtime.runtime import amp_dtype_of

BUDGET_S = 2.5  # whole measurement, all candidates; the limit is ~3 s
MIN_GAIN = 1.05  # a non-default choice must be at least 5 % faster: noise must not flip decisions
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include its bfloat16 kernels.
BF16_ISAS = {
    "",
    "ALL",
    "DEFAULT",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
}


@dataclass
class Choice:
    """What auto picked, and the evidence; stored in the checkpoint and printed at start."""

    amp: bool
    dtype: str  # float16 | bfloat16 (meaningful when amp is on)
    channels_last: bool
    reason: str  # why, in words, for the start line
    ms_per_image: dict[str, float] = field(default_factory=dict)  # candidate -> measured time
    warning: str = ""  # an explicit choice that measured slow
    cached: bool = False

    def line(self) -> str:
        amp = f"AMP {self.dtype}" if self.amp else "AMP off"
        return (
            f"{amp}, channels_last {'on' if self.channels_last else 'off'}: {self.reason}"
            f"{' (cached decision)' if self.cached else ''}"
        )


# ---------------------------------------------------------------- capability probes
def cpu_flags() -> set[str]:
    line = next((ln for ln in _lines("/proc/cpuinfo") if ln.startswith("flags")), "")
    return set(line.split(":", 1)[1].split()) if line else set()


def cpu_bf16() -> tuple[bool, str]:
    """(native bfloat16 usable by torch here, why) - respecting the ISA caps people set to emulate."""
    cap = torch.backends.cpu.get_cpu_capability()
    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return False, f"this CPU ({cap}) has no native bfloat16"
    if not cap.startswith("AVX512"):  # ATEN_CPU_CAPABILITY=avx2 makes torch behave like an AVX2 CPU
        return False, f"torch's CPU kernels are capped at {cap} (no native bfloat16)"
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if isa not in BF16_ISAS:
        return False, f"oneDNN is capped at {isa} (no native bfloat16)"
    return True, f"this CPU ({cap}) has native bfloat16"


def machine_id(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = next(
            (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
            platform.processor(),
        )
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return f"{name}|{torch.backends.cpu.get_cpu_capability()}|{isa}|torch {torch.__version__}|{threads} threads"


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


# ---------------------------------------------------------------- the cache
def cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "imgclf" / "runtime.json"


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing, unreadable or corrupt: measure again


def _write_cache(key: str, choice: Choice) -> None:
    data = _read_cache()
    data[key] = asdict(choice)
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(json.dumps(data, indent=1).encode(), path)  # readers see the old or the new file
    except (OSError, AppError):
        pass  # a read-only home: decide again next time


# ---------------------------------------------------------------- the measurement
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _step_fn(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None
) -> Callable[[], float]:
    """A function that runs one forward+backward and returns its seconds."""
    device = x.device

    def step() -> float:
        t0 = time.perf_counter()
        ctx = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        model.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - t0

    return step


class Inconclusive(Exception):
    """The measurement ran far past its budget: the machine is too busy for timings to mean anything."""


def measure(
    model_fn: Callable[[], torch.nn.Module],
    shape: tuple[int, ...],
    num_classes: int,
    device: torch.device,
    candidates: list[tuple[str, bool]],
    budget_s: float = BUDGET_S,
    rounds: int = 5,
) -> dict[tuple[str, bool], float]:
    """Seconds per image of each (dtype name, channels_last) candidate, on a throwaway model.

    Candidates are timed in turns (one step each per round, best of the rounds), so load from
    other processes that comes and goes falls on all of them alike instead of on one. Raises
    ``Inconclusive`` past twice the budget (the machine is busy; the result would be noise).
    """
    deadline = time.perf_counter() + 2 * budget_s

    def check() -> None:
        if time.perf_counter() > deadline:
            raise Inconclusive

    dtypes = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        base = model_fn().to(device).train()
        models = {
            cl: copy.deepcopy(base).to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            for cl in {cl for _, cl in candidates}
        }

        def steps(batch: int) -> dict[tuple[str, bool], Callable[[], float]]:
            x = torch.randn((batch, *shape[1:]), device=device)
            y = torch.randint(0, num_classes, (batch,), device=device)
            return {
                (d, cl): _step_fn(
                    models[cl],
                    x.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format),
                    y,
                    dtypes[d],
                )
                for d, cl in candidates
            }

        # Probe the per-image cost on a small batch, then time the real batch if it fits the budget
        # (warm-up + 2 rounds of every candidate), else the largest batch that does.
        probe = steps(min(shape[0], 16))[candidates[0]]
        probe()
        per_image = probe() / min(shape[0], 16)
        batch = min(shape[0], max(8, int(budget_s / (3 * len(candidates) * per_image)) // 8 * 8))
        fns = steps(batch)
        for fn in fns.values():
            fn()  # one-off kernel selection and allocations: not timed
            check()
        best = {c: float("inf") for c in candidates}
        end = time.perf_counter() + budget_s * 2 / 3
        for r in range(rounds):
            for c, fn in fns.items():
                best[c] = min(best[c], fn())  # the minimum: other processes only ever add time
                if r == 0:
                    check()  # later rounds only refine a complete one
            if time.perf_counter() > end:
                break
    return {c: t / batch for c, t in best.items()}


def _name(dtype: str, cl: bool) -> str:
    return f"{dtype}{'+channels_last' if cl else ''}"


# ---------------------------------------------------------------- the decision
def decide(
    amp: str,
    amp_dtype: str,
    channels_last: str,
    *,
    device: torch.device,
    threads: int,
    model_fn: Callable[[], torch.nn.Module],
    model_key: dict,
    shape: tuple[int, ...],
    num_classes: int,
) -> Choice:
    """Resolve ``amp`` / ``channels_last`` (auto|on|off) for this machine, measuring when it matters.

    ``model_fn`` builds a throwaway copy of the model (``num_classes`` outputs) for timing batches of
    ``shape``; ``model_key`` identifies it in the cache, with the machine, ``threads`` and ``shape``.
    """
    native, why = {"cpu": cpu_bf16, "cuda": lambda: (True, "CUDA GPU")}.get(
        device.type, lambda: (False, f"no autocast measured on {device.type}")
    )()
    on_dtype = str(amp_dtype_of(amp_dtype, device)).removeprefix("torch.")
    if amp == "off" or device.type == "mps" or (amp == "auto" and device.type == "cpu" and not native):
        dtypes = ["float32"]
    elif amp == "on":
        dtypes = [on_dtype]
    elif device.type == "cuda":
        dtypes = (
            ["float16"]
            if amp_dtype == "float16"
            else ["bfloat16"]
            if amp_dtype == "bfloat16"
            else (["float16", "bfloat16"] if torch.cuda.is_bf16_supported() else ["float16"])
        )
    else:
        dtypes = ["float32", "bfloat16"]
    layouts = [False, True] if channels_last == "auto" else [channels_last == "on"]
    candidates = [(d, cl) for d in dtypes for cl in layouts]
    # Asked for bfloat16 on a CPU without it: it runs, but say what it costs (measured on a small batch).
    warn_slow = amp == "on" and device.type == "cpu" and not native
    if warn_slow:
        candidates += [("float32", cl) for cl in layouts]
    if len(candidates) == 1:
        d, cl = candidates[0]
        reason = "as asked" if amp != "auto" else why
        return Choice(d != "float32", d if d != "float32" else on_dtype, cl, reason)

    key = json.dumps(
        {
            "machine": machine_id(device, threads),
            "model": model_key,
            "shape": list(shape),
            "asked": [amp, amp_dtype, channels_last],
        },
        sort_keys=True,
    )
    hit = _read_cache().get(key)
    if isinstance(hit, dict):
        try:
            return Choice(**{**hit, "cached": True})
        except TypeError:
            pass  # written by another version: measure again
    if warn_slow:
        shape = (min(shape[0], 16), *shape[1:])
    try:
        with phase(f"measuring AMP and memory format ({len(candidates)} candidates, about {BUDGET_S:g} s)"):
            times = measure(model_fn, shape, num_classes, device, candidates)
    except Inconclusive:  # keep the default, say so, and measure again next time (nothing cached)
        d, cl = candidates[0]
        return Choice(
            d != "float32",
            d if d != "float32" else on_dtype,
            cl,
            f"{why}; timing inconclusive (the machine is busy): kept {_name(d, cl)}",
            warning="warning: --amp on: the slowdown could not be measured (machine busy)" if warn_slow else "",
        )
    choice = _pick(times, dtypes, layouts, amp, why, warn_slow)
    _write_cache(key, choice)
    return choice


def _pick(
    times: dict[tuple[str, bool], float], dtypes: list[str], layouts: list[bool], amp: str, why: str, warn_slow: bool
) -> Choice:
    ms = {_name(d, cl): round(t * 1000, 4) for (d, cl), t in times.items()}
    # The first candidate is the default; another must beat it by MIN_GAIN.
    mine = [(d, cl) for d in dtypes for cl in layouts]
    best = mine[0]
    for cand in mine[1:]:
        if times[cand] * MIN_GAIN < times[best]:
            best = cand
    d, cl = best
    parts = []
    if len(dtypes) > 1:
        other = next(o for o in dtypes if o != d)
        ratio = times[(other, cl)] / times[best]
        parts.append(
            f"{why}; {d} measured {ratio:.1f}x faster than {other}"
            if ratio >= 1
            else f"{why}; {d} measured within {1 / ratio:.2f}x of {other}"
        )
    elif amp == "auto":
        parts.append(why)
    if len(layouts) > 1:
        ratio = times[(d, not cl)] / times[best]
        parts.append(f"channels_last {'on' if cl else 'off'} measured {ratio:.2f}x faster")
    warning = ""
    if warn_slow:
        slow = times[(d, cl)] / times[("float32", cl)]
        warning = (
            f"warning: --amp on: {why}; bfloat16 measured {slow:.1f}x slower than float32 here "
            f"(--amp auto picks the faster)"
        )
    reason = "; ".join(parts) or "as asked"
    return Choice(d != "float32", d if d != "float32" else "bfloat16", cl, reason, ms, warning)
