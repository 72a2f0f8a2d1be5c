"""Progress off a terminal: plain lines at most every 10 s in loops, set-up phases said when slow.
Time comes from a fake clock, so nothing here sleeps."""

from __future__ import annotations

import threading

from common import progress
from common.progress import LineProgress, Silent, bar, phase


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_loop_prints_a_line_at_most_every_10_s():
    clock, lines = FakeClock(), []
    steps = iter([1.0] * 25 + [30.0])  # 25 quick batches, then one that takes 30 s

    def work():
        for _ in LineProgress(range(26), total=26, desc="epoch 3", unit="batches", clock=clock, write=lines.append):
            clock.t += next(steps)

    work()
    # 10 s, 20 s, then the slow batch: one line per crossing, never two within 10 s
    assert lines == [
        "epoch 3: 10/26 batches (38%) | 10 s, ~16 s left",
        "epoch 3: 20/26 batches (77%) | 20 s, ~6 s left",
        "epoch 3: 26/26 batches (100%) | 55 s",
    ]


def test_fields_are_the_last_postfix():
    clock, lines = FakeClock(), []
    p = LineProgress(total=4, desc="LR range test", clock=clock, write=lines.append)
    p.set_postfix(loss="0.4123", lr="0.003", refresh=False)
    clock.t += 12
    p.update()
    assert lines == ["LR range test: 1/4 (25%) | loss 0.4123, lr 0.003 | 12 s, ~36 s left"]


def test_unknown_total_and_long_runs_read_in_minutes():
    clock, lines = FakeClock(), []
    p = LineProgress(desc="explain", clock=clock, write=lines.append)
    clock.t += 150
    p.update(7)
    assert lines == ["explain: 7 | 2.5 min"]


def test_bar_off_a_terminal_is_plain_lines_and_disabled_is_silent(monkeypatch):
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert type(bar(range(3), total=3, desc="x")) is LineProgress
    assert isinstance(bar(range(3), total=3, enabled=False), Silent)
    assert list(bar(range(3), enabled=False)) == [0, 1, 2]
    lines = []
    silent = Silent(range(3), total=3, write=lines.append, every=0.0)
    list(silent)
    assert lines == [] and silent.n == 3
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    assert type(bar(range(3), total=3)).__name__ == "tqdm"


def test_a_quick_phase_says_nothing():
    clock, lines = FakeClock(), []
    with phase("loading digits", clock=clock, write=lines.append, thread=False) as p:
        clock.t += 2.9
        p.poll()
    assert lines == []


def test_a_slow_phase_says_what_it_does_then_every_10_s_then_how_long():
    clock, lines = FakeClock(), []
    with phase("loading fashion_mnist", clock=clock, write=lines.append, thread=False) as p:
        for _ in range(30):  # polled every second for 30 s
            clock.t += 1.0
            p.poll()
        clock.t += 0.4
    assert lines == [
        "loading fashion_mnist...",
        "loading fashion_mnist... 13 s",
        "loading fashion_mnist... 23 s",
        "loading fashion_mnist: done in 30.4 s",
    ]


def test_a_failed_phase_leaves_the_error_to_speak():
    clock, lines = FakeClock(), []
    try:
        with phase("measuring AMP", clock=clock, write=lines.append, thread=False) as p:
            clock.t += 5
            p.poll()
            raise ValueError("boom")
    except ValueError:
        pass
    assert lines == ["measuring AMP..."]


def test_the_heartbeat_thread_polls_while_the_phase_runs():
    """The thread, not the caller, notices the phase is slow (synchronised by an event, not a sleep)."""
    clock, lines, said = FakeClock(), [], threading.Event()

    def write(text):
        lines.append(text)
        said.set()

    clock.t = 0.0
    with phase("decoding 60,000 images", clock=clock, write=write, tick=0.001):
        clock.t = 5.0  # the phase "takes" 5 s
        assert said.wait(10), "the heartbeat thread never polled"
    assert lines == ["decoding 60,000 images...", "decoding 60,000 images: done in 5.0 s"]


def test_other_ranks_stay_quiet(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    clock, lines = FakeClock(), []
    with phase("measuring AMP", clock=clock, write=lines.append, tick=0.001) as p:
        clock.t += 60
    assert p._worker is None and lines == []
