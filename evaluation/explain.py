"""Explain predictions: per-image CAM figures (``explain.py``, the web page) and the top-losses grid.

Images go through the checkpoint's own decode and ``eval_transform`` (as in predict.py), so the
heat map is of exactly the input the model classifies.
"""
from __future__ import annotations
from common.spelling import plural

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from data.images import decode_file
from evaluation.cam import Explainer, display_rgb, overlay
from evaluation.cam_plots import save_explanation, save_top_losses
from evaluation.inference import predict_probs, preprocess, top_classes


@dataclass
class Explanation:
    rgb: np.ndarray  # the input as shown (H, W, 3) float in [0, 1]
    blended: np.ndarray  # heat map over the input, uint8 (H, W, 3)
    top: list[tuple[str, float]]  # top-k (class, probability), k=3 by default
    target: str  # the class the heat map explains

    def title(self, name: str, method: str, layer: str) -> str:
        return f"{name}: {method} for class '{self.target}' at layer {layer}"


def explain_image(explainer: Explainer, image_u8: torch.Tensor, target: int | None, k: int = 3) -> Explanation:
    """CAM of one decoded uint8 image (C, H, W) for class ``target`` (None: its predicted class)."""
    loaded = explainer.loaded
    x = preprocess(image_u8, loaded)
    probs = predict_probs(loaded, x)[0]
    cls = int(probs.argmax()) if target is None else target
    cam_map = explainer(x, [cls])[0]
    rgb = display_rgb(image_u8.cpu(), tuple(loaded.preprocessing["input_size"]))
    top = top_classes(probs, loaded.class_names, k)
    return Explanation(rgb, overlay(rgb, cam_map), top, loaded.class_names[cls])


def explain_file(explainer: Explainer, path: Path, target: int | None, out_dir: Path) -> Path:
    """Write ``out_dir/<stem>_cam.png`` for one image file; ImageDecodeError propagates."""
    ex = explain_image(explainer, decode_file(path, explainer.loaded.channels), target)
    out = out_dir / f"{path.stem}_cam.png"
    save_explanation(out, ex.rgb, ex.blended, ex.top, ex.title(path.name, explainer.method, explainer.layer_name))
    return out


def top_loss_indices(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` most confident mistakes (highest top-1 probability among wrong predictions)."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    order = np.argsort(-probs[wrong, pred[wrong]], kind="stable")
    return wrong[order][:k]


def write_top_losses(explainer: Explainer, images_u8: Sequence[torch.Tensor], probs: np.ndarray,
                     labels: np.ndarray, indices: Sequence[int], path: Path) -> None:
    """``top_losses.png``: a CAM of the predicted class for each sample in ``indices``."""
    names = explainer.loaded.class_names
    overlays, titles = [], []
    for i, image in zip(indices, images_u8):
        ex = explain_image(explainer, image, None)
        pred, true = int(probs[i].argmax()), int(labels[i])
        loss = -np.log(max(float(probs[i, true]), 1e-12))
        overlays.append(ex.blended)
        titles.append(f"#{i}: {names[pred]} / {names[true]}\nloss {loss:.2f}, p {probs[i, pred]:.3f}")
    heading = (f"top losses: the {plural(len(indices), 'most confident mistake')} (predicted / true; "
               f"{explainer.method} of the predicted class)")
    save_top_losses(path, overlays, titles, heading)


def split_image(split, i: int, channels: int) -> torch.Tensor:
    """Sample ``i`` of a dataset split as a decoded uint8 (C, H, W), in memory or streamed from disk."""
    return split.images[i] if split.in_memory else decode_file(split.ids[i], channels)
