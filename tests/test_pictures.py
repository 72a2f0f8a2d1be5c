"""The pictures a user reads: epochs from 1 in whole numbers, labels that say what a line is,
log axes where values span orders of magnitude, nothing unreadable for many or long class names.
Each figure is caught as it is saved (Figure.savefig), so the checks read the axes, not pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure  # the class only: the plotting code picks the Agg backend


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    figures: list[Figure] = []
    real = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def _rows(n: int, first_loss: float = 2.0) -> list[dict]:
    return [
        {
            "epoch": e,
            "lr": 0.1 * 0.1 ** (e // 3),
            "train_loss": first_loss / e**2,
            "val_loss": first_loss / e,
            "train_acc": 1 - 0.5 / e,
            "val_acc": 1 - 0.6 / e,
            "seconds": 1.0,
        }
        for e in range(1, n + 1)
    ]


def test_curves_epochs_from_1_in_whole_numbers_with_named_lines(drawn, tmp_path):
    from tracking.history import plot_curves

    (tmp_path / "run_a").mkdir()
    plot_curves(_rows(2), tmp_path / "run_a" / "curves.png")
    loss, acc, lr = drawn[0].axes
    for ax in (loss, acc, lr):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1, 2]  # no 1.2, 1.4 ...
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "val"]
    assert loss.get_yscale() == "linear" and lr.get_yscale() == "linear"
    assert "run_a: 2 epochs" in drawn[0].texts[0].get_text()


def test_curves_turn_logarithmic_when_values_span_orders_of_magnitude(drawn, tmp_path):
    from tracking.history import plot_curves

    plot_curves(_rows(9, first_loss=5.0), tmp_path / "curves.png")  # loss 5 -> 0.06, LR 0.1 -> 1e-4
    loss, _, lr = drawn[0].axes
    assert loss.get_yscale() == "log" and lr.get_yscale() == "log"


def test_confusion_matrix_keeps_long_names_apart_and_greys_zeros(drawn, tmp_path):
    from evaluation.plots import plot_confusion_matrix

    names = [f"class_with_a_long_name_{i}" for i in range(10)]
    cm = np.eye(10, dtype=int) * 10
    cm[0, 1] = 3
    plot_confusion_matrix(cm, names, tmp_path / "cm.png")
    counts = drawn[0].axes[0]
    labels = [t.get_text() for t in counts.get_yticklabels()]
    assert len(set(labels)) == 10 and all(len(label) <= 18 for label in labels)
    cells = {t.get_text(): t.get_color() for t in counts.texts}
    assert cells["0"] == "0.7" and cells["3"] != "0.7"  # zeros recede, mistakes stand out
    shares = [t.get_text() for t in drawn[0].axes[1].texts]
    assert "100" in shares and "100.0" not in shares and "76.9" in shares  # "100" fits its cell; 10/13 of row 0


def test_lr_finder_plot_names_its_suggestion(drawn, tmp_path):
    from engine.lr_finder import LRFind, write_outputs

    lrs = [1e-6 * 10 ** (i / 10) for i in range(50)]
    losses = [2.5 - math.tanh((math.log10(lr) + 3) * 1.5) for lr in lrs]
    write_outputs(LRFind(lrs, losses, losses), tmp_path)
    ax = drawn[0].axes[0]
    assert ax.get_xscale() == "log" and "suggested lr" in ax.get_title() and "50 updates" in ax.get_title()
    assert not ax.xaxis._minor_tick_kw.get("gridOn", False)
    assert (tmp_path / "lr_find.png").stat().st_size > 1000
