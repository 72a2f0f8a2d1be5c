"""Small generated image folders for the data tests: clean images plus every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 12


def pixels(cls: int, i: int, side: int = SIDE, channels: int = 3) -> np.ndarray:
    """A learnable picture: class k is a bright band at row block k, plus seeded noise."""
    rng = np.random.default_rng(cls * 1000 + i)
    img = rng.integers(0, 60, (side, side, channels), dtype=np.uint8)
    band = slice((cls % 3) * side // 3, (cls % 3 + 1) * side // 3)
    img[band] = 200 + rng.integers(0, 50, (img[band].shape), dtype=np.uint8)
    return img


def write(path: Path, arr: np.ndarray, mode: str | None = None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr if arr.shape[-1] != 1 else arr[..., 0])
    (im.convert(mode) if mode else im).save(path, **save)
    return path


def class_images(folder: Path, cls: int, n: int, ext: str = "png", side: int = SIDE) -> list[Path]:
    return [write(folder / f"img{i:03d}.{ext}", pixels(cls, i, side)) for i in range(n)]


def odd_modes(folder: Path, cls: int) -> dict[str, Path]:
    """RGBA, palette and 16-bit gray versions of a class picture."""
    base = pixels(cls, 999)
    sixteen = base[..., 0].astype(np.uint16) * 257
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sixteen).save(folder / "gray16.png")  # mode I;16
    return {
        "rgba": write(folder / "rgba.png", base, "RGBA"),
        "palette": write(folder / "palette.png", base, "P"),
        "gray16": folder / "gray16.png",
    }


def bad_files(folder: Path) -> dict[str, Path]:
    """A corrupt PNG, a truncated JPEG and a text file that claims to be an image."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "whole.jpg", pixels(0, 7, 64), quality=95)
    data = (folder / "whole.jpg").read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) * 2 // 3])  # header intact, pixels cut off
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "fake.jpg").write_text("this is not an image")
    return {"truncated": folder / "truncated.jpg", "corrupt": folder / "corrupt.png", "fake": folder / "fake.jpg"}


def messy_split_folder(root: Path) -> Path:
    """train/{bird,cat,dog} + val/{cat,dog}: a missing class, an empty class, hidden entries, bad files."""
    for k, name in enumerate(["bird", "cat", "dog"]):
        class_images(root / "train" / name, k, 8)
        if name != "bird":  # bird is missing from val
            class_images(root / "val" / name, k, 3)
    odd_modes(root / "train" / "bird", 0)
    bad_files(root / "train" / "dog")
    (root / "train" / "empty_class").mkdir()
    class_images(root / "train" / ".ipynb_checkpoints", 1, 2)  # a hidden folder of real images
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "train" / "cat" / "notes.txt").write_text("labelled by hand")
    return root


def single_folder(root: Path, counts: dict[str, int], ext: str = "png", side: int = SIDE) -> Path:
    for k, (name, n) in enumerate(counts.items()):
        class_images(root / name, k, n, ext, side)
    return root


def animated_gif(path: Path, frames: int = 3, side: int = SIDE) -> Path:
    """A GIF of ``frames`` different frames (torchvision decodes it to a 4-D tensor)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ims = [Image.fromarray(pixels(k % 3, k, side)).convert("P") for k in range(frames)]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return path


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit black PNG of side x side pixels, written row by row: ~50 KB on disk for 20000 px,
    1.2 GB once decoded to RGB. Built by hand because Pillow would hold every pixel in memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0, then the packed bits
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", body)
        + chunk(b"IEND", b"")
    )
    return path
