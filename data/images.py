"""Decode one image file to a uint8 tensor (C, H, W) with the channels a model expects.

torchvision.io decodes JPEG/PNG/WebP/GIF (palette, gray+alpha, RGBA and 16-bit included) in C;
other formats (BMP, TIFF, ...) fall back to Pillow. Shared by dataset loading (the in-memory
cache and the streamed loader), evaluation and prediction, so a picture is turned into a tensor
the same way everywhere. The EXIF Orientation tag is applied on every path: a phone stores a
portrait photo as landscape pixels plus "rotate 90°", and a model must see what people see.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


class ImageDecodeError(Exception):
    """A file that is missing, truncated, corrupt or not an image."""


class ImageError(ValueError):
    """An image refused or unreadable; the message is one line and names the source."""


MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default (Image.MAX_IMAGE_PIXELS): ~268 MB as RGB


def open_image(source: str | Path | bytes, channels: int = 3, max_pixels: int | None = MAX_IMAGE_PIXELS,
               name: str | None = None, say_animated: bool = True) -> torch.Tensor:
    """``source`` (a path or encoded bytes) as uint8 (channels, H, W): the first frame of an animation.

    width x height is read from the header and refused above ``max_pixels`` before any pixel is
    decoded. ``name`` is what messages call the image. Raises ImageError (one line).
    """
    from PIL import Image, ImageOps
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    name = name or ("upload" if is_bytes else str(source))
    try:
        Image.MAX_IMAGE_PIXELS = None  # the limit is checked here, with the caller's value and one message
        with Image.open(io.BytesIO(bytes(source)) if is_bytes else source) as im:  # lazy: the header only
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise ImageError(f"{name}: {w}x{h} pixels is over the limit max_image_pixels={max_pixels:,} "
                                 f"(refused from the header, before decoding)")
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = (np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8)
                im = Image.fromarray(arr, "L")
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown format)") from None
    except Exception as e:  # Pillow raises many types for damaged files
        raise ImageError(f"{name}: {type(e).__name__}: {' '.join(str(e).split())}") from None
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


EXIF_ORIENTATION = 0x0112  # 1 = as stored; 2-8 = mirrored and/or rotated; 5-8 swap width and height


def orientation(im) -> int:
    """The EXIF Orientation of an open PIL image (1 when absent or unreadable), from its header."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1  # Pillow would decode every pixel to look for an eXIf chunk after them: probing stays cheap
    try:
        value = int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block must not make a readable picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _to_uint8(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.uint8:
        return t
    if t.dtype == torch.uint16:  # 16-bit PNG: keep the high byte (0..65535 -> 0..255)
        return (t.to(torch.int32) // 257).to(torch.uint8)
    return t.float().clamp(0, 255).to(torch.uint8)


def _pillow(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64) / 257.0
                im = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # PIL raises many types for bad files
        raise ImageDecodeError(f"{path}: {type(e).__name__}: {e}") from None
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def decode_file(path: str | Path, channels: int) -> torch.Tensor:
    """``path`` as uint8 (channels, H, W); ``channels`` is 1 (gray) or 3 (RGB).

    Alpha is dropped, palettes are expanded, 16-bit is scaled to 8-bit, the EXIF orientation is
    applied. Raises ImageDecodeError.
    """
    # Imported here: torchvision takes ~1.4 s to import, which a command on in-memory data never
    # needs (evaluate.py on the digits: 5.2 s -> 3.7 s); a folder run pays it once per process.
    from torchvision.io import ImageReadMode, decode_image, read_file
    path = Path(path)
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        data = read_file(str(path))
    except (RuntimeError, OSError) as e:
        raise ImageDecodeError(f"{path}: cannot read ({e})") from None
    try:
        return _to_uint8(decode_image(data, mode=mode, apply_exif_orientation=True))
    except RuntimeError as e:
        if "Unsupported image file" in str(e):
            return _pillow(path, channels)
        raise ImageDecodeError(f"{path}: {str(e).split(', ')[-1]}") from None
