"""amp/channels_last auto, the decision cache, and run settings that --resume must replay (threads).

The CPU's bfloat16 support and the timings are replaced by fakes: no test depends on this
machine having bfloat16 instructions or on how busy it is.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

import train as train_script
from artifacts.checkpoint import load_checkpoint
from runtime import autotune, runtime
from settings.config import from_dict, parse_args

SMALL = ["--width", "8", "--depth", "2", "--batch_size", "128", "--device", "cpu"]  # FAST without fixed choices


def probe(model_key: dict, shape: tuple) -> dict:
    """decide()'s keyword arguments for a 10-class model on one CPU thread (model_fn unused: measure is faked)."""
    return dict(device=torch.device("cpu"), threads=1, model_fn=None, model_key=model_key, shape=shape, num_classes=10)


def train(tmp_path, capsys, *args: str) -> str:
    """train.py in-process; AMP, channels_last and threads left to what the run (or its checkpoint) decides."""
    capsys.readouterr()
    train_script.main(["--checkpoint_dir", str(tmp_path / "ck"), *SMALL, *args])
    return capsys.readouterr().out


def fake_times(**per_image):
    """A stand-in for autotune.measure: fixed seconds per image, and a record of each call."""
    calls = []

    def measure(model_fn, shape, num_classes, device, candidates, **_):
        calls.append((shape, list(candidates)))
        return {c: per_image[c[0] + ("_cl" if c[1] else "")] for c in candidates}

    measure.calls = calls
    return measure


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(autotune, "cpu_bf16", lambda: (False, "this CPU (AVX2) has no native bfloat16"))


@pytest.fixture
def bf16(monkeypatch):
    monkeypatch.setattr(autotune, "cpu_bf16", lambda: (True, "this CPU (AVX512) has native bfloat16"))


def test_auto_without_native_bf16_is_float32_says_why_records_and_caches(tmp_path, capsys, no_bf16, monkeypatch):
    measure = fake_times(float32=2.0, float32_cl=1.0)
    monkeypatch.setattr(autotune, "measure", measure)
    out = train(tmp_path, capsys, "--epochs", "1", "--run_name", "a", "--threads", "1")
    assert "AMP off, channels_last on: this CPU (AVX2) has no native bfloat16; channels_last on measured 2.00x" in out
    assert len(measure.calls) == 1 and {c[0] for c in measure.calls[0][1]} == {"float32"}  # bf16 never timed
    assert measure.calls[0][0] == (128, 1, 8, 8)  # the run's batch shape
    saved = yaml.safe_load((tmp_path / "ck" / "a" / "config.yaml").read_text())
    assert (saved["amp"], saved["channels_last"], saved["threads"]) == ("off", "on", 1)
    runtime_record = load_checkpoint(tmp_path / "ck" / "a" / "last.pt")["runtime"]
    assert runtime_record["channels_last"] and not runtime_record["amp"]
    assert runtime_record["ms_per_image"] == {"float32": 2000.0, "float32+channels_last": 1000.0}

    out = train(tmp_path, capsys, "--epochs", "1", "--run_name", "b", "--threads", "1")  # same machine, model, shape
    assert "(cached decision)" in out and len(measure.calls) == 1
    args = probe({"model": "custom", "width": 8, "depth": 2, "classes": 10}, (64, 1, 8, 8))
    autotune.decide("auto", "auto", "auto", **args)  # another batch shape: measured again
    assert len(measure.calls) == 2 and autotune.decide("auto", "auto", "auto", **args).cached


def test_auto_with_native_bf16_takes_the_faster_and_resume_replays_it(tmp_path, capsys, bf16, monkeypatch):
    monkeypatch.setattr(autotune, "measure", fake_times(float32=3.0, float32_cl=3.0, bfloat16=1.5, bfloat16_cl=2.0))
    out = train(tmp_path, capsys, "--epochs", "2", "--run_name", "r", "--save_every", "1", "--threads", "1")
    assert (
        "AMP bfloat16, channels_last off: this CPU (AVX512) has native bfloat16; bfloat16 measured 2.0x "
        "faster than float32" in out
    )
    # Resumed where bfloat16 would not be chosen (nor measured): the run keeps its own choice.
    monkeypatch.setattr(autotune, "cpu_bf16", lambda: (False, "no bf16 here"))
    monkeypatch.setattr(autotune, "measure", None)  # calling it would fail the test
    out = train(tmp_path, capsys, "--resume", str(tmp_path / "ck" / "r" / "epoch_001.pt"), "--run_name", "r2")
    assert "AMP bfloat16, channels_last off: recorded in the checkpoint (this CPU (AVX512)" in out
    assert yaml.safe_load((tmp_path / "ck" / "r2" / "config.yaml").read_text())["amp"] == "on"


def test_explicit_amp_on_without_bf16_runs_but_warns_with_the_factor(tmp_path, capsys, no_bf16, monkeypatch):
    measure = fake_times(float32=1.0, bfloat16=10.4)
    monkeypatch.setattr(autotune, "measure", measure)
    out = train(tmp_path, capsys, "--epochs", "1", "--amp", "on", "--channels_last", "off", "--threads", "1")
    assert "AMP bfloat16, channels_last off" in out
    assert out.count("bfloat16 measured 10.4x slower than float32") == 1
    assert measure.calls[0][0][0] == 16  # the slow path is timed on a few images only


def test_an_unreadable_cache_is_ignored_and_replaced(tmp_path, no_bf16, monkeypatch):
    path = autotune.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    monkeypatch.setattr(autotune, "measure", fake_times(float32=1.0, float32_cl=2.0))
    args = probe({"m": 1}, (4, 1, 8, 8))
    first = autotune.decide("auto", "auto", "auto", **args)
    assert not first.channels_last and not first.cached
    assert autotune.decide("auto", "auto", "auto", **args).cached  # the corrupt file was replaced by a good one


def test_measure_times_every_candidate_on_a_real_model_without_touching_the_rng():
    from models import build_model

    torch.manual_seed(1)
    before = torch.get_rng_state()
    times = autotune.measure(
        lambda: build_model("custom", 10, 1, 8, width=8, depth=2),
        (32, 1, 8, 8),
        10,
        torch.device("cpu"),
        [("float32", False), ("float32", True)],
        budget_s=10,
    )
    assert set(times) == {("float32", False), ("float32", True)} and all(0 < t < 1 for t in times.values())
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    "flags, cap, isa, native",
    [
        ({"avx2"}, "AVX2", "", False),
        ({"avx512f", "avx512_bf16"}, "AVX512", "", True),
        ({"avx512f", "amx_bf16"}, "AVX512", "AVX512_CORE_AMX", True),
        ({"avx512f", "avx512_bf16"}, "AVX2", "", False),  # ATEN_CPU_CAPABILITY=avx2
        ({"avx512f", "avx512_bf16"}, "AVX512", "AVX2", False),  # ONEDNN_MAX_CPU_ISA=AVX2
    ],
)
def test_native_bf16_probe_reads_flags_and_respects_isa_caps(monkeypatch, flags, cap, isa, native):
    monkeypatch.setattr(autotune, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: cap)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert autotune.cpu_bf16()[0] is native


def test_old_boolean_amp_settings_still_load(tmp_path):
    assert (from_dict({"amp": True, "channels_last": False}).amp, from_dict({"channels_last": True}).channels_last) == (
        "on",
        "on",
    )
    (tmp_path / "c.yaml").write_text("amp: true\nchannels_last: false\n")
    cfg, _ = parse_args(["--config", str(tmp_path / "c.yaml")])
    assert (cfg.amp, cfg.channels_last) == ("on", "off")
    assert parse_args(["--amp"])[0].amp == "on" and parse_args(["--no-amp"])[0].amp == "off"
    assert parse_args([])[0].amp == "auto"


# ------------------------------------------------------------------ threads
def test_default_threads_ignore_load_that_does_not_persist(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda _: {0, 1})
    samples = iter([1.0, 0.1])  # a short process at start, gone a second later
    assert runtime.default_threads(lambda interval: next(samples)) == 2
    samples = iter([1.0, 0.9])  # a long job: leave its core alone
    assert runtime.default_threads(lambda interval: next(samples)) == 1


@pytest.mark.slow  # 2 threads beside a spinning process: OpenMP waits, by design of the test
def test_resume_keeps_the_runs_thread_count_while_another_process_is_busy(tmp_path, capsys):
    common = ["--amp", "off", "--channels_last", "off", "--epochs", "2", "--save_every", "1", "--seed", "4"]
    train(tmp_path, capsys, *common, "--threads", "2", "--run_name", "full")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # keeps one core busy throughout
    try:  # no --threads: the default would now count the busy core out; the run's own 2 must win
        out = train(tmp_path, capsys, "--resume", str(tmp_path / "ck" / "full" / "epoch_001.pt"), "--run_name", "res")
    finally:
        busy.kill()
        busy.wait()
    assert "(2 threads)" in out
    full, res = (load_checkpoint(tmp_path / "ck" / n / "last.pt")["model"] for n in ("full", "res"))
    assert all(torch.equal(full[k], res[k]) for k in full)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_deterministic_resume_on_cuda_is_bit_identical(tmp_path, capsys):
    train(
        tmp_path,
        capsys,
        "--device",
        "cuda",
        "--deterministic",
        "--epochs",
        "3",
        "--save_every",
        "1",
        "--run_name",
        "full",
    )  # amp auto: float16 + GradScaler (or bfloat16) on the GPU
    train(
        tmp_path,
        capsys,
        "--resume",
        str(tmp_path / "ck" / "full" / "epoch_001.pt"),
        "--run_name",
        "res",
        "--device",
        "cuda",
    )
    full, res = (load_checkpoint(tmp_path / "ck" / n / "last.pt")["model"] for n in ("full", "res"))
    assert all(torch.equal(full[k], res[k]) for k in full)


def test_compile_trains_through_the_compiled_module_and_checkpoints_the_plain_one(tmp_path, capsys, monkeypatch):
    """The wiring of --compile, with torch.compile replaced by a counting wrapper: the real compiler's
    cold start (~1-3 min for this tiny model here) is measured by bench/compile_speed.py instead."""
    calls = []

    class Compiled(torch.nn.Module):  # what torch.compile returns: the module as ``_orig_mod``
        def __init__(self, mod):
            super().__init__()
            self._orig_mod = mod

        def forward(self, x):
            calls.append(x.shape[0])
            return self._orig_mod(x)

    monkeypatch.setattr(torch, "compile", lambda model, mode: Compiled(model) if mode == "default" else None)
    out = train(
        tmp_path,
        capsys,
        "--epochs",
        "1",
        "--compile",
        "--run_name",
        "c",
        "--threads",
        "1",
        "--amp",
        "off",
        "--channels_last",
        "off",
    )
    assert "--compile: torch.compile(mode='default')" in out
    assert sum(calls) == 1257  # every training image went through the compiled module, once
    weights = load_checkpoint(tmp_path / "ck" / "c" / "last.pt")["model"]
    assert weights and not any(k.startswith("_orig_mod") for k in weights)  # loadable without compiling


def test_a_measurement_far_over_budget_keeps_the_default_and_is_not_cached(bf16, monkeypatch):
    def too_busy(*args, **kwargs):
        raise autotune.Inconclusive

    monkeypatch.setattr(autotune, "measure", too_busy)
    choice = autotune.decide("auto", "auto", "auto", **probe({"m": 2}, (4, 1, 8, 8)))
    assert (choice.amp, choice.channels_last) == (False, False) and "timing inconclusive" in choice.reason
    assert not autotune.cache_path().exists()


def test_measure_gives_up_past_twice_its_budget():
    from models import build_model

    with pytest.raises(autotune.Inconclusive):
        autotune.measure(
            lambda: build_model("custom", 10, 1, 8, width=8, depth=2),
            (32, 1, 8, 8),
            10,
            torch.device("cpu"),
            [("float32", False), ("float32", True)],
            budget_s=1e-6,
        )
