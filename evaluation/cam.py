"""Grad-CAM heat maps with the ``grad-cam`` package (pytorch-grad-cam): which pixels drove a prediction.

The target layer is picked automatically: for the Custom CNN the output of its last conv-BN-ReLU
(before the last pooling, so the map keeps twice the resolution); for timm models the last stage
that timm itself lists as a feature map (``feature_info``); otherwise the last ``Conv2d``.
``--layer NAME`` picks another one; an unknown name raises with the candidates.

CAMs are computed in float32 without autocast: they need gradients, and the heat map is only a
picture, so the run's own AMP setting does not matter here.

A map can be degenerate: Grad-CAM keeps only positive evidence (a ReLU over the weighted
activations), so at a layer whose evidence for the class is all negative, or whose activations are
constant, the map is blank. ``is_empty`` detects it; ``Explainer.working_layers`` finds the layers
whose maps are not degenerate on the images at hand, which is what ``--layer`` suggestions list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from artifacts.model_io import LoadedModel
from common.errors import UsageError
from common.spelling import plural

METHODS = ("gradcam", "gradcam++", "eigencam")
CMAP = "inferno"  # perceptually uniform and readable in gray; low importance stays the plain image
EMPTY_RANGE = 1e-3  # max - min of a [0, 1] map below this: blank or constant, nothing to see
DISPLAY_SIDE = 224  # the smallest side figures show an input at (8x8 digits become 28x28-pixel cells)
SUGGEST_FROM = 12  # layers tried (the deepest ones) when looking for maps that are not degenerate


def _cam_class(method: str):
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus

    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM}
    if method not in classes:
        raise UsageError(f"unknown CAM method '{method}'; valid: {', '.join(METHODS)}")
    return classes[method]


def layer_candidates(model: nn.Module) -> list[str]:
    """Module names that output a spatial feature map: convolutions, the blocks holding them, and
    the normalisations/activations after them (the Custom CNN's default is a ReLU)."""
    spatial = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.SiLU, nn.GELU)
    return [
        name
        for name, m in model.named_modules()
        if name and (isinstance(m, spatial) or any(isinstance(sub, nn.Conv2d) for sub in m.modules()))
    ]


def default_layer(model: nn.Module) -> str:
    """The conventional Grad-CAM layer of ``model`` (see the module docstring)."""
    from models.custom_cnn import CustomCNN

    if isinstance(model, CustomCNN):
        relus = [i for i, m in enumerate(model.features) if isinstance(m, nn.ReLU)]
        return f"features.{relus[-1]}"
    info = getattr(model, "feature_info", None)  # timm: [{'module': 'layer4', 'num_chs': ..}, ...]
    if info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        if last:
            return last
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise UsageError(f"{type(model).__name__} has no convolution for Grad-CAM; name a layer with --layer")
    return convs[-1]


def find_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """``name`` (or the default layer) as (name, module); a wrong name lists the candidates."""
    name = name or default_layer(model)
    modules = dict(model.named_modules())
    if name not in modules:
        cands = layer_candidates(model)
        shown = ", ".join(cands[-15:]) + (f" ... ({len(cands)} in all; the last 15 shown)" if len(cands) > 15 else "")
        raise UsageError(f"model has no layer '{name}'; candidates: {shown}")
    return name, modules[name]


def is_empty(cam_map: np.ndarray) -> bool:
    """A map with nothing to show: blank (all zero) or constant, so its colours would be noise."""
    return float(np.ptp(cam_map)) < EMPTY_RANGE


class Explainer:
    """One CAM object for a loaded model; call it with preprocessed batches and target classes."""

    def __init__(self, loaded: LoadedModel, method: str = "gradcam", layer: str | None = None):
        if not any(True for _ in loaded.model.parameters()):  # an onnxruntime model has no gradients
            raise UsageError(f"Grad-CAM needs the PyTorch checkpoint; {loaded.path} cannot be differentiated")
        self.loaded = loaded
        self.layer_name, module = find_layer(loaded.model, layer)
        self.method = method
        self.cam = _cam_class(method)(model=loaded.model, target_layers=[module])

    def __call__(self, x: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
        """Heat maps (N, H, W) in [0, 1] at the input size, for class ``targets[i]`` of image ``i``."""
        return _maps(self.cam, self.loaded.model, x, targets)

    def working_layers(self, x: torch.Tensor, targets: Sequence[int], limit: int = 3) -> list[str]:
        """Up to ``limit`` layers (deepest first, this one excluded) whose maps of ``x`` are none empty."""
        found, modules = [], dict(self.loaded.model.named_modules())
        cands = layer_candidates(self.loaded.model)
        # Activations first: a conv, its BatchNorm and its ReLU would be three names for one place.
        acts = [n for n in cands if isinstance(modules[n], (nn.ReLU, nn.SiLU, nn.GELU))]
        for name in reversed((acts or cands)[-SUGGEST_FROM:]):
            if name == self.layer_name:
                continue
            with _cam_class(self.method)(model=self.loaded.model, target_layers=[modules[name]]) as cam:
                maps = _maps(cam, self.loaded.model, x, targets)
            if not any(is_empty(m) for m in maps):
                found.append(name)
                if len(found) == limit:
                    break
        return found

    def empty_advice(self, x: torch.Tensor, targets: Sequence[int], empty: int, total: int) -> str:
        """The warning for ``empty`` blank maps out of ``total``, with layers that work on ``x``."""
        layers = self.working_layers(x, targets)
        tries = ([f"--layer {' or '.join(layers)}"] if layers else []) + (
            ["--method eigencam"] if self.method != "eigencam" else []
        )  # eigencam needs no gradient sign
        return (
            f"the map is empty at {self.layer_name} for {empty} of {plural(total, 'image')} (nothing drives the "
            f"class there){'; try ' + ' or '.join(tries) if tries else ''}"
        )


def _maps(cam, model: nn.Module, x: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.enable_grad():
        maps = cam(input_tensor=x.float(), targets=[ClassifierOutputTarget(int(t)) for t in targets])
    model.eval()  # grad-cam leaves the model as it found it, but say so explicitly
    return np.nan_to_num(maps.astype(np.float32))  # a constant map normalises to 0/0


def display_rgb(image_u8: torch.Tensor, size: tuple[int, int], min_side: int = DISPLAY_SIDE) -> np.ndarray:
    """A decoded uint8 image (C, H, W) as float RGB (H', W', 3) in [0, 1] at the model's input size,
    enlarged with nearest-neighbour so that 8x8 digits are still visible pixels on the page."""
    import torch.nn.functional as F

    x = image_u8.unsqueeze(0).float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    scale = max(1, -(-min_side // max(size)))
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    x = x[0].clamp(0, 255) / 255.0
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x[:3].permute(1, 2, 0).numpy().astype(np.float32)


def overlay(rgb: np.ndarray, cam_map: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The heat map in CMAP blended over a grayscale copy of ``rgb`` (uint8 H, W, 3).

    The map is upsampled smoothly (bicubic) to the display size, so a 2x2 map of an 8x8 input reads
    as a gradient rather than four blocks. One constant ``alpha``: the colour bar stays true to the
    colours, and the picture's light and dark still show through everywhere.
    """
    import cv2
    from matplotlib import colormaps

    h, w = rgb.shape[:2]
    if cam_map.shape != (h, w):
        cam_map = cv2.resize(cam_map, (w, h), interpolation=cv2.INTER_CUBIC)
    gray = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
    colour = colormaps[CMAP](np.clip(cam_map, 0, 1))[..., :3]
    return np.round(255 * ((1 - alpha) * gray + alpha * colour)).clip(0, 255).astype(np.uint8)


def target_index(target: str, class_names: Sequence[str]) -> int | None:
    """``predicted`` -> None (each image's own top-1); otherwise the index of class ``target``."""
    if target == "predicted":
        return None
    if target in class_names:
        return list(class_names).index(target)
    shown = ", ".join(class_names[:20]) + (" ..." if len(class_names) > 20 else "")
    raise UsageError(f"--target '{target}' is not a class of this model; use 'predicted' or one of: {shown}")
