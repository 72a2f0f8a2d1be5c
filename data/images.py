"""The one guarded way to turn an image file (or uploaded bytes) into a uint8 tensor (C, H, W).

Every path that decodes pictures — folder/CSV datasets, ``--check_data``, predict, evaluate,
explain and the page — calls :func:`open_image`, so one guard stands between untrusted input and
the decoders:

- a path must be a regular file, checked by type with ``os.stat`` *before* opening it: a FIFO
  would block ``open`` forever, a device could stream without end;
- width x height is read from the header and refused above a pixel limit *before* any pixel is
  decoded (a 400 KB PNG can declare 20000x20000 = 1.2 GB of RGB);
- an animated image (GIF, APNG, WebP) gives its first frame, never a 4-D tensor;
- every failure is one :class:`ImageError` whose message is one line naming the file.

torchvision.io decodes JPEG/PNG/WebP/GIF in C; other formats (BMP, TIFF, ...) and animated files
go through Pillow, which decodes only the frame asked for. The EXIF Orientation tag is applied on
every path: a phone stores a portrait photo as landscape pixels plus "rotate 90°", and a model
must see what people see.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}
# Pillow's own default (Image.MAX_IMAGE_PIXELS, ~89.5 MP: 268 MB as RGB); the config's max_image_pixels.
MAX_IMAGE_PIXELS = 89_478_485
TORCHVISION_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
EXIF_ORIENTATION = 0x0112  # 1 = as stored; 2-8 = mirrored and/or rotated; 5-8 swap width and height


class ImageError(ValueError):
    """A file that is missing, special, too large, truncated, corrupt or not an image."""


def _pil():
    from PIL import Image

    # open_image checks the pixel count itself, with the configured limit and one message; Pillow's
    # own check would refuse with another message (or warn) at a limit the user did not set.
    Image.MAX_IMAGE_PIXELS = None
    return Image


def orientation(im) -> int:
    """The EXIF Orientation of an open PIL image (1 when absent or unreadable), from its header."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1  # Pillow would decode every pixel to look for an eXIf chunk after them: probing stays cheap
    try:
        value = int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block must not make a readable picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def regular_file(path: str | Path) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed) if it is a regular file; ImageError otherwise.

    Decided from the file's type, without opening it: opening a FIFO blocks until a writer comes.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:  # a link loop, a permission problem, a name too long
        raise ImageError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path}: {special_kind(st.st_mode)}, not an image file")
    return st


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is, from its ``st_mode``."""
    return (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )


_animated_said = False


def _say_animated(name: str) -> None:
    """Once per process: the first frame is what a model sees of any animated file."""
    global _animated_said
    if not _animated_said:
        _animated_said = True
        print(f"warning: {name} is animated: the first frame is used (for every animated image)", file=sys.stderr)


def open_image(
    source: str | Path | bytes,
    channels: int = 3,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    name: str | None = None,
    say_animated: bool = True,
) -> torch.Tensor:
    """``source`` (a path or the encoded bytes) as uint8 (channels, H, W); ``channels`` is 1 or 3.

    Alpha is dropped, palettes are expanded, 16-bit is scaled to 8-bit, the EXIF orientation is
    applied, animated files give their first frame. ``max_pixels`` (None: no limit) bounds
    width x height, checked from the header. ``name`` is what messages call the image (default:
    the path, or "upload"). ``say_animated`` prints the first-frame warning once per process
    (dataset loaders count animated files in their report instead). Raises ImageError.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), channels, max_pixels, name or "upload", say_animated)
    name = name or str(source)
    regular_file(source)
    try:
        with open(source, "rb") as f:  # read whole only once the header passed: a huge non-image costs nothing
            return _decode(f, channels, max_pixels, name, say_animated)
    except OSError as e:
        raise ImageError(f"{name}: cannot read ({e.strerror or type(e).__name__})") from None


def _decode(f: BinaryIO, channels: int, max_pixels: int | None, name: str, say_animated: bool) -> torch.Tensor:
    Image = _pil()
    try:
        with Image.open(f) as im:  # lazy: reads the header, decodes nothing yet
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise ImageError(
                    f"{name}: {w}x{h} pixels is over the limit max_image_pixels={max_pixels:,} "
                    f"(refused from the header, before decoding)"
                )
            animated = bool(getattr(im, "is_animated", False))
            if animated or im.format not in TORCHVISION_FORMATS:
                if animated and say_animated:
                    _say_animated(name)
                return _pillow(im, channels)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown format)") from None
    except Exception as e:  # Pillow raises many types for damaged files
        raise ImageError(f"{name}: {type(e).__name__}: {_one_line(e)}") from None
    f.seek(0)
    return _torchvision(f.read(), channels, name)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _to_uint8(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.uint8:
        return t
    if t.dtype == torch.uint16:  # 16-bit PNG: keep the high byte (0..65535 -> 0..255)
        return (t.to(torch.int32) // 257).to(torch.uint8)
    return t.float().clamp(0, 255).to(torch.uint8)


def _pillow(im, channels: int) -> torch.Tensor:
    """The first frame of an open PIL image, oriented and converted."""
    from PIL import Image, ImageOps

    im.seek(0)
    im.load()
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64) / 257.0
        im = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")
    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _torchvision(data: bytes, channels: int, name: str) -> torch.Tensor:
    # Imported here: torchvision takes ~1.4 s to import, which a command on in-memory data never
    # needs (evaluate.py on the digits: 5.2 s -> 3.7 s); a folder run pays it once per process.
    from torchvision.io import ImageReadMode, decode_image

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        t = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode, apply_exif_orientation=True)
    except RuntimeError as e:
        raise ImageError(f"{name}: {_one_line(e).split(', ')[-1]}") from None
    return _to_uint8(t[0] if t.ndim == 4 else t)  # a GIF Pillow took for still may still hold frames


def header(source: str | Path) -> tuple[str, tuple[int, int], int, bool]:
    """(mode, (width, height) as displayed, EXIF orientation, animated) from the header only.

    A regular-file check comes first; raises ImageError for files that are not images.
    """
    regular_file(source)
    Image = _pil()
    try:
        with Image.open(source) as im:
            turn = orientation(im)
            w, h = im.size
            animated = bool(getattr(im, "is_animated", False))
            return im.mode, ((h, w) if turn >= 5 else (w, h)), turn, animated  # 5-8 are quarter turns
    except Image.UnidentifiedImageError:
        raise ImageError(f"{source}: not an image (unknown format)") from None
    except Exception as e:
        raise ImageError(f"{source}: {type(e).__name__}: {_one_line(e)}") from None


def warm_up_decoder() -> None:
    """Import and initialise the decoders on a 1x1 PNG, so that timing a first real file measures the file."""
    buf = io.BytesIO()
    _pil().new("L", (1, 1)).save(buf, "PNG")
    open_image(buf.getvalue(), 1, name="warm-up")
