"""Rebuild a model from its checkpoint alone, and predict image files with its eval preprocessing.

The checkpoint names the architecture (``config``), the classes and the preprocessing, so
neither ``evaluate.py`` nor ``predict.py`` takes model flags. Files are turned into model input
exactly as in evaluation: ``open_image`` (the one guarded decoder) with the checkpoint's channel count, then the one
``eval_transform``; the forward pass is the evaluation loop's own ``predict_logits`` (with the
run's test-time augmentation), so predict and evaluate cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from artifacts.model_io import LoadedModel
from data.images import ImageError, open_image, warm_up_decoder
from data.transforms import eval_transform
from engine.loop import predict_logits


def predict_probs(loaded: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) on the CPU for a preprocessed batch."""
    dummy = torch.zeros(x.shape[0], dtype=torch.long)
    logits, _ = predict_logits(loaded.model, [(x, dummy)], loaded.amp, tta=loaded.cfg.tta)
    return logits.softmax(1)


def preprocess(image: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    """One decoded uint8 image (C, H, W) -> model input (1, C, h, w) on the model's device."""
    return eval_transform(image.unsqueeze(0).to(loaded.device), loaded.preprocessing)


def precision(loaded: LoadedModel) -> str:
    """The arithmetic a model runs in: float32, or its autocast dtype."""
    return str(loaded.amp.dtype).removeprefix("torch.") if loaded.amp.enabled else "float32"


def warm_up(members: Sequence[LoadedModel], batch: int) -> float:
    """Seconds spent on one throw-away forward pass per model at the batch size to come, plus the
    decoder's start-up: lazy initialisation would otherwise be billed to the first images."""
    start = time.perf_counter()
    warm_up_decoder()
    for loaded in members:
        h, w = loaded.preprocessing["input_size"]
        predict_probs(loaded, torch.zeros(max(1, batch), loaded.channels, h, w, device=loaded.device))
    return time.perf_counter() - start


NO_SUCH_FILE = "no such file"  # a Prediction's error for an input path that does not exist


@dataclass
class Prediction:
    """One file's result: probabilities, or the reason it could not be read."""

    path: str
    probs: torch.Tensor | None = None
    error: str = ""
    latency_ms: float = 0.0  # decode + preprocess of this file + its share of the batch's forward pass

    def top(self, class_names: Sequence[str], k: int) -> list[tuple[str, float]]:
        return [] if self.probs is None else top_classes(self.probs, class_names, k)


def top_classes(probs: torch.Tensor, class_names: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable (class, probability) of one image's ``probs``, best first."""
    p, idx = probs.topk(min(k, len(class_names)))
    return [(class_names[i], float(v)) for v, i in zip(p.tolist(), idx.tolist())]


def _reason(path: Path, err: ImageError) -> str:
    msg = str(err)
    prefix = f"{path}: "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _predict_chunk(loaded: LoadedModel, paths: Sequence[Path]) -> list[Prediction]:
    preds: list[Prediction] = []
    inputs, owners = [], []
    for path in paths:
        start = time.perf_counter()
        try:
            x = preprocess(open_image(path, loaded.channels, loaded.cfg.max_image_pixels), loaded)
        except ImageError as e:
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
        yield from _predict_chunk(loaded, paths[start : start + batch_size])
