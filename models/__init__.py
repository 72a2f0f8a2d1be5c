"""Model factory: ``custom`` (the Custom CNN), ``efficientnet_b0`` and any other timm model name.

>>> model = build_model("efficientnet_b0", num_classes=10, in_channels=1, image_size=32)

Grayscale input works with RGB architectures: the stem is adapted to ``in_chans`` (pretrained RGB
filters summed), for hub weights by timm and for local files by ``models.weights``.
``pretrained=True`` downloads from timm's hub; ``pretrained_weights`` loads a local file instead,
with no network (see models/weights.py). Either way the classifier head is new, sized for the
dataset's classes; ``models.transfer`` freezes the rest for ``--freeze_epochs``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from torch import nn

from common.errors import AppError, UsageError, unknown_name
from models.custom_cnn import CustomCNN
from models.transfer import head_keys, set_backbone_frozen, split_parameters
from models.weights import load_pretrained_file


def _custom(
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: int = 32,
    depth: int = 3,
    dropout: float = 0.1,
    widths: tuple[int, ...] = (),
    **_,
) -> nn.Module:
    return CustomCNN(num_classes, in_channels, image_size, width=width, depth=depth, dropout=dropout, widths=widths)


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
    def build(
        num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0, pretrained: bool = False, **_
    ) -> nn.Module:
        import timm

        if pretrained:
            _use_offline_hub_if_unreachable()
        try:
            return timm.create_model(
                name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels, drop_rate=dropout
            )
        except (OSError, RuntimeError, ValueError) as e:
            if not pretrained:
                raise
            raise AppError(
                f"could not fetch pretrained weights for '{name}' from timm's hub "
                f"({type(e).__name__}; offline?). Use --pretrained_weights PATH to load a local "
                f"file (docs/datasets.md, 'Transfer learning', names offline ImageNet weights), or drop --pretrained"
            ) from None

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


def build_model(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    width: int = 32,
    depth: int = 3,
    dropout: float = 0.1,
    widths: tuple[int, ...] = (),
    pretrained: bool = False,
    pretrained_weights: str = "",
    verbose: bool = False,
) -> nn.Module:
    """Build model ``name`` with a ``num_classes`` head for ``in_channels`` x ``image_size`` input.

    ``verbose`` prints what pretrained weights were loaded (training does; evaluation, which
    replaces them with a checkpoint's, does not ask for any)."""
    valid_model(name)
    builder = MODELS.get(name) or _timm(name)
    if pretrained and name == "custom":
        raise UsageError("the custom model has no hub weights; use --pretrained_weights PATH")
    model = builder(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        width=width,
        depth=depth,
        dropout=dropout,
        widths=widths,
        pretrained=pretrained and not pretrained_weights,
    )
    if pretrained_weights:
        report = load_pretrained_file(model, pretrained_weights, name)
        if verbose:
            print(report.line())
    elif pretrained and verbose:
        print(f"pretrained weights for {name} from timm's hub (new head: {', '.join(head_keys(model))})")
    return model


__all__ = ["MODELS", "CustomCNN", "build_model", "head_keys", "set_backbone_frozen", "split_parameters", "valid_model"]
