"""The Grad-CAM figures: one image's explanation (``<stem>_cam.png``) and the top-losses grid.

One explanation is three panels side by side: the input as the model saw it (at its input size),
the heat map over a grayscale copy of it with a colour bar, and the top-3 classes with their
probabilities. ``top_losses.png`` follows fastai's ``plot_top_losses``: the mistakes with the
highest loss, each as input | CAM, titled with misclassified.csv's sample name, the truth, the
prediction and the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.figures import pyplot, save_figure
from evaluation.cam import CMAP


def colour_bar(fig, axes, label: str = "importance (1 = the image's max)") -> None:
    """The heat map's scale: the colour each importance is drawn in (blended over the image)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(0, 1), CMAP), ax=axes, fraction=0.046, pad=0.03, label=label)


def explanation_figure(rgb: np.ndarray, blended: np.ndarray, top: Sequence[tuple[str, float]], title: str):
    """Input | overlay | top-k bar chart, as a matplotlib figure (the web page shows it directly)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.6), gridspec_kw={"width_ratios": [1, 1.15, 1.3]})
    axes[0].imshow(rgb, interpolation="nearest")
    axes[0].set_title("input (model's view)")
    axes[1].imshow(blended, interpolation="nearest")
    axes[1].set_title("heat map, 50 % over the input")
    for ax in axes[:2]:
        ax.axis("off")
    colour_bar(fig, axes[1])
    names = [n for n, _ in top][::-1]  # best at the top of the chart
    probs = [p for _, p in top][::-1]
    bars = axes[2].barh(range(len(names)), probs, color=["tab:gray"] * (len(names) - 1) + ["tab:blue"])
    axes[2].set_yticks(range(len(names)))
    axes[2].set_yticklabels(names)
    axes[2].set_xlim(0, 1)
    axes[2].set_xlabel("probability")
    axes[2].set_title(f"top-{len(names)} classes")
    for bar, p in zip(bars, probs):
        axes[2].text(min(p + 0.02, 0.8), bar.get_y() + bar.get_height() / 2, f"{p:.3f}", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_explanation(
    path: Path, rgb: np.ndarray, blended: np.ndarray, top: Sequence[tuple[str, float]], title: str
) -> None:
    save_figure(explanation_figure(rgb, blended, top, title), path, tight=True)


def save_top_losses(path: Path, cells: Sequence[tuple[np.ndarray, np.ndarray, str]], heading: str) -> None:
    """A grid of (input, overlay, title) cells, at most 4 per row, with one colour bar."""
    plt = pyplot()
    k = len(cells)
    per_row = min(4, max(k, 1))
    rows = max(1, math.ceil(k / per_row))
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(3.6 * per_row + 1, 2.5 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for n, (rgb, blended, title) in enumerate(cells):
        row, col = divmod(n, per_row)
        left, right = axes[row, 2 * col], axes[row, 2 * col + 1]
        left.imshow(rgb, interpolation="nearest")
        right.imshow(blended, interpolation="nearest")
        left.set_title(title, fontsize=8, loc="left")
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.94, 1))
    colour_bar(fig, axes.ravel().tolist())
    save_figure(fig, path, tight=True)
