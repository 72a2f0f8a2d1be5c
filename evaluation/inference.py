"""Rebuild a model from its checkpoint alone, and predict image files with its eval preprocessing.

The checkpoint names the architecture (``config``), the classes and the preprocessing, so
neither ``evaluate.py`` nor ``predict.py`` takes model flags. Files are turned into model input
exactly as in evaluation: ``decode_file`` with the checkpoint's channel count, then the one
``eval_transform``; the forward pass is the evaluation loop's own ``predict_logits`` (with the
run's test-time augmentation), so predict and evaluate cannot drift apart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from data.images import ImageDecodeError, decode_file
from data.transforms import eval_transform
from engine import config as config_mod
from engine.checkpoint import load_checkpoint
from engine.config import Config
from engine.errors import AppError, UsageError
from engine.loop import predict_logits
from engine.runtime import AmpPolicy, amp_policy
from engine.trainer import inference_weights
from models import build_model

PREPROCESSING_KEYS = ("input_size", "channels", "mean", "std")


@dataclass
class LoadedModel:
    """A model ready for inference, with everything its checkpoint says about its input."""

    model: nn.Module
    cfg: Config
    class_names: list[str]
    preprocessing: dict[str, Any]
    device: torch.device
    amp: AmpPolicy
    path: Path

    @property
    def channels(self) -> int:
        return int(self.preprocessing["channels"])


def load_model_from_checkpoint(path: str | Path, device: torch.device) -> LoadedModel:
    """Build the checkpoint's model with its inference weights (EMA when kept), in eval mode.

    Raises AppError for missing/corrupt/other-version files (via ``load_checkpoint``) and for
    weights that do not fit the architecture the checkpoint names.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    cfg = config_mod.from_dict(ckpt["config"])
    pre = ckpt["preprocessing"]
    missing = [k for k in PREPROCESSING_KEYS if k not in pre]
    if missing:
        raise AppError(f"{path} does not describe its preprocessing (missing {', '.join(missing)}); retrain "
                       f"with this version to get a self-describing checkpoint")
    names = [str(n) for n in ckpt["class_names"]]
    try:
        # No pretrained download or weight file: the checkpoint's own weights replace them anyway.
        model = build_model(cfg.model, len(names), int(pre["channels"]), int(pre["input_size"][0]),
                            width=cfg.width, depth=cfg.depth, dropout=cfg.dropout)
    except UsageError as e:  # e.g. a timm architecture this install does not have
        raise AppError(f"cannot rebuild the model of {path}: {e}") from None
    try:
        model.load_state_dict(inference_weights(ckpt))
    except RuntimeError as e:
        raise AppError(f"the weights in {path} do not fit model '{cfg.model}' "
                       f"({str(e).splitlines()[0][:160]}); the checkpoint is damaged or was edited") from None
    model.to(device).eval()
    # The run's own autocast, as its validation and final test used: evaluate.py then reproduces
    # summary.json's accuracy, not one a few images off. A float16 run (a GPU's: its GradScaler
    # state is saved) read on a CPU runs in float32 instead: CPUs have no float16 autocast, and
    # bfloat16 would be neither the run's numbers nor fast on CPUs without bf16 instructions.
    gpu_float16 = bool(ckpt.get("scaler")) or cfg.amp_dtype == "float16"
    amp = amp_policy(cfg.amp == "on" and not (device.type == "cpu" and gpu_float16), cfg.amp_dtype, device)
    return LoadedModel(model, cfg, names, dict(pre), device, amp, path)


def predict_probs(loaded: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) on the CPU for a preprocessed batch."""
    dummy = torch.zeros(x.shape[0], dtype=torch.long)
    logits, _ = predict_logits(loaded.model, [(x, dummy)], loaded.amp, tta=loaded.cfg.tta)
    return logits.softmax(1)


def preprocess(image: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    """One decoded uint8 image (C, H, W) -> model input (1, C, h, w) on the model's device."""
    return eval_transform(image.unsqueeze(0).to(loaded.device), loaded.preprocessing)


NO_SUCH_FILE = "no such file"  # a Prediction's error for an input path that does not exist


@dataclass
class Prediction:
    """One file's result: probabilities, or the reason it could not be read."""

    path: str
    probs: torch.Tensor | None = None
    error: str = ""
    latency_ms: float = 0.0  # decode + preprocess of this file + its share of the batch's forward pass

    def top(self, class_names: Sequence[str], k: int) -> list[tuple[str, float]]:
        if self.probs is None:
            return []
        p, idx = self.probs.topk(min(k, len(class_names)))
        return [(class_names[i], float(v)) for v, i in zip(p.tolist(), idx.tolist())]


def _reason(path: Path, err: ImageDecodeError) -> str:
    msg = str(err)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _predict_chunk(loaded: LoadedModel, paths: Sequence[Path]) -> list[Prediction]:
    preds: list[Prediction] = []
    inputs, owners = [], []
    for path in paths:
        if not path.is_file():  # say it plainly rather than relay the decoder's C++ error
            preds.append(Prediction(str(path), error=NO_SUCH_FILE if not path.exists() else "not a file"))
            continue
        start = time.perf_counter()
        try:
            x = preprocess(decode_file(path, loaded.channels), loaded)
        except ImageDecodeError as e:
            preds.append(Prediction(str(path), error=_reason(path, e)))
            continue
        preds.append(Prediction(str(path), latency_ms=(time.perf_counter() - start) * 1e3))
        inputs.append(x)
        owners.append(len(preds) - 1)
    if inputs:
        start = time.perf_counter()
        probs = predict_probs(loaded, torch.cat(inputs))  # returns on the CPU, so the GPU has finished
        share = (time.perf_counter() - start) * 1e3 / len(inputs)
        for i, row in zip(owners, probs):
            preds[i].probs = row
            preds[i].latency_ms += share
    return preds


def predict_files(loaded: LoadedModel, paths: Sequence[str | Path], batch_size: int = 32) -> Iterator[Prediction]:
    """Predict ``paths`` in order, ``batch_size`` at a time; unreadable files yield an error Prediction."""
    paths = [Path(p) for p in paths]
    for start in range(0, len(paths), max(1, batch_size)):
        yield from _predict_chunk(loaded, paths[start:start + batch_size])
