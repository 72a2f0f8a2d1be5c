"""One lifecycle for every sink: whatever fails or is interrupted after training -- the final test, the
summary write, a Ctrl-C there -- the database row, the TensorBoard file and metrics.csv end right, and
``--resume auto`` completes a run whose training is done but whose summary.json is missing or cut.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import FAST, read_csv, train

from common import faults
from common.errors import AppError
from common.run_files import SUMMARY_KEYS, read_summary, run_is_finished
from runtime.interrupt import Interrupted
from tracking.sink import Lifecycle, RunInfo, Sink, status_of

EPOCHS = ["--epochs", "2", "--threads", "1"]


def set_faults(monkeypatch, spec: str) -> None:
    """common/faults.py's hooks, in this process (IMGCLF_FAULTS is read once, at import)."""
    monkeypatch.setattr(faults, "_FAULTS", faults._parse(spec))
    monkeypatch.setattr(faults, "_counts", {})


def db_row(tmp_path: Path) -> dict:
    conn = sqlite3.connect(tmp_path / "ck" / "results.db")
    conn.row_factory = sqlite3.Row
    try:
        [row] = conn.execute("SELECT status, ended, test_accuracy FROM runs").fetchall()
        return dict(row)
    finally:
        conn.close()


def open_files_under(folder: Path) -> list[str]:
    """Files of ``folder`` this process still holds open (Linux: /proc/self/fd)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder.resolve())):
            out.append(target)
    return out


def check_ended(tmp_path: Path, status: str, epochs: int = 2) -> Path:
    """The row's status, the TensorBoard file closed and complete, metrics.csv whole."""
    run = tmp_path / "ck" / "r"
    row = db_row(tmp_path)
    assert row["status"] == status and row["ended"] is not None
    assert not open_files_under(run / "tb"), "the TensorBoard writer was left open"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.value for e in acc.Scalars("epoch")] == list(range(1, epochs + 1))  # flushed, every epoch
    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    return run


@pytest.mark.parametrize("spec, error", [("final_test#1=enospc", OSError), ("write:summary.json#1=enospc", AppError)])
def test_a_failure_after_training_ends_every_sink_failed_and_resume_completes_it(tmp_path, monkeypatch, spec, error):
    set_faults(monkeypatch, spec)
    with pytest.raises(error, match="No space left"):
        train(tmp_path, "--run_name", "r", "--tensorboard", *EPOCHS)
    run = check_ended(tmp_path, "failed")
    assert not run_is_finished(run) and not (run / "summary.json").exists()  # never a half-written summary

    set_faults(monkeypatch, "")
    before = (run / "metrics.csv").read_bytes()
    train(tmp_path, "--run_name", "r", "--resume", "auto", "--tensorboard", *EPOCHS)
    check_ended(tmp_path, "finished")
    assert (run / "metrics.csv").read_bytes() == before  # nothing retrained: only the final test ran
    assert run_is_finished(run) and db_row(tmp_path)["test_accuracy"] == read_summary(run)["test_acc"]


def test_ctrl_c_in_the_final_test_ends_every_sink_interrupted(tmp_path, monkeypatch, capsys):
    real = faults.point

    def ctrl_c_at_final_test(name, release=lambda: False):
        if name == "final_test":
            signal.raise_signal(signal.SIGINT)  # handled by the run's GracefulStop, as a terminal's Ctrl-C
        return real(name, release)

    monkeypatch.setattr(faults, "point", ctrl_c_at_final_test)
    # A known handler before the run, whatever an earlier test in this worker process left installed.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(Interrupted) as caught:
            train(tmp_path, "--run_name", "r", "--tensorboard", *EPOCHS)
        restored = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, outer)
    assert restored is signal.default_int_handler  # the run put the handler back
    assert caught.value.exit_code == 130 and "the final test (training is complete)" in str(caught.value)
    assert "--resume auto" in str(caught.value)
    run = check_ended(tmp_path, "interrupted")
    assert not run_is_finished(run)


def test_a_cut_summary_is_unfinished_and_resume_auto_completes_it(tmp_path, capsys):
    train(tmp_path, "--run_name", "r", *EPOCHS)
    run = tmp_path / "ck" / "r"
    good = read_summary(run)
    assert good is not None and set(SUMMARY_KEYS) <= set(good)
    for cut in (b"", b'{"run_dir": "x", "best_epoch": 2', json.dumps({"run_dir": "x"}).encode()):
        (run / "summary.json").write_bytes(cut)  # a full disk or a kill, before writes were atomic
        assert not run_is_finished(run)
    capsys.readouterr()
    train(tmp_path, "--run_name", "r", "--resume", "auto", *EPOCHS)
    out = capsys.readouterr().out
    assert "epoch   " not in out and "test accuracy of best.pt (epoch 2)" in out  # no epoch trained again
    assert read_summary(run)["test_acc"] == good["test_acc"]
    assert db_row(tmp_path)["status"] == "finished"


def test_an_early_stopped_run_is_completed_not_trained_further(tmp_path, capsys, monkeypatch):
    set_faults(monkeypatch, "write:summary.json#1=enospc")
    args = ["--run_name", "r", "--epochs", "8", "--threads", "1", "--early_stopping", "1", "--min_delta", "10"]
    with pytest.raises(AppError):  # min_delta 10: no epoch after the first improves
        train(tmp_path, *args)
    run = tmp_path / "ck" / "r"
    trained = len(read_csv(run / "metrics.csv"))
    assert trained < 8
    set_faults(monkeypatch, "")
    capsys.readouterr()
    train(tmp_path, *args, "--resume", "auto")
    assert len(read_csv(run / "metrics.csv")) == trained
    summary = read_summary(run)
    assert summary["stopped_early"] and summary["stop_reason"].startswith("early stopping")


def test_run_is_finished_needs_a_summary_with_a_result(tmp_path):
    assert not run_is_finished(tmp_path)  # none
    keys = {k: 1 for k in SUMMARY_KEYS}
    for data, finished in (
        (keys, False),
        ({**keys, "test_acc": 0.9}, True),
        ({**keys, "val_acc": 0.5}, True),
        ({**keys, "test_acc": "high"}, False),
        ({**keys, "test_acc": float("nan")}, False),
        ([1, 2], False),
    ):
        (tmp_path / "summary.json").write_text(json.dumps(data))
        assert run_is_finished(tmp_path) is finished, data
    (tmp_path / "summary.json").write_bytes(b"\xff\xfe")  # not UTF-8
    assert not run_is_finished(tmp_path)


# --- the lifecycle itself, without training ---
class Recording(Sink):
    def __init__(self, log: list, fail_end: bool = False):
        self.log, self.fail_end = log, fail_end

    def start(self, run):
        self.log.append(("start", run.step))

    def on_epoch(self, step, row):
        self.log.append(("epoch", row["epoch"]))

    def end(self, status):
        self.log.append(("end", status))
        if self.fail_end:
            raise OSError("disk full")


def test_every_sink_ends_even_when_one_fails_and_the_run_error_wins(capsys):
    log: list = []
    with pytest.raises(RuntimeError, match="the run's own error"):
        with Lifecycle([Recording(log, fail_end=True), Recording(log)]) as life:
            life.start(RunInfo(cfg=None, run_dir=Path("."), class_names=[], step=5))
            life.on_epoch(6, {"epoch": 1})
            raise RuntimeError("the run's own error")
    assert log == [("start", 5), ("start", 5), ("epoch", 1), ("epoch", 1), ("end", "failed"), ("end", "failed")]
    assert "did not close cleanly: disk full" in capsys.readouterr().err
    with pytest.raises(OSError, match="disk full"):  # no other error: the sink's own is raised
        with Lifecycle([Recording([], fail_end=True)]):
            pass


def test_status_follows_where_and_how_the_run_ended():
    class Pruned(Exception):
        run_status = "pruned"

    assert status_of(None, training_done=True) == "finished"
    assert status_of(Interrupted("x", 2), training_done=False) == "stopped"
    assert status_of(Interrupted("x", 2), training_done=True) == "interrupted"
    assert status_of(KeyboardInterrupt(), training_done=True) == "interrupted"
    assert status_of(ValueError(), training_done=True) == "failed"
    assert status_of(Pruned(), training_done=False) == "pruned"  # a sink's own exception names its status


def test_a_sink_passed_to_fit_hears_the_whole_run(tmp_path, capsys):
    from engine.trainer import fit
    from settings.config import parse_args

    log: list = []

    class Finish(Recording):
        def finish(self, result):
            self.log.append(("finish", result.split, round(result.summary["test_acc"], 6)))

    cfg, script = parse_args(["--checkpoint_dir", str(tmp_path / "ck"), "--run_name", "r", *FAST, *EPOCHS])
    summary = fit(cfg, script["cli_keys"], sinks=[Finish(log)])
    assert log == [
        ("start", 0),
        ("epoch", 1),
        ("epoch", 2),
        ("finish", "test", round(summary["test_acc"], 6)),
        ("end", "finished"),
    ]
    from artifacts.checkpoint import KEYS, load_checkpoint

    assert set(load_checkpoint(tmp_path / "ck" / "r" / "last.pt")) == KEYS  # a training checkpoint: every key
