"""The one way a figure becomes a file: matplotlib on the Agg backend, written atomically.

Every plot of the project (curves.png, the LR finder's, the evaluation figures, Grad-CAM, a sweep's
overlays, plot_schedule.py's) goes through :func:`save_figure`, so none can be left half-written by
a kill or a full disk, and none needs a display.
"""

from __future__ import annotations

import io
from pathlib import Path

from common.fileio import write_atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, works on servers without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_bytes(fig, dpi: int = 100, tight: bool = False, fmt: str = "png") -> bytes:
    """``fig`` encoded as ``fmt`` (PNG by default); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path, dpi: int = 100, tight: bool = False) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (PNG without one); closes it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    write_atomic(figure_bytes(fig, dpi, tight, fmt), path)
    return path
