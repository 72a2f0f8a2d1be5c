"""The leaderboard's statistics on fabricated runs: intervals over seeds, paired differences, verdicts,
only comparable runs ranked."""

from __future__ import annotations

import csv
import io
import math
import statistics

import pytest
from scipy import stats

from resultsdb.leaderboard import COLUMNS, ONE_SEED, Sample, rank, to_csv, to_markdown

KEY = "digits custom 5ep 00000000"


def samples(values: dict[str, list[float]], key: str = KEY) -> list[Sample]:
    return [Sample(name, seed, v, key) for name, vs in values.items() for seed, v in enumerate(vs)]


def half_width(values: list[float]) -> float:
    """95 % t-interval half width from the textbook formula (not the code's scipy call)."""
    n = len(values)
    return stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)


def test_columns_intervals_and_the_paired_difference():
    # b is below a by about 0.01 on every seed, while the seeds themselves spread by 0.05: only the
    # pairing sees that b is consistently worse.
    a = [0.90, 0.95, 0.85, 0.92]
    b = [0.889, 0.941, 0.838, 0.911]
    board = rank(samples({"b": b, "a": a}))
    assert [r["schedule"] for r in board.rows] == ["a", "b"] and list(board.rows[0]) == list(COLUMNS)
    top, second = board.rows
    assert top["mean"] == pytest.approx(statistics.fmean(a)) and top["std"] == pytest.approx(statistics.stdev(a))
    assert top["ci95_low"] == pytest.approx(statistics.fmean(a) - half_width(a))
    assert top["ci95_high"] == pytest.approx(statistics.fmean(a) + half_width(a))
    assert (top["diff_vs_best"], top["diff_ci95_low"], top["verdict"]) == (0.0, None, "best")
    diffs = [y - x for x, y in zip(a, b)]
    assert second["diff_vs_best"] == pytest.approx(statistics.fmean(diffs))
    assert second["diff_ci95_low"] == pytest.approx(statistics.fmean(diffs) - half_width(diffs))
    assert second["diff_ci95_high"] == pytest.approx(statistics.fmean(diffs) + half_width(diffs))
    assert second["diff_ci95_high"] < 0
    assert second["verdict"] == "worse"
    # unpaired, the two means' intervals overlap widely: a comparison of means alone would call it a tie
    assert second["ci95_high"] > top["ci95_low"]


def test_noisy_differences_are_a_tie_and_a_schedule_equal_on_every_seed_is_tied_exactly():
    board = rank(samples({"a": [0.90, 0.80, 0.95], "noisy": [0.85, 0.86, 0.93], "same": [0.90, 0.80, 0.95]}))
    verdicts = {r["schedule"]: r["verdict"] for r in board.rows}
    assert verdicts["noisy"] == "tied"
    same = next(r for r in board.rows if r["schedule"] in ("a", "same") and r["verdict"] != "best")
    assert (same["diff_vs_best"], same["diff_ci95_low"], same["diff_ci95_high"], same["verdict"]) == (0, 0, 0, "tied")


def test_pairs_only_the_seeds_both_schedules_ran():
    board = rank(
        [
            Sample("a", 0, 0.9, KEY),
            Sample("a", 1, 0.8, KEY),
            Sample("a", 2, 0.95, KEY),
            Sample("b", 1, 0.7, KEY),
            Sample("b", 2, 0.80, KEY),
            Sample("b", 5, 0.99, KEY),
        ]
    )
    b = next(r for r in board.rows if r["schedule"] == "b")
    assert b["diff_vs_best"] == pytest.approx(statistics.fmean([0.7 - 0.8, 0.80 - 0.95]))


def test_one_seed_leaves_the_interval_columns_empty_and_says_so():
    board = rank(samples({"a": [0.9], "b": [0.8]}))
    assert all(
        r[c] is None for r in board.rows for c in ("std", "ci95_low", "ci95_high", "diff_ci95_low", "diff_ci95_high")
    )
    assert [r["verdict"] for r in board.rows] == ["best", ""] and ONE_SEED in board.notes
    assert ONE_SEED == "1 seed: no confidence interval; add --seeds 0 1 2"
    rows = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert tuple(rows[0]) == COLUMNS and rows[1]["ci95_low"] == "" and rows[1]["mean"] == "0.8"
    md = to_markdown(board, "t")
    assert (
        "| schedule | runs | mean | std | ci95_low | ci95_high | diff_vs_best | diff_ci95_low | diff_ci95_high | "
        "verdict |"
        in md
        and "| b | 1 | 80.00 |  |  |  | -10.00 |  |  |  |" in md
        and md.rstrip().endswith(ONE_SEED)
    )


def test_only_runs_of_one_comparability_key_are_ranked_and_the_rest_are_counted():
    runs = samples({"a": [0.9, 0.8], "b": [0.7, 0.75]}) + samples({"a": [0.99]}, key="digits custom 6ep 11111111")
    board = rank(runs + [Sample("c", 0, None, KEY)])
    assert board.key == KEY and {r["schedule"] for r in board.rows} == {"a", "b"}
    assert (board.left_out, board.no_value) == (1, 1)
    assert (
        "1 run left out for differing settings (comparability key other than 'digits custom 5ep 00000000')"
        in board.notes
    )
    other = rank(runs, key="digits custom 6ep 11111111")
    assert [(r["schedule"], r["runs"]) for r in other.rows] == [("a", 1)] and other.left_out == 4


def test_losses_rank_lowest_first():
    board = rank(samples({"a": [0.30, 0.35, 0.32], "b": [0.20, 0.22, 0.21]}), metric="test_loss")
    assert [r["schedule"] for r in board.rows] == ["b", "a"] and board.rows[1]["verdict"] == "worse"
    assert board.rows[1]["diff_vs_best"] > 0


def test_sweep_plots_number_epochs_from_1_band_the_seeds_and_give_each_line_its_own_style(tmp_path, monkeypatch):
    from pathlib import Path

    from evaluation import sweep_plots
    from resultsdb.leaderboard import RunResult

    figures = {}
    monkeypatch.setattr(sweep_plots, "save_figure", lambda fig, path, **kw: figures.__setitem__(path.name, fig))

    def run(schedule, seed, accs):
        return RunResult(
            schedule,
            seed,
            Path(tmp_path / f"{schedule}_{seed}"),
            None,
            None,
            max(accs),
            0.1,
            None,
            len(accs),
            1.0,
            accs,
            True,
        )

    results = [
        run("a", 0, [0.5, 0.7, 0.8]),
        run("a", 1, [0.6, 0.9, 0.9]),
        run("b", 0, [0.5, 0.7, 0.8]),
        run("b", 1, [0.6, 0.9, 0.9]),
    ]  # b equals a exactly: its line must not hide a's
    sweep_plots.plot_sweep(results, tmp_path)
    ax = figures["val_acc.png"].axes[0]
    lines = ax.get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[1, 2, 3]] * 2
    assert list(lines[0].get_ydata()) == pytest.approx([55.0, 80.0, 85.0])  # mean, in percent
    assert {(line.get_linestyle(), line.get_marker(), line.get_linewidth()) for line in lines}.__len__() == 2
    bands = ax.collections
    assert len(bands) == 2  # one shaded band per schedule with several seeds
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(50.0) and max(ys) == pytest.approx(90.0)  # lowest to highest seed
