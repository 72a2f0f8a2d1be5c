"""One config path: dataclass defaults -> YAML (--config) -> command line.

Unknown keys and wrong types are rejected naming the key and the closest valid one; the
resolved config is what gets written into the run folder and into every checkpoint.

Scheduler hyperparameters live in ``scheduler_params``. In YAML they are written as a block
(``scheduler: {name: plateau, patience: 2}``) or as flat ``scheduler_<param>`` keys; on the
command line as ``--scheduler_<param> VALUE``. The scheduler registry checks them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.cli import ArgParser, add_shared_flags
from common.errors import UsageError, first_line
from common.fileio import write_atomic
from common.spelling import did_you_mean


@dataclass
class Config:
    # --- data ---
    dataset: str = "digits"
    data_dir: str = "datasets"
    val_split: float = 0.1
    test_split: float = 0.2
    augment: str = "light"
    image_size: int = 0  # 0 keeps the dataset's native size
    class_weights: str = "none"  # none | auto
    balanced_sampler: bool = False
    strict_data: bool = False
    num_workers: int = -1  # -1: pick from the machine
    data_mode: str = "auto"  # auto | memory | stream (image files: decode once in memory, or in workers)
    max_image_pixels: int = 89_478_485  # width x height above which an image file is refused (Pillow's default)
    # --- model ---
    model: str = "custom"
    width: int = 32
    depth: int = 3
    widths: str = ""  # custom CNN: channels of each stage, comma-separated; replaces width and depth
    dropout: float = 0.1
    pretrained: bool = False
    pretrained_weights: str = ""
    freeze_epochs: int = 0  # train only the classifier head for the first N epochs
    backbone_lr_mult: float = 1.0  # backbone LR = this x the head's LR
    channels_last: str = "auto"  # auto (measured at start, see runtime/autotune.py) | on | off
    # --- optimisation ---
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.003  # or "auto": lr_find.py's range test picks it before training (LR_AUTO)
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.0005
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # 0 disables clipping
    accum_steps: int = 1
    ema: float = 0.0  # weight EMA decay; 0 disables
    tta: bool = False  # horizontal-flip test-time augmentation at evaluation
    # --- schedule ---
    scheduler: str = "cosine"
    scheduler_params: dict = field(default_factory=dict)
    warmup_epochs: float = 0.0
    warmup_steps: int = 0
    warmup_mode: str = "linear"
    warmup_start_factor: float = 0.01
    # --- early stopping and checkpoints ---
    early_stopping: int = 0  # patience in epochs; 0 disables
    min_delta: float = 0.0
    monitor: str = "val_loss"  # val_loss | val_acc
    run_name: str = ""  # default: <model>_<dataset>
    checkpoint_dir: str = "checkpoints"
    save_every: int = 0
    keep_last: int = 0  # keep the N newest epoch_NNN.pt files; 0 keeps all
    resume: str = ""  # PATH or 'auto'
    # database of all runs: a SQLite file or a SQLAlchemy URL; "" -> <checkpoint_dir>/results.db, "none" disables
    results_db: str = ""
    # --- runtime ---
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto (chosen by measurement at start) | on | off; YAML true/false also work
    amp_dtype: str = "auto"  # auto (float16 on CUDA, bfloat16 on CPU) | float16 | bfloat16
    threads: int = 0  # torch intra-op threads; 0: the free cores at start (runtime.default_threads)
    deterministic: bool = False
    compile: bool = False  # torch.compile the training forward/backward (see bench/compile_speed.py)
    max_nonfinite: int = 3  # consecutive non-finite losses before training stops
    tensorboard: bool = False  # also write TensorBoard event files to <run>/tb/
    # --- several processes (torchrun) ---
    lr_scaling: str = "none"  # none | linear | sqrt: --lr times world size, or its square root
    sync_bn: bool = False  # BatchNorm statistics over the global batch (SyncBatchNorm, CUDA)


DEFAULT_YAML = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Config)
LR_AUTO = "auto"  # the one non-float value of ``lr``: replaced by the LR finder's choice before training
FIELDS = [f.name for f in dataclasses.fields(Config)]
# Flags that steer a command but are not part of the run's config.
SCRIPT_FLAGS = {"config", "debug", "check_data"}
# auto | on | off settings; YAML booleans (and old configs' true/false) mean on/off.
TRI_STATE = ("amp", "channels_last")
_TRI_VALUES = {"auto": "auto", "on": "on", "off": "off", "true": "on", "false": "off", True: "on", False: "off"}


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-7`` as a float (YAML 1.1 wants ``1.0e-7``; people write ``1e-7``)
    and refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if first != key_node.start_mark.line + 1:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (first on line {first})", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


class _Yaml12Dumper(yaml.SafeDumper):
    """SafeDumper that quotes what _Yaml12Loader would read as a float (a data_dir named ``1e5``)."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
for _cls in (_Yaml12Loader, _Yaml12Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def yaml_problem(e: yaml.YAMLError) -> str:
    """What PyYAML found wrong, with its line, in one line."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem:
        return f"{problem}" + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")
    return first_line(e)


def yaml_value(text: str, flag: str = "value") -> Any:
    """Parse one YAML scalar or list (used for CLI values, so they type like YAML values)."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as e:
        raise UsageError(
            f"{flag} {text!r} is not a valid value: {yaml_problem(e)}; quote it, e.g. '[2, 4]' for a list"
        ) from None


def tri_state(key: str, value: Any) -> str:
    """``value`` of an auto|on|off key as 'auto', 'on' or 'off' (booleans of older configs included)."""
    norm = None
    if isinstance(value, (str, bool)):
        norm = _TRI_VALUES.get(value.lower() if isinstance(value, str) else value)
    if norm is None:
        raise UsageError(f"config key '{key}' must be auto, on or off (or true/false), got {value!r}")
    return norm


def finite_floats(key: str, value: Any) -> None:
    """Refuse NaN and infinity anywhere in ``value`` (a number, or lists/dicts of them): no setting of
    this tool means anything with them, and they would only surface later as a diverged run."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"config key '{key}' must be a finite number, got {value}")
    if isinstance(value, (list, tuple)):
        for v in value:
            finite_floats(key, v)
    elif isinstance(value, dict):
        for k, v in value.items():
            finite_floats(f"{key}.{k}", v)


def _check_key(key: Any, source: str) -> str:
    if not isinstance(key, str):
        raise UsageError(
            f"config key {key!r} in {source} is a {type(key).__name__}; keys are setting names such as lr or batch_size"
        )
    return key


def _check_type(key: str, value: Any) -> Any:
    if key in TRI_STATE:
        return tri_state(key, value)
    if key == "widths" and isinstance(value, (list, int)):  # YAML [16, 48] or a lone 16
        value = ",".join(str(v) for v in (value if isinstance(value, list) else [value]))
    want = FIELD_TYPES[key]
    if key == "lr" and value == LR_AUTO:
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        dict: isinstance(value, dict),
    }[want]
    if not ok:
        extra = f" or '{LR_AUTO}'" if key == "lr" else ""
        raise UsageError(
            f"config key '{key}' must be {want.__name__}{extra}, got {type(value).__name__} {str(value)[:80]!r}"
        )
    if want is float:
        try:
            value = float(value)
        except OverflowError:  # an integer too large for a float
            raise UsageError(f"config key '{key}' must be a finite number, got {str(value)[:40]}...") from None
    finite_floats(key, value)
    return value


def apply_overrides(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    """Return ``cfg`` with ``overrides`` applied, rejecting unknown keys and wrong types."""
    values = dataclasses.asdict(cfg)
    params = dict(values["scheduler_params"])
    for key, value in overrides.items():
        key = _check_key(key, source)
        if isinstance(value, dict):
            for inner in value:
                _check_key(inner, source)
        if key == "scheduler" and isinstance(value, dict):
            block = dict(value)
            if "name" in block:
                values["scheduler"] = _check_type("scheduler", block.pop("name"))
            finite_floats("scheduler", block)
            params.update(block)
        elif key == "scheduler_params":
            params.update(_check_type(key, value))  # finite_floats ran inside
        elif key.startswith("scheduler_") and key not in FIELD_TYPES:
            finite_floats(key, value)
            params[key[len("scheduler_") :]] = value
        elif key in FIELD_TYPES:
            values[key] = _check_type(key, value)
        else:
            raise UsageError(f"unknown config key '{key}' in {source}{did_you_mean(key, FIELDS)}")
    values["scheduler_params"] = params
    return Config(**values)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=_Yaml12Loader) or {}
    except UnicodeDecodeError as e:
        raise UsageError(
            f"config file {path} is not UTF-8 text (byte {e.start}: {e.object[e.start : e.start + 1]!r}); "
            f"save it as UTF-8"
        ) from None
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"config file {path} is not valid YAML: {yaml_problem(e)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of keys to values")
    return data


def _lr_value(text: str) -> float | str:
    """``--lr``: a float, or 'auto' (see LR_AUTO)."""
    if text == LR_AUTO:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a float or '{LR_AUTO}', got {text!r}") from None


def field_help(path: Path = DEFAULT_YAML) -> dict[str, str]:
    """Each setting's meaning: the comment beside it in configs/default.yaml, the one place that
    documents every setting (so a field added there with a comment gets its ``--help`` text too)."""
    out: dict[str, str] = {}
    block = ""
    for line in path.read_text().splitlines():
        m = re.match(r"^(\s*)(\w+):\s*(.*?)\s*(?:#\s*(.*))?$", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent, key, value, comment = m.groups()
        if not indent:
            block = key if value == "" else ""
            if comment:
                out[key] = comment
        elif block == "scheduler" and key == "name" and comment:  # the block's `name:` line documents --scheduler
            out["scheduler"] = comment
    return out


def build_parser(description: str = "") -> ArgParser:
    """Every Config field as a ``--flag``; only flags actually given override YAML."""
    p = ArgParser(description=description, argument_default=argparse.SUPPRESS)
    p.add_argument("--config", help="YAML file of settings (CLI flags override it)")
    add_shared_flags(p)
    p.add_argument("--check_data", action="store_true", help="check the dataset, print the report and exit")
    add_config_flags(p, [f for f in FIELDS if f != "scheduler_params"])
    p.epilog = "Scheduler hyperparameters: --scheduler_<param> VALUE (see `python plot_schedule.py --list`)."
    return p


def add_config_flags(p: ArgParser, names: Sequence[str]) -> None:
    """Config fields ``names`` as ``--flags`` of ``p``, typed and documented as train.py's (help text from
    configs/default.yaml); a flag not given is absent from the namespace, so the Config default holds."""
    metavars = {"early_stopping": "PATIENCE", "resume": "PATH|auto", "results_db": "PATH|URL|none", "lr": "FLOAT|auto"}
    types = {"lr": _lr_value}
    meaning = field_help()
    defaults = Config()
    for name in names:
        t = FIELD_TYPES[name]
        text = f"{meaning.get(name, '')} (default: {getattr(defaults, name)!r})".lstrip().replace("%", "%%")
        common = {"default": argparse.SUPPRESS}
        if name in TRI_STATE:  # --amp alone = on, --amp auto|on|off, --no-amp = off
            p.add_argument(
                f"--{name}", nargs="?", const="on", metavar="auto|on|off", help=text + "; alone: on", **common
            )
            p.add_argument(f"--no-{name}", dest=name, action="store_const", const="off", help="same as off", **common)
        elif t is bool:
            p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=text, **common)
        else:
            p.add_argument(
                f"--{name}",
                type=types.get(name, t),
                metavar=metavars.get(name, t.__name__.upper()),
                help=text,
                **common,
            )


def scheduler_flags(rest: Sequence[str], parser: ArgParser) -> dict[str, Any]:
    """Parse leftover ``--scheduler_<param> VALUE`` pairs; anything else is an unknown flag."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        arg = rest[i]
        key, _, inline = arg.partition("=")
        if not key.startswith("--scheduler_"):
            raise parser.unrecognized(arg)
        if inline:
            raw = inline
        else:
            if i + 1 >= len(rest):
                raise UsageError(f"{key} needs a value")
            raw = rest[i + 1]
            i += 1
        out[key[len("--") :]] = yaml_value(raw, key)  # typed: 3 -> int, 0.5 -> float, [2,4] -> list
        i += 1
    return out


def parse_args(argv: Sequence[str] | None, description: str = "") -> tuple[Config, dict[str, Any]]:
    """Resolve the config from defaults, YAML and CLI.

    Returns ``(config, script)``: ``script`` holds the flags that steer the command but are not part
    of the run's config (``--config``, ``--debug``, ``--check_data``) and ``cli_keys``, the config
    keys given on the command line (a resumed run applies only those on top of its saved config).
    """
    parser = build_parser(description)
    ns, rest = parser.parse_known_args(argv)
    given = vars(ns)
    script = {k: given.pop(k) for k in list(given) if k in SCRIPT_FLAGS}
    given.update(scheduler_flags(rest, parser))
    cfg = Config()
    if script.get("config"):
        cfg = apply_overrides(cfg, load_yaml(script["config"]), source=str(script["config"]))
    if "scheduler" in given and given["scheduler"] != cfg.scheduler:
        # A new schedule on the command line drops the YAML's hyperparameters for the old one.
        cfg = dataclasses.replace(cfg, scheduler_params={})
    cfg = apply_overrides(cfg, given, source="command line")
    script["cli_keys"] = sorted(given)
    return cfg, script


def stage_widths(cfg: Config) -> tuple[int, ...]:
    """``widths`` as integers (empty: the custom CNN doubles ``width`` for ``depth`` stages)."""
    parts = [p.strip() for p in cfg.widths.split(",")] if cfg.widths.strip() else []
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(
            f"--widths must be positive integers separated by commas, e.g. 16,48,96,192 (got {cfg.widths!r})"
        )
    return tuple(int(p) for p in parts)


def model_args(cfg: Config) -> dict[str, Any]:
    """The architecture keywords of ``models.build_model``: one place, so that training, the
    start-up measurement and every checkpoint reader build the same network."""
    return {"width": cfg.width, "depth": cfg.depth, "widths": stage_widths(cfg), "dropout": cfg.dropout}


def architecture_key(cfg: Config, num_classes: int) -> dict[str, Any]:
    """What identifies the network for the start-up measurement's cache (runtime/autotune.py)."""
    return {"model": cfg.model, "classes": num_classes, **model_args(cfg)}


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any], source: str = "a saved config") -> Config:
    """Rebuild a Config saved in a checkpoint, ignoring keys a newer version dropped; every value is
    type-checked as a YAML one would be (UsageError naming the key)."""
    kept = {k: v for k, v in values.items() if k in FIELD_TYPES}  # tri-state booleans: _check_type maps them
    return apply_overrides(Config(), kept, source)


def save_yaml(cfg: Config, path: str | Path) -> None:
    values = to_dict(cfg)
    block = {"name": values.pop("scheduler"), **values.pop("scheduler_params")}
    values["scheduler"] = block
    write_atomic(yaml.dump(values, Dumper=_Yaml12Dumper, sort_keys=False).encode(), Path(path))
