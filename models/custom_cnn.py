"""The Custom CNN: stages of (conv-BN-ReLU) x2 with pooling, for any input channels and size.

Width doubles at each stage (capped at 8x), or each stage's channels are given (``widths``); a
stage pools only while the feature map is at least 2x2, so 8x8 digits and 224x224 photos both
work; the head is global average pooling + dropout + a linear layer sized to ``num_classes``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CustomCNN(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        width: int = 32,
        depth: int = 3,
        dropout: float = 0.1,
        widths: Sequence[int] = (),
    ):
        super().__init__()
        # Explicit widths let the cheap low-resolution stages be wide while the full-size first
        # stage stays narrow: on a CPU the first stage's convolutions dominate the cost.
        stages = list(widths) or [width * min(2**i, 8) for i in range(depth)]
        if not stages or min(stages) < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"the custom CNN needs at least one stage of >= 1 channels, >= 1 input channel and >= 1 class "
                f"(got stages {stages}, {in_channels} input channels, {num_classes} classes)"
            )
        layers: list[nn.Module] = _conv_bn(in_channels, stages[0])
        cin, size = stages[0], image_size
        for cout in stages:
            layers += _conv_bn(cin, cout) + _conv_bn(cout, cout)
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))
