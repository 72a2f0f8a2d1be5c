"""The Grad-CAM figures: one image's explanation (``<stem>_cam.png``) and the top-losses grid.

One explanation is three panels side by side: the input as the model saw it (at its input size),
the heat map over it, and the top-3 classes with their probabilities. ``top_losses.png`` follows
fastai's ``plot_top_losses``: the most confident mistakes, each with its CAM and a title naming the
prediction, the truth, the loss and the probability.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from common.figures import pyplot, save_figure


def explanation_figure(rgb: np.ndarray, blended: np.ndarray, top: Sequence[tuple[str, float]],
                       title: str):
    """Input | overlay | top-k bar chart, as a matplotlib figure (the web page shows it directly)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    axes[0].imshow(rgb, interpolation="nearest")
    axes[0].set_title("input (model's view)")
    axes[1].imshow(blended, interpolation="nearest")
    axes[1].set_title("heat map overlay")
    for ax in axes[:2]:
        ax.axis("off")
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


def save_explanation(path: Path, rgb: np.ndarray, blended: np.ndarray, top: Sequence[tuple[str, float]],
                     title: str) -> None:
    save_figure(explanation_figure(rgb, blended, top, title), path, tight=True)


def save_top_losses(path: Path, overlays: Sequence[np.ndarray], titles: Sequence[str], heading: str) -> None:
    """A grid of CAM overlays (at most 5 per row) with one title per cell."""
    plt = pyplot()
    k = len(overlays)
    cols = min(5, max(k, 1))
    rows = max(1, math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 3.4 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, overlays, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    fig.suptitle(heading, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, tight=True)
