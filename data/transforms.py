"""Augmentation presets and the evaluation transform, shared by training, evaluation and prediction.

In-memory data is augmented as whole uint8 batches already on the training device: no per-item PIL
work; random numbers come from a CPU ``torch.Generator`` so a seeded run draws the same
augmentations on any device. Streamed folders apply the same presets per image in DataLoader
workers (``sample_augmentation``, torchvision transforms v2 on uint8 tensors). Both paths end in
``eval_transform`` on the batch, so normalisation is written exactly once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# preset -> (pad for random translation at 32 px and below, horizontal flip)
AUGMENTATIONS: dict[str, tuple[int, bool]] = {
    "none": (0, False),
    "light": (1, False),      # small shifts only: safe for digits and text
    "standard": (2, True),    # shifts and mirror images: natural images, clothing
}


def preset_params(preset: str, size: int) -> tuple[int, bool]:
    """(pad, flip) of ``preset`` for images ``size`` pixels high.

    The pads were chosen for 8-32 px images; larger images scale them with the side so that a
    224 px folder is shifted by the same share of the picture (7 px light, 14 px standard).
    """
    pad, flip = AUGMENTATIONS[preset]
    return (max(pad, round(pad * size / 32)) if pad else 0), flip


def sample_augmentation(preset: str, size: int):
    """The per-image form of ``preset`` for DataLoader workers (uint8 (C, H, W) in and out).

    Zero-padded random crop == random translation with zero fill, as in ``augment``.
    """
    from torchvision.transforms import v2
    pad, flip = preset_params(preset, size)
    steps = []
    if pad:
        steps.append(v2.RandomCrop(size, padding=pad, fill=0))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps) if steps else None


def _random_translate(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels (zero fill), one gather for the whole batch."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def augment(x: torch.Tensor, preset: str, gen: torch.Generator) -> torch.Tensor:
    """Apply an augmentation preset to a uint8 batch (N, C, H, W)."""
    pad, flip = preset_params(preset, x.shape[-2])
    if pad:
        x = _random_translate(x, pad, gen)
    if flip:
        mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def eval_transform(x: torch.Tensor, pre: dict) -> torch.Tensor:
    """uint8 batch -> normalised float batch at the model's input size (the one eval transform)."""
    h, w = pre["input_size"]
    x = x.float().div_(255.0)
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(pre["mean"], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"], device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a whole uint8 tensor (N, C, H, W) once, in chunks to bound memory."""
    out = [F.interpolate(chunk.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
           .round_().clamp_(0, 255).to(torch.uint8) for chunk in images.split(4096)]
    return torch.cat(out) if out else images
