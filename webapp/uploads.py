"""What the page accepts as an upload, checked before anything is decoded.

The uploader takes any file, so that every refusal reaches this code and is written on the page
(Streamlit's own type and size checks run in the browser and show only a red chip). An upload is
refused, in this order, when it is over ``--max_upload_mb``, when its name is not an image's, and
when its header says it has more pixels than ``--max_pixels`` (nothing is decoded then).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.images import IMAGE_EXTENSIONS, ImageError, open_image

MB = 1024 * 1024


def size_text(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB / 10 else f"{max(1, round(size / 1024))} KB"


def upload_problem(name: str, size: int, max_mb: float) -> str:
    """Why an upload is refused before decoding ('' when it may be decoded), with the limit."""
    if size > max_mb * MB:
        return f"{name} is {size_text(size)}; the limit is {max_mb:g} MB (--max_upload_mb)"
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        return f"{name} is not an image file; accepted: {', '.join(sorted(IMAGE_EXTENSIONS))}"
    return ""


def decode_upload(name: str, data: bytes, channels: int, max_pixels: int) -> torch.Tensor:
    """An upload as uint8 (channels, H, W), the first frame of an animation; ValueError with one line.

    The pixel count is checked from the header first; EXIF orientation is applied, alpha dropped,
    16-bit scaled to 8-bit, as the command line's decoder does.
    """
    from PIL import ImageOps
    try:
        im = open_image(data, max_pixels=max_pixels)
    except ImageError as e:
        message = str(e).replace("the upload", name, 1)
        raise ValueError(message if name in message else f"{name}: {message}") from None
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = (np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8)
    else:
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    if channels == 3 and arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()
