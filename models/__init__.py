"""Model factory: ``custom`` (the Custom CNN), ``efficientnet_b0`` and any other timm model name.

>>> model = build_model("efficientnet_b0", num_classes=10, in_channels=1, image_size=32)

Grayscale input works with RGB architectures: timm adapts the stem to ``in_chans`` (summing
pretrained RGB filters). ``pretrained=True`` downloads from timm's hub; ``pretrained_weights``
loads a local file instead, with no network.
"""
from __future__ import annotations

import os
import socket
from typing import Callable

from torch import nn

from common.errors import AppError, UsageError, unknown_name
from models.custom_cnn import CustomCNN
from models.weights import load_pretrained_file


def _custom(num_classes: int, in_channels: int, image_size: int, width: int = 32, depth: int = 3,
            dropout: float = 0.1, **_) -> nn.Module:
    return CustomCNN(num_classes, in_channels, image_size, width=width, depth=depth, dropout=dropout)


HUB_HOST = ("huggingface.co", 443)


def _use_offline_hub_if_unreachable() -> None:
    """Without a network, huggingface_hub retries for about a minute before failing. One quick
    connection attempt decides instead: unreachable -> offline mode (cached weights still load)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
        return
    try:
        socket.create_connection(HUB_HOST, timeout=3).close()
    except OSError:
        import huggingface_hub.constants as hub
        hub.HF_HUB_OFFLINE = True  # read at call time; the env var is read only at import


def _timm(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
              pretrained: bool = False, **_) -> nn.Module:
        import timm
        if pretrained:
            _use_offline_hub_if_unreachable()
        try:
            return timm.create_model(name, pretrained=pretrained, num_classes=num_classes,
                                     in_chans=in_channels, drop_rate=dropout)
        except (OSError, RuntimeError, ValueError) as e:
            if not pretrained:
                raise
            raise AppError(f"could not fetch pretrained weights for '{name}' from timm's hub "
                           f"({type(e).__name__}; offline?). Use --pretrained_weights PATH to load a local "
                           f"file, or drop --pretrained") from None
    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    "custom": _custom,
    "efficientnet_b0": _timm("efficientnet_b0"),
}


def valid_model(name: str) -> None:
    """Raise with the valid names unless ``name`` is registered or a timm architecture."""
    if name in MODELS:
        return
    import timm
    if not timm.is_model(name):
        err = unknown_name("model", name, MODELS)
        raise UsageError(f"{err} (or any timm model name, see timm.list_models())")


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, *, width: int = 32,
                depth: int = 3, dropout: float = 0.1, pretrained: bool = False,
                pretrained_weights: str = "") -> nn.Module:
    """Build model ``name`` with a ``num_classes`` head for ``in_channels`` x ``image_size`` input."""
    valid_model(name)
    builder = MODELS.get(name) or _timm(name)
    if pretrained and name == "custom":
        raise UsageError("the custom model has no hub weights; use --pretrained_weights PATH")
    model = builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size, width=width,
                    depth=depth, dropout=dropout, pretrained=pretrained and not pretrained_weights)
    if pretrained_weights:
        load_pretrained_file(model, pretrained_weights)
    return model


__all__ = ["MODELS", "CustomCNN", "build_model", "valid_model"]
