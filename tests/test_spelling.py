"""The one did-you-mean: config keys, command-line flags of every script and registry names."""

from __future__ import annotations

import pytest

from common.cli import cli_parser
from common.errors import UsageError, unknown_name
from common.spelling import closest, did_you_mean, plural
from settings.config import FIELDS, build_parser

FLAGS = build_parser().flags


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("--lerning_rate", "--lr"),
        ("--learning_rate", "--lr"),
        ("--learning-rate", "--lr"),
        ("--LR", "--lr"),
        ("--bs", "--batch_size"),
        ("--batchsize", "--batch_size"),
        ("--batch-size", "--batch_size"),
        ("--epoch", "--epochs"),
        ("--num_epochs", "--epochs"),
        ("--weight-decay", "--weight_decay"),
        ("--wd", "--weight_decay"),
        ("--lr_scheduler", "--scheduler"),
        ("--schedule", "--scheduler"),
        ("--optim", "--optimizer"),
        ("--workers", "--num_workers"),
        ("--patience", "--early_stopping"),
        ("--output_dir", "--checkpoint_dir"),
        ("--no-amps", "--no-amp"),
        ("--sheduler", "--scheduler"),
    ],
)
def test_train_flags(typed, meant):
    assert closest(typed, FLAGS) == meant


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("learning_rate", "lr"),
        ("batchsize", "batch_size"),
        ("epoch", "epochs"),
        ("weight-decay", "weight_decay"),
        ("lr_scheduler", "scheduler"),
        ("warmup", "warmup_epochs"),
        ("label_smooth", "label_smoothing"),
    ],
)
def test_config_keys(typed, meant):
    assert closest(typed, FIELDS) == meant


def test_a_common_spelling_needs_its_target_among_the_valid_names():
    assert closest("--learning_rate", ["--checkpoint", "--images"]) is None
    assert did_you_mean("zzzz", ["alpha", "beta"]) == ""


def test_one_style_everywhere():
    assert did_you_mean("adamm", ["adam", "sgd"]) == " (did you mean 'adam'?)"
    assert str(unknown_name("optimizer", "adamm", ["sgd", "adam"])) == (
        "unknown optimizer 'adamm' (did you mean 'adam'?). Valid: adam, sgd"
    )


def test_every_script_parser_suggests_its_own_flags():
    p = cli_parser("x")
    p.add_argument("--checkpoint")
    p.add_argument("--batch_size", type=int)
    with pytest.raises(UsageError, match=r"unrecognized argument '--bs' \(did you mean '--batch_size'\?\)"):
        p.parse_args(["--bs", "3"])
    with pytest.raises(UsageError, match=r"unrecognized argument '--ckpt=a.pt' \(did you mean '--checkpoint'\?\)"):
        p.parse_args(["--ckpt=a.pt"])
    with pytest.raises(UsageError, match=r"^unrecognized argument 'extra'$"):
        p.parse_args(["extra"])


def test_registries_suggest_too():
    from schedulers import resolve_params

    with pytest.raises(UsageError, match=r"unknown scheduler 'cosin' \(did you mean 'cosine'\?\)"):
        resolve_params("cosin", {})
    with pytest.raises(UsageError, match=r"no hyperparameter 'T_mx' \(did you mean 'T_max'\?\)"):
        resolve_params("cosine", {"T_mx": 3})
    with pytest.raises(UsageError, match=r"= 'mn' \(did you mean 'min'\?\)"):
        resolve_params("plateau", {"mode": "mn"})


@pytest.mark.parametrize(
    "n, word, many, text",
    [
        (1, "thread", None, "1 thread"),
        (2, "thread", None, "2 threads"),
        (0, "update", None, "0 updates"),
        (1, "batch", None, "1 batch"),
        (3, "batch", None, "3 batches"),
        (2, "class", None, "2 classes"),
        (2, "epoch", None, "2 epochs"),
        (1, "epoch", None, "1 epoch"),
        (1, "most confident mistake", None, "1 most confident mistake"),
        (2, "child", "children", "2 children"),
    ],
)
def test_plural(n, word, many, text):
    assert plural(n, word, many) == text


def test_plural_word_alone():
    assert plural(1, "empty class folder", count=False) == "empty class folder"
    assert plural(2, "empty class folder", count=False) == "empty class folders"


def test_choices_of_every_script_suggest_too():
    p = cli_parser("x")
    p.add_argument("--split", choices=("val", "test"))
    with pytest.raises(
        UsageError,
        match=r"argument --split: invalid choice: 'tset' \(did you mean 'test'\?\); "
        r"valid: val, test",
    ):
        p.parse_args(["--split", "tset"])
