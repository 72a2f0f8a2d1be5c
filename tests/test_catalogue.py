"""The attack catalogue of issue 24: each input that once gave a traceback, or was accepted when it
should have been refused, now gets one line.

Every case is the real command (a subprocess): exit status 1 or 2, stderr's last line starts with
``error:``, no ``Traceback`` anywhere, and the earlier run that the cases aim at (through
``--checkpoint_dir``, ``--resume`` and its files) is byte-identical afterwards. The run is trained
once per module; the cases run two at a time in a module fixture and each test reads its outcome.
Classes of cases that need no command line (every float setting with NaN/inf, a read-only database)
run in-process below. Image decoding, folder scans and the page have their own catalogue files.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from catalogue_util import assert_refused, snapshot
from conftest import FAST, ROOT, cli

from common.errors import UsageError
from settings.config import FIELD_TYPES, Config, parse_args

TRAIN = [*FAST, "--threads", "1"]


@dataclass
class Case:
    script: str
    args: list
    says: tuple = ()  # fragments of the error line
    code: int | None = None  # None: 1 or 2
    real: bool = False  # a subprocess; else run_cli(main) in this process (torch is imported once, not per case)


def in_process(script: str, args: list) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` run through the same run_cli, in this process: exit status, stdout, stderr."""
    import contextlib
    import importlib
    import io

    from common.errors import run_cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_cli(importlib.import_module(script[: -len(".py")]).main, [str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())


def make_inputs(earlier: Path, tmp: Path) -> None:
    """The files the cases point at; ``earlier`` is the finished run (read, never written)."""
    (tmp / "zero.pt").write_bytes(b"")
    (tmp / "int_key.yaml").write_text("1: 2\n")
    (tmp / "dup_key.yaml").write_text("lr: 0.1\nepochs: 2\nlr: 0.2\n")
    (tmp / "latin1.yaml").write_bytes("lr: 0.1  # café\n".encode("latin-1"))
    (tmp / "garbage.db").write_bytes(b"this is not a database, " * 200)
    (tmp / "truncated.db").write_bytes((earlier.parent / "results.db").read_bytes()[:3000])
    (tmp / "out_is_a_file").write_text("x")
    ckpt = torch.load(earlier / "best.pt", map_location="cpu", weights_only=True)
    weights = {k: ckpt[k] for k in ("model", "config", "class_names", "preprocessing", "version")}
    torch.save(weights, tmp / "weights_only.pt")
    for name, change in {
        "config_int": {"config": 5},
        "class_names_int": {"class_names": 5},
        "epoch_str": {"epoch": "3"},
        "input_size_huge": {"preprocessing": {**ckpt["preprocessing"], "input_size": [10**5, 10**5]}},
        "config_width_huge": {"config": {**ckpt["config"], "width": 10**9}},
    }.items():
        torch.save({**weights, **change}, tmp / f"{name}.pt")
    torch.save({**ckpt, "optimizer": {"state": {}, "param_groups": [{"params": [0]}]}}, tmp / "bad_optimizer.pt")
    from PIL import Image

    (tmp / "csv").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(tmp / "csv" / f"{i}.png")
    (tmp / "csv" / "two_labels.csv").write_text("path,label\n0.png,a\n1.png,b\n2.png,a\n0.png,b\n")
    (tmp / "csv" / "latin1.csv").write_bytes("path,label\n0.png,café\n1.png,b\n".encode("latin-1"))
    Image.new("L", (8, 8)).save(tmp / "img.png")
    import export as export_script

    assert (
        export_script.main(
            ["--checkpoint", str(earlier / "best.pt"), "--format", "onnx", "--output", str(tmp / "model.onnx")]
        )
        == 0
    )
    import onnx

    meta = {p.key: p.value for p in onnx.load(tmp / "model.onnx").metadata_props}
    names, pre = json.loads(meta["imgclf.class_names"]), json.loads(meta["imgclf.preprocessing"])
    for name, key, value in (
        ("onnx_three_classes", "imgclf.class_names", json.dumps(names[:3])),
        ("onnx_input_size", "imgclf.preprocessing", json.dumps({**pre, "input_size": [32, 32]})),
        ("onnx_config_int", "imgclf.config", "7"),
    ):
        model = onnx.load(tmp / "model.onnx")
        for p in model.metadata_props:
            if p.key == key:
                p.value = value
        onnx.save(model, tmp / f"{name}.onnx")


def catalogue(root: Path, tmp: Path) -> dict[str, Case]:
    earlier = root / "earlier"
    at_root = ["--checkpoint_dir", root]
    scratch = ["--checkpoint_dir", tmp / "scratch", *TRAIN, "--epochs", "1"]
    empty, damaged = ("empty (0 bytes)",), ("damaged or was edited",)
    rebuild = ("cannot be used", "python results.py import", "--results_db NEW.db")
    cases = {
        # --- zero-byte checkpoints, on every path that reads one ---
        "zero_byte_resume": Case("train.py", [*at_root, "--resume", tmp / "zero.pt"], empty, real=True),
        "zero_byte_evaluate": Case("evaluate.py", ["--checkpoint", tmp / "zero.pt"], empty),
        "zero_byte_predict": Case("predict.py", ["--checkpoint", tmp / "zero.pt", tmp / "img.png"], empty),
        "zero_byte_pretrained_weights": Case("train.py", [*scratch, "--pretrained_weights", tmp / "zero.pt"], empty),
        # --- the results database ---
        "results_garbage_db": Case("results.py", ["runs", "--results_db", tmp / "garbage.db"], rebuild, 1, real=True),
        "results_truncated_db": Case(
            "results.py", ["runs", "--results_db", tmp / "truncated.db"], rebuild, 1, real=True
        ),
        "results_import_into_garbage": Case(
            "results.py", ["import", root, "--results_db", tmp / "garbage.db"], rebuild, 1
        ),
        # --- config files and values ---
        "yaml_key_not_a_string": Case(
            "train.py", [*at_root, "--config", tmp / "int_key.yaml"], ("config key 1", "setting names"), 2, real=True
        ),
        "yaml_duplicate_key": Case(
            "train.py", [*at_root, "--config", tmp / "dup_key.yaml"], ("'lr' is given twice", "line 1"), 2, real=True
        ),
        "config_not_utf8": Case("train.py", [*at_root, "--config", tmp / "latin1.yaml"], ("not UTF-8",), 2, real=True),
        "scheduler_value_bad_yaml": Case(
            "train.py",
            [*at_root, "--scheduler", "step", "--scheduler_gamma", "[1,"],
            ("--scheduler_gamma '[1,' is not a valid value",),
            2,
            real=True,
        ),
        "image_size_huge": Case(
            "train.py", [*at_root, "--image_size", "100000"], ("--image_size must be <= ",), 2, real=True
        ),
        "width_huge": Case("train.py", [*at_root, "--width", "1000000000"], ("--width must be <= ",), 2, real=True),
        "lr_inf": Case("train.py", [*at_root, "--lr", "inf"], ("'lr' must be a finite number",), 2, real=True),
        "weight_decay_nan": Case(
            "train.py", [*at_root, "--weight_decay", "nan"], ("--weight_decay", "must be a finite number"), 2, real=True
        ),
        "lr_find_start_lr_nan": Case(
            "lr_find.py", ["--start_lr", "nan"], ("--start_lr", "finite number"), 2, real=True
        ),
        "plot_schedule_lr_inf": Case(
            "plot_schedule.py", ["--scheduler", "cosine", "--lr", "inf"], ("lr", "finite number"), 2, real=True
        ),
        "scheduler_gamma_nan": Case(
            "train.py",
            [*at_root, "--scheduler", "step", "--scheduler_gamma", "nan"],
            ("'gamma' must be a finite number",),
            2,
        ),
        # --- checkpoints with wrong-typed fields (weights-only files, hand-made) ---
        **{
            f"checkpoint_{name}": Case("evaluate.py", ["--checkpoint", tmp / f"{name}.pt"], damaged, 1)
            for name in ("config_int", "class_names_int", "epoch_str", "input_size_huge", "config_width_huge")
        },
        "checkpoint_config_int_predict": Case(
            "predict.py", ["--checkpoint", tmp / "config_int.pt", tmp / "img.png"], damaged, 1
        ),
        "checkpoint_epoch_str_resume": Case("train.py", [*at_root, "--resume", tmp / "epoch_str.pt"], damaged, 1),
        "checkpoint_bad_optimizer_state": Case(
            "train.py",
            [*scratch, "--epochs", "2", "--resume", tmp / "bad_optimizer.pt", "--run_name", "b"],
            ("training state", "does not fit"),
            1,
        ),
        # --- .onnx whose graph disagrees with its metadata ---
        "onnx_fewer_classes_than_outputs": Case(
            "evaluate.py",
            ["--checkpoint", tmp / "onnx_three_classes.onnx"],
            ("graph and its metadata disagree", "3 classes"),
            1,
            real=True,
        ),
        "onnx_other_input_size": Case(
            "predict.py",
            ["--checkpoint", tmp / "onnx_input_size.onnx", tmp / "img.png"],
            ("graph and its metadata disagree", "32, 32"),
            1,
        ),
        "onnx_config_int": Case(
            "predict.py", ["--checkpoint", tmp / "onnx_config_int.onnx", tmp / "img.png"], damaged, 1
        ),
        # --- outputs that cannot be written (below a file: refused even for root) ---
        "predict_output_unwritable": Case(
            "predict.py",
            ["--checkpoint", earlier / "best.pt", tmp / "img.png", "--output", tmp / "out_is_a_file" / "p.csv"],
            ("--output", "is a file, not a folder"),
            2,
            real=True,
        ),
        "evaluate_output_dir_unwritable": Case(
            "evaluate.py",
            ["--checkpoint", earlier / "best.pt", "--output_dir", tmp / "out_is_a_file" / "eval"],
            ("--output_dir", "is a file, not a folder"),
            2,
            real=True,
        ),
        "export_output_unwritable": Case(
            "export.py",
            ["--checkpoint", earlier / "best.pt", "--format", "onnx", "--output", tmp / "out_is_a_file" / "m.onnx"],
            ("--output", "is a file, not a folder"),
            2,
        ),
        # --- CSV datasets ---
        "csv_one_file_two_labels": Case(
            "train.py",
            [*scratch, "--dataset", "csv", "--data_dir", tmp / "csv" / "two_labels.csv"],
            ("already listed on line 2",),
            1,
        ),
        "csv_not_utf8": Case(
            "train.py",
            [*scratch, "--dataset", "csv", "--data_dir", tmp / "csv" / "latin1.csv"],
            ("latin1.csv:2: not UTF-8",),
            1,
        ),
        # --- resume: applied or refused, never recorded without being done ---
        "resume_with_new_lr": Case(
            "train.py",
            [*at_root, "--resume", earlier / "epoch_001.pt", "--run_name", "lr_b", "--lr", "0.5"],
            ("lr=0.003", "lr=0.5"),
            2,
        ),
        "resume_with_other_optimizer": Case(
            "train.py",
            [*at_root, "--run_name", "earlier", "--resume", "auto", "--optimizer", "sgd"],
            ("optimizer='adamw'",),
            2,
        ),
        "resume_older_epoch_into_own_folder": Case(
            "train.py",
            [*at_root, "--resume", earlier / "epoch_001.pt"],
            ("already holds epochs up to 2", "--run_name"),
            2,
        ),
        "resume_weights_only": Case(
            "train.py",
            [*at_root, "--resume", tmp / "weights_only.pt", "--run_name", "w"],
            ("holds weights only", "--pretrained_weights"),
            2,
        ),
    }
    return cases


CASES = list(catalogue(Path("r"), Path("t")))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    import train as train_script

    root, tmp = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("inputs")
    train_script.main(
        ["--checkpoint_dir", str(root), *TRAIN, "--epochs", "2", "--save_every", "1", "--run_name", "earlier"]
    )
    make_inputs(root / "earlier", tmp)
    before = snapshot(root / "earlier")
    table = catalogue(root, tmp)
    real = {n: c for n, c in table.items() if c.real}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the subprocesses meanwhile: most never import torch
        running = {n: pool.submit(cli, c.script, *c.args) for n, c in real.items()}
        done = {n: in_process(c.script, c.args) for n, c in table.items() if not c.real}
        done.update({n: f.result() for n, f in running.items()})
    return {
        "root": root,
        "tmp": tmp,
        "table": table,
        "done": done,
        "before": before,
        "after": snapshot(root / "earlier"),
    }


@pytest.mark.slow  # the catalogue of real commands (module fixture)
@pytest.mark.parametrize("name", CASES)
def test_refused_with_one_line(outcomes, name):
    case = outcomes["table"][name]
    assert_refused(outcomes["done"][name], codes=(case.code,) if case.code else (1, 2), says=case.says)


@pytest.mark.slow  # the catalogue of real commands (module fixture)
def test_earlier_run_untouched(outcomes):
    assert outcomes["after"] == outcomes["before"]
    assert not (outcomes["root"] / "lr_b").exists() and not (outcomes["root"] / "w").exists()  # refused before locking


@pytest.mark.slow  # the catalogue of real commands (module fixture)
def test_rebuild_into_a_new_file_works(outcomes):
    new = outcomes["tmp"] / "rebuilt.db"
    done = cli("results.py", "import", outcomes["root"], "--results_db", new)
    assert done.returncode == 0, done.stderr
    done = cli("results.py", "runs", "--results_db", new)
    assert done.returncode == 0 and "earlier" in done.stdout


@pytest.mark.slow  # the catalogue of real commands (module fixture)
def test_closed_pipe_exits_quietly(outcomes):
    """``results.py runs | head``: the reader is gone before the first line (closed before it starts)."""
    proc = subprocess.Popen(
        [sys.executable, "results.py", "runs", "--results_db", outcomes["root"] / "results.db"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 141 and err == "", err


@pytest.mark.slow  # the catalogue of real commands (module fixture)
def test_read_only_database_is_one_line(outcomes, monkeypatch, capsys):
    """Root ignores file modes, so SQLite's refusal is simulated where it happens: opening for write."""
    import results as results_script

    real = sqlite3.connect

    class ReadOnly(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.lstrip().upper().startswith(("PRAGMA JOURNAL", "CREATE", "INSERT", "UPDATE")):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return super().execute(sql, *args)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, **{**k, "factory": ReadOnly}))
    with pytest.raises(SystemExit) as exit_:
        from common.errors import run_cli

        run_cli(results_script.main, ["runs", "--results_db", str(outcomes["root"] / "results.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and err[-1].startswith("error: ") and "chmod u+w" in err[-1]


FLOATS = [f.name for f in dataclasses.fields(Config) if FIELD_TYPES[f.name] is float]


YAML_SPELLING = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf", "1e999": "1e999", "-1e999": "-1e999"}


@pytest.mark.parametrize("value", list(YAML_SPELLING))
@pytest.mark.parametrize("key", FLOATS)
def test_every_float_setting_refuses_non_finite(key, value, tmp_path):
    """In-process: the command line and YAML both pass one check (the class the commands above sample)."""
    with pytest.raises(UsageError, match="finite number"):
        parse_args([f"--{key}={value}"])
    (tmp_path / "c.yaml").write_text(f"{key}: {YAML_SPELLING[value]}\n")
    with pytest.raises(UsageError, match="finite number"):
        parse_args(["--config", str(tmp_path / "c.yaml")])


def test_float_fields_are_all_covered():
    assert {"lr", "weight_decay", "momentum", "dropout", "warmup_start_factor", "min_delta"} <= set(FLOATS)
    assert yaml.safe_load("x: .nan")["x"] != yaml.safe_load("x: .nan")["x"]  # the YAML spelling really is NaN


@pytest.mark.slow  # the catalogue of real commands (module fixture)
def test_import_skips_damaged_run_folders_with_a_warning(outcomes, tmp_path):
    """A rebuild must not stop at one damaged run: its folder is skipped, named on stderr, the rest imported."""
    from catalogue_util import copy_run

    good = copy_run(outcomes["root"] / "earlier", tmp_path / "runs" / "good")
    (copy_run(good, tmp_path / "runs" / "bad_config") / "config.yaml").write_text("a: [1,\n")
    (copy_run(good, tmp_path / "runs" / "bad_metrics") / "metrics.csv").write_bytes(b"epoch,lr\n1,\xff\n")
    damaged_eval = copy_run(good, tmp_path / "runs" / "bad_eval") / "eval_test"
    damaged_eval.mkdir()
    (damaged_eval / "metrics.json").write_text('{"per_class": 5')
    done = cli("results.py", "import", tmp_path / "runs", "--results_db", tmp_path / "new.db")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "imported 2 run folders" in done.stdout
    warned = done.stderr.strip().splitlines()
    assert len(warned) == 3 and all(line.startswith("warning: skipped") for line in warned)
    assert {"bad_config", "bad_metrics", "metrics.json"} <= {Path(w.split()[2].rstrip(":")).name for w in warned}
