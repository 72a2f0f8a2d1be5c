"""Config precedence (defaults < YAML < CLI) and rejection of unknown keys, wrong types, bad values."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from common.errors import UsageError
from settings.config import (
    FIELDS,
    Config,
    apply_overrides,
    build_parser,
    load_yaml,
    model_args,
    parse_args,
    save_yaml,
    stage_widths,
)
from settings.validate import check_config

ROOT_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, data) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_precedence_defaults_yaml_cli(tmp_path):
    path = write(tmp_path, {"lr": 0.5, "epochs": 7, "scheduler": {"name": "step", "step_size": 2}})
    cfg, _ = parse_args(["--config", path, "--lr", "0.25"])
    assert cfg.lr == 0.25  # CLI beats YAML
    assert cfg.epochs == 7  # YAML beats default
    assert cfg.batch_size == Config().batch_size  # default survives
    assert cfg.scheduler == "step" and cfg.scheduler_params == {"step_size": 2}


def test_scheduler_flags_merge_with_yaml_block(tmp_path):
    path = write(tmp_path, {"scheduler": {"name": "plateau", "patience": 4, "factor": 0.5}})
    cfg, script = parse_args(["--config", path, "--scheduler_patience", "1"])
    assert cfg.scheduler_params == {"patience": 1, "factor": 0.5}
    assert "scheduler_patience" in script["cli_keys"]


def test_new_scheduler_on_cli_drops_yaml_params(tmp_path):
    path = write(tmp_path, {"scheduler": {"name": "plateau", "patience": 4}})
    cfg, _ = parse_args(["--config", path, "--scheduler", "cosine"])
    assert cfg.scheduler == "cosine" and cfg.scheduler_params == {}


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"batchsize": 32}, "did you mean 'batch_size'"),
        ({"epoch": 3}, "did you mean 'epochs'"),
        ({"lr": "fast"}, "'lr' must be float"),
        ({"epochs": 2.5}, "'epochs' must be int"),
        ({"amp": "yes"}, "'amp' must be auto, on or off"),
        ({"tta": "yes"}, "'tta' must be bool"),
    ],
)
def test_yaml_rejects_unknown_keys_and_wrong_types(tmp_path, data, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_args(["--config", write(tmp_path, data)])


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--learning_rate", "0.1"], "unrecognized argument '--learning_rate' \\(did you mean '--lr'\\?\\)"),
        (["--epochs", "three"], "invalid int value"),
        (["--scheduler", "cosine", "--scheduler_gama", "0.5"], "no hyperparameter 'gama'"),
    ],
)
def test_cli_rejects(argv, fragment):
    with pytest.raises(UsageError, match=fragment):
        cfg, _ = parse_args(argv)
        check_config(cfg)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"lr": -1.0}, "--lr must be > 0"),
        ({"batch_size": 0}, "--batch_size must be >= 1"),
        ({"early_stopping": -1}, "PATIENCE must be >= 0"),
        ({"warmup_epochs": 20.0, "epochs": 10}, "shorter than training"),
        ({"model": "resnet_9000"}, "unknown model 'resnet_9000'"),
        ({"scheduler": "cosin"}, "did you mean 'cosine'"),
        ({"dataset": "imagenet-1k"}, "unknown dataset"),
        ({"scheduler": "step", "scheduler_params": {"gamma": 2.0}}, "out of range"),
        ({"widths": "16,x,64"}, "--widths must be positive integers"),
        ({"widths": "16,0"}, "--widths must be positive integers"),
        ({"widths": "16,32", "model": "efficientnet_b0"}, "custom CNN only"),
    ],
)
def test_invalid_values(override, fragment):
    cfg = apply_overrides(Config(), override, "test")
    with pytest.raises(UsageError, match=fragment):
        check_config(cfg)


def test_default_yaml_covers_every_setting_at_its_default():
    data = load_yaml(ROOT_CONFIGS / "default.yaml")
    assert set(data) | {"scheduler_params"} == set(FIELDS)
    assert apply_overrides(Config(), data, "default.yaml") == Config()


SEARCH_SPACES = {"search.yaml"}  # sweep.py --search files: lists and ranges of settings, not one config


@pytest.mark.parametrize(
    "path", sorted(p for p in ROOT_CONFIGS.glob("*.yaml") if p.name not in SEARCH_SPACES), ids=lambda p: p.name
)
def test_every_shipped_config_is_valid(path):
    check_config(apply_overrides(Config(), load_yaml(path), path.name))


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_every_shipped_search_space_passes_train_py_s_checks(name):
    from lab.space import check_space, load_space

    space = load_space(ROOT_CONFIGS / name)
    check_space(space, [], set(), Config().scheduler)  # raises UsageError naming the bad key
    assert "scheduler" in space.names() and "lr" in space.names()


def test_saved_config_round_trips(tmp_path):
    cfg = dataclasses.replace(Config(), scheduler="plateau", scheduler_params={"patience": 3}, lr=0.01)
    save_yaml(cfg, tmp_path / "r.yaml")
    assert apply_overrides(Config(), load_yaml(tmp_path / "r.yaml"), "r.yaml") == cfg


@pytest.mark.parametrize("text", ["widths: [16, 48, 96]", "widths: 16,48,96"])
def test_widths_from_yaml_list_or_text_and_cli(tmp_path, text):
    (tmp_path / "w.yaml").write_text(text + "\n")
    cfg, _ = parse_args(["--config", str(tmp_path / "w.yaml")])
    assert stage_widths(cfg) == (16, 48, 96)
    cfg, _ = parse_args(["--config", str(tmp_path / "w.yaml"), "--widths", "32,64"])
    assert stage_widths(cfg) == (32, 64) and model_args(cfg)["widths"] == (32, 64)


def test_exponent_floats_read_as_floats(tmp_path):
    cfg, _ = parse_args(
        ["--config", write_text(tmp_path, "lr: 1e-3\n"), "--scheduler", "cosine", "--scheduler_eta_min", "1e-6"]
    )
    assert cfg.lr == 1e-3 and cfg.scheduler_params == {"eta_min": 1e-6}


def write_text(tmp_path, text: str) -> str:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return str(p)


def test_threads_help_says_auto_takes_the_free_cores():
    """0 does not mean every core: engine/runtime.default_threads leaves out cores busy at start."""
    text = build_parser().format_help()
    assert "0 = the free cores" in " ".join(text.split())
