"""The two evaluation figures: the confusion matrix (counts and row-normalized) and the reliability diagram.

The confusion-matrix figure grows with the number of classes and its fonts shrink with the
cells, so it stays readable from 2 to about 100 classes: every cell is annotated while the
numbers fit, then only the non-zero ones, then none (colour alone) past 100 classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.figures import pyplot, save_figure
from evaluation.metrics import calibration_bins


def _short(name: str, limit: int = 18) -> str:
    """``name`` in at most ``limit`` characters, cut in the middle: names that share a long prefix
    (``class_with_long_name_3``) usually differ at the end, which must stay readable."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head) :]


def _panel(
    ax,
    values: np.ndarray,
    labels: list[str],
    title: str,
    fmt,
    vmax: float,
    cmap: str,
    font: float,
    annotate: str,
    title_font: float,
):
    """One heatmap with per-cell text; ``annotate`` is 'all', 'nonzero' or 'none'."""
    n = len(labels)
    im = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=title_font)
    ax.set_xlabel("predicted class", fontsize=title_font * 0.85)
    ax.set_ylabel("true class", fontsize=title_font * 0.85)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90 if n > 6 else 0, fontsize=font)
    ax.set_yticklabels(labels, fontsize=font)
    ax.tick_params(length=2 if n > 30 else 4)
    if annotate != "none":
        threshold = vmax / 2  # white text on dark cells, black on light ones
        for (i, j), v in np.ndenumerate(values):
            if annotate == "nonzero" and v == 0:
                continue
            # Zeros in light grey: the eye goes to the diagonal and to the mistakes, not to a sea of 0.0.
            color = "0.7" if v == 0 else "white" if v > threshold else "black"
            ax.text(j, i, fmt(v), ha="center", va="center", fontsize=font * 0.9, color=color)
    return im


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Write counts (left) and row-normalized shares in % of the true class (right) side by side."""
    plt = pyplot()
    n = len(class_names)
    labels = [_short(str(c)) for c in class_names]
    side = float(np.clip(0.2 * n + 2.5, 4.5, 22.0))  # inches per panel: ~0.2 in per class when large
    cell_pt = side / n * 72  # cell size in points
    font = float(np.clip(cell_pt * 0.45, 4.0, 11.0))
    title_font = max(11.0, side * 0.75)  # titles grow with the figure so they read at full view
    # Counts need room for up to 4 digits; show all cells while they fit, else the non-zero ones.
    annotate = "all" if n <= 25 else "nonzero" if n <= 100 else "none"
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0) * 100

    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.5, side + 0.8))
    # One decimal while the cells are wide enough; 0 and 100 without one, so "100" fits its cell.
    share_fmt = (lambda v: f"{v:.0f}") if n > 10 else (lambda v: f"{v:.0f}" if v in (0, 100) else f"{v:.1f}")
    im0 = _panel(
        axes[0], cm, labels, "counts", lambda v: f"{int(v)}", max(cm.max(), 1), "Blues", font, annotate, title_font
    )
    im1 = _panel(
        axes[1],
        share,
        labels,
        "% of true class (rows sum to 100)",
        share_fmt,
        100.0,
        "Oranges",
        font,
        annotate,
        title_font,
    )
    for ax, im in zip(axes, (im0, im1)):
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=max(font, 8))
    total, correct = int(cm.sum()), int(np.trace(cm))
    fig.suptitle(
        f"confusion matrix: {n} classes, {total} samples, accuracy {correct / max(total, 1):.2%}",
        fontsize=title_font * 1.15,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=True)


def plot_reliability(
    confidence: np.ndarray, correct: np.ndarray, ece: float, path: Path, n_bins: int | None = None
) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with bin sizes below."""
    plt = pyplot()
    kwargs = {} if n_bins is None else {"n_bins": n_bins}
    mean_conf, accuracy, counts = calibration_bins(confidence, correct, **kwargs)
    bins = len(counts)
    edges = np.linspace(0, 1, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    used = counts > 0
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(
        centers[used], accuracy[used], width=1 / bins, edgecolor="black", color="tab:blue", alpha=0.8, label="accuracy"
    )
    # The gap between mean confidence and accuracy in each bin is what the ECE averages.
    # Outline only, so it reads the same whether the bin is over- or under-confident.
    low = np.minimum(mean_conf[used], accuracy[used])
    ax.bar(
        centers[used],
        np.abs(mean_conf[used] - accuracy[used]),
        bottom=low,
        width=1 / bins,
        facecolor="none",
        edgecolor="tab:red",
        hatch="///",
        lw=1,
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability diagram — ECE {ece:.4f} ({bins} bins, {int(counts.sum())} samples)")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    hist.bar(centers, counts, width=1 / bins, color="tab:gray", edgecolor="black")
    if used.any() and counts.max() > 50 * counts[used].min():  # most samples sit in the top bin
        hist.set_yscale("log")
    hist.set_xlabel("confidence (top-1 probability)")
    hist.set_ylabel("samples")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=True)
