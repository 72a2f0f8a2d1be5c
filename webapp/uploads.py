"""What the page accepts as an upload, checked before anything is decoded.

The uploader takes any file, so that every refusal reaches this code and is written on the page
(Streamlit's own type and size checks run in the browser and show only a red chip). An upload is
refused, in this order, when it is over ``--max_upload_mb``, when its name is not an image's, and
(by ``data.images.open_image``, the one guarded decoder) when its header says it has more pixels than
``--max_image_pixels`` or when it does not decode.
"""

from __future__ import annotations

from pathlib import Path

from data.images import IMAGE_EXTENSIONS

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
