"""Property-based fuzzing of the config layer (defaults -> YAML -> command line -> checks).

Whatever the YAML document or the command line holds, resolving and checking it either gives a
config that is valid in every field, or raises the project's own error (one line at the command
line): never another exception, and never a config with NaN, a wrong type or an absurd size that a
run would then start with. In-process: the property is about the parsing, not the command.
"""

from __future__ import annotations

import dataclasses
import math
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import AppError
from settings.config import (
    FIELD_TYPES,
    FIELDS,
    LR_AUTO,
    apply_overrides,
    build_parser,
    from_dict,
    load_yaml,
    parse_args,
    save_yaml,
    to_dict,
)
from settings.validate import MAX_BATCH, MAX_CHANNELS, MAX_IMAGE_SIDE, check_config

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCHEDULER_KEYS = [
    "scheduler_gamma",
    "scheduler_step_size",
    "scheduler_patience",
    "scheduler_milestones",
    "scheduler_factor",
    "scheduler_min_lr",
    "scheduler_eta_min",
    "scheduler_power",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "auto",
            "on",
            "off",
            "cosine",
            "step",
            "plateau",
            "custom",
            "digits",
            "sgd",
            "adamw",
            "nan",
            "inf",
            "1e-3",
            "[1, 2]",
            "0",
            "-1",
            "100000",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(["name", "gamma", "patience"]), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(FIELDS + SCHEDULER_KEYS + ["scheduler"]) | st.text(max_size=10) | st.integers() | st.booleans()


def assert_valid(cfg) -> None:
    """What a run may start with: every field of its declared type, finite, within the size bounds,
    and written into config.yaml / a checkpoint it reads back as the same config."""
    for f in dataclasses.fields(cfg):
        value, want = getattr(cfg, f.name), FIELD_TYPES[f.name]
        if f.name == "lr" and value == LR_AUTO:
            continue
        if want is float:
            assert isinstance(value, float) and math.isfinite(value), (f.name, value)
        elif want is int:
            assert isinstance(value, int) and not isinstance(value, bool), (f.name, value)
        else:
            assert isinstance(value, want), (f.name, value)
    for v in cfg.scheduler_params.values():
        assert not (isinstance(v, float) and not math.isfinite(v))
    assert cfg.image_size <= MAX_IMAGE_SIDE and cfg.width <= MAX_CHANNELS and cfg.batch_size <= MAX_BATCH
    assert from_dict(to_dict(cfg)) == cfg
    with tempfile.TemporaryDirectory() as tmp:
        save_yaml(cfg, Path(tmp) / "config.yaml")
        assert apply_overrides(type(cfg)(), load_yaml(Path(tmp) / "config.yaml"), "config.yaml") == cfg


def resolve(argv: list[str]) -> None:
    try:
        cfg, _ = parse_args(argv)
        check_config(cfg)
    except AppError:
        return  # refused with the project's one-line error: fine
    assert_valid(cfg)


def test_a_valid_document_reaches_the_property(tmp_path):
    """The property's other branch is reachable: a good document resolves and passes assert_valid."""
    (tmp_path / "c.yaml").write_text("lr: 0.01\nepochs: 3\nscheduler: {name: step, gamma: 0.5}\n")
    cfg, _ = parse_args(["--config", str(tmp_path / "c.yaml")])
    check_config(cfg)
    assert_valid(cfg)
    assert cfg.scheduler_params == {"gamma": 0.5}


@settings(FUZZ, max_examples=80)
@given(st.dictionaries(keys, values, max_size=6))
def test_any_yaml_mapping_is_refused_or_valid(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        resolve(["--config", str(path)])


@FUZZ
@given(st.text(alphabet=string.printable + "é\x00\ufeff", max_size=120) | st.binary(max_size=60))
def test_any_yaml_text_is_refused_or_valid(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        resolve(["--config", str(path)])


FLAGS = [f for f in build_parser().flags if f not in ("--help", "--config", "--debug", "--check_data")]


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(FLAGS + [f"--{k}" for k in SCHEDULER_KEYS]),
            st.text(max_size=10)
            | st.sampled_from(["nan", "-inf", "1e999", "0", "-1", "100000", "auto", "[1,", "{a: 1, a: 2}", "3.5"]),
        ),
        max_size=4,
    )
)
def test_any_command_line_is_refused_or_valid(pairs):
    resolve([f"{flag}={value}" for flag, value in pairs])
