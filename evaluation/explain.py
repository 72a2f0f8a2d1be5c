"""Explain predictions: per-image CAM figures (``explain.py``, the web page) and the top-losses grid.

Images go through the checkpoint's own decode and ``eval_transform`` (as in predict.py), so the
heat map is of exactly the input the model classifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.spelling import plural
from data.images import open_image
from evaluation.cam import Explainer, display_rgb, is_empty, overlay
from evaluation.cam_plots import save_explanation, save_top_losses
from evaluation.inference import predict_probs, preprocess, top_classes


@dataclass
class Explanation:
    rgb: np.ndarray  # the input as shown (H, W, 3) float in [0, 1]
    blended: np.ndarray  # heat map over the input, uint8 (H, W, 3)
    top: list[tuple[str, float]]  # top-k (class, probability), k=3 by default
    target: str  # the class the heat map explains
    empty: bool = False  # the map is blank or constant: nothing to see at this layer
    x: torch.Tensor | None = None  # the model input (1, C, h, w), to try other layers on
    cls: int = 0  # the index of ``target``

    def title(self, name: str, method: str, layer: str) -> str:
        empty = " (the map is empty here: nothing to see at this layer)" if self.empty else ""
        return f"{name}: {method} for class '{self.target}' at layer {layer}{empty}"


def explain_image(explainer: Explainer, image_u8: torch.Tensor, target: int | None, k: int = 3) -> Explanation:
    """CAM of one decoded uint8 image (C, H, W) for class ``target`` (None: its predicted class)."""
    loaded = explainer.loaded
    x = preprocess(image_u8, loaded)
    probs = predict_probs(loaded, x)[0]
    cls = int(probs.argmax()) if target is None else target
    cam_map = explainer(x, [cls])[0]
    rgb = display_rgb(image_u8.cpu(), tuple(loaded.preprocessing["input_size"]))
    top = top_classes(probs, loaded.class_names, k)
    return Explanation(rgb, overlay(rgb, cam_map), top, loaded.class_names[cls], is_empty(cam_map), x, cls)


def explain_file(explainer: Explainer, path: Path, target: int | None, out_dir: Path) -> tuple[Path, Explanation]:
    """Write ``out_dir/<stem>_cam.png`` for one image file; ImageError propagates."""
    ex = explain_image(
        explainer, open_image(path, explainer.loaded.channels, explainer.loaded.cfg.max_image_pixels), target
    )
    out = out_dir / f"{path.stem}_cam.png"
    save_explanation(out, ex.rgb, ex.blended, ex.top, ex.title(path.name, explainer.method, explainer.layer_name))
    return out, ex


def empty_warning(explainer: Explainer, explanations: Sequence[Explanation]) -> str | None:
    """One line when some maps were empty, with ``--layer`` choices that are not empty on those images."""
    empty = [e for e in explanations if e.empty]
    if not empty:
        return None
    x = torch.cat([e.x for e in empty[:8]])  # a few suffice to tell a working layer from a dead one
    return explainer.empty_advice(x, [e.cls for e in empty[:8]], len(empty), len(explanations))


def loss_of(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample: -log p(true class)."""
    return -np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))


def top_loss_indices(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` mistakes with the highest loss, highest first."""
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    order = np.argsort(-loss_of(probs, labels)[wrong], kind="stable")
    return wrong[order][:k]


def write_top_losses(
    explainer: Explainer,
    images_u8: Sequence[torch.Tensor],
    probs: np.ndarray,
    labels: np.ndarray,
    indices: Sequence[int],
    sample_ids: Sequence[str],
    path: Path,
) -> str | None:
    """``top_losses.png``: input and CAM of the predicted class for each sample in ``indices``, named by
    ``sample_ids`` (misclassified.csv's names). Returns the empty-map warning, if any."""
    names = explainer.loaded.class_names
    losses = loss_of(probs, labels)
    cells, explanations = [], []
    for i, image in zip(indices, images_u8):
        ex = explain_image(explainer, image, None)
        pred, true = int(probs[i].argmax()), int(labels[i])
        title = (
            f"{sample_ids[i]}: true {names[true]}, predicted {names[pred]}\n"
            f"loss {losses[i]:.2f} (p {probs[i, pred]:.2f} vs {probs[i, true]:.2f} true)"
        )
        cells.append((ex.rgb, ex.blended, title + ("\nempty map" if ex.empty else "")))
        explanations.append(ex)
    heading = (
        f"top losses: the {plural(len(indices), 'mistake')} with the highest loss, "
        f"highest first (input | {explainer.method} of the predicted class at {explainer.layer_name})"
    )
    save_top_losses(path, cells, heading)
    return empty_warning(explainer, explanations)


def split_image(split, i: int, channels: int) -> torch.Tensor:
    """Sample ``i`` of a dataset split as a decoded uint8 (C, H, W), in memory or streamed from disk."""
    return (
        split.images[i] if split.in_memory else open_image(split.ids[i], channels, max_pixels=None)
    )  # probed when the split was built
