"""The lab's longer journeys as real commands: a search with --confirm_seeds, and a run another
process holds. Apart from tests/test_lab.py so that the two files run side by side (make test deals
out one file per worker)."""

from __future__ import annotations

import re

import pytest
from conftest import FAST, cli


@pytest.mark.slow  # two trials, then the two again on a second seed: four train.py runs
def test_a_search_samples_its_trials_and_confirm_seeds_reruns_the_top_on_more_seeds(tmp_path):
    import optuna

    ck = tmp_path / "ck"
    space = tmp_path / "space.yaml"
    space.write_text(
        "scheduler: [cosine, step]\nlr: {low: 1.0e-3, high: 1.0e-2, log: true}\n"
        "scheduler_gamma: {low: 0.1, high: 0.9}\n"
    )
    done = cli(
        "sweep.py",
        "--search",
        space,
        "--trials",
        "2",
        "--pruner",
        "none",
        "--confirm_seeds",
        "2",
        "--jobs",
        "2",
        "--name",
        "se",
        "--",
        "--checkpoint_dir",
        ck,
        *FAST,
        "--epochs",
        "2",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = ck / "se"
    settings = (sweep / "sweep.yaml").read_text()
    assert "\n  epochs: 2\n" in settings and "\n  lr:" not in settings  # searched settings are not the identity
    trials = optuna.load_study(study_name="se", storage=f"sqlite:///{sweep / 'study.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        assert ("scheduler_gamma" in t.params) == (t.params["scheduler"] == "step")  # only where it applies
        label = t.user_attrs["label"]
        assert (sweep / f"{label}_s0" / "train.log").read_text().count("\n$ ") == 1  # reused by the confirmation
        assert (sweep / f"{label}_s1" / "summary.json").is_file()  # the confirmation's second seed
    board = (sweep / "confirm_leaderboard.md").read_text()
    assert len(re.findall(r"^\| \S+ \| 2 \| ", board, re.M)) == 2  # both ranked on 2 seeds
    varying = {k for k in ("scheduler", "lr", "scheduler_gamma") if len({t.params.get(k) for t in trials}) > 1}
    assert (sweep / "param_importances.png").exists() == (len(varying) >= 2)  # lr always varies


@pytest.mark.slow  # a sweep and a train.py process
def test_a_run_written_by_another_process_is_waited_for_then_trained_once(tmp_path):
    """Another process (a sweep outside this study, a train.py by hand) holds the run's lock: the
    sweep says so, waits for it to let go, and only then trains the run itself."""
    import os

    from conftest import Started

    from common.runlock import RunLock

    ck = tmp_path / "ck"
    folder = ck / "w" / "constant_s0"
    folder.mkdir(parents=True)
    lock = RunLock(folder).acquire()
    args = ["--schedulers", "constant", "--name", "w", "--", "--checkpoint_dir", ck, *FAST, "--epochs", "1"]
    proc = Started("sweep.py", *args, merge_stderr=True)
    try:
        seen = []
        for line in proc.lines(timeout=300):  # the sweep's own lines, read as they come: no sleeping on a guess
            seen.append(line)
            if "being written by process" in line:
                break
        assert f"constant_s0: being written by process {os.getpid()}" in "".join(seen), "".join(seen)
        assert not (folder / "metrics.csv").exists()  # nothing written while another process holds it
    finally:
        lock.release()
    rest = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, "".join(seen) + rest
    assert (folder / "summary.json").is_file()
    log = (folder / "train.log").read_text()
    assert log.count("\n$ ") == 2 and "is being written by process" in log  # refused once, then trained
