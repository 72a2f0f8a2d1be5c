"""Loading a local weights file into a freshly built model (the offline ``--pretrained_weights``).

Tensors are matched by name; if the file names its tensors differently but holds the same
architecture (e.g. another EfficientNet port), they are matched by order and shape instead.
Tensors whose shape differs -- the classifier head for a new class count, the stem for another
number of input channels -- keep their fresh initialisation.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from common.errors import AppError


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AppError(f"pretrained weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file or pickled code: never executed, always reported
        raise AppError(f"cannot read pretrained weights {path}: {str(e).splitlines()[0][:200]}") from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AppError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained_file(model: nn.Module, path: str | Path) -> dict[str, int]:
    """Copy matching tensors from ``path`` into ``model``; returns counts of what was used."""
    src = _read_state_dict(Path(path))
    dst = model.state_dict()
    by_name = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    matched = by_name
    if len(by_name) < len(dst) // 2 and len(src) == len(dst):
        by_order = {kd: vs for (kd, vd), vs in zip(dst.items(), src.values()) if vd.shape == vs.shape}
        if len(by_order) > len(by_name):
            matched = by_order
    if len(matched) < len(dst) // 2:
        raise AppError(f"{path} does not fit this architecture: only {len(matched)} of {len(dst)} tensors match")
    model.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "total": len(dst)}
