"""Property-based fuzzing of the checkpoint boundary: whatever one field of a checkpoint holds, loading
it for inference gives a usable model or the project's own error (one line), never another exception.

The base is a valid weights-only checkpoint of a tiny custom CNN (built, not trained); each example
replaces one field (or one entry of ``preprocessing`` or ``config``) with a random value. In-process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from artifacts.checkpoint import VERSION
from artifacts.model_io import load_model_from_checkpoint
from common.errors import AppError
from models import build_model
from settings.config import Config, to_dict

CFG = Config(width=4, depth=1, dropout=0.0)
BASE = {
    "model": build_model("custom", 3, 1, 8, width=4, depth=1, dropout=0.0).state_dict(),
    "config": to_dict(CFG),
    "class_names": ["a", "b", "c"],
    "version": VERSION,
    "preprocessing": {"input_size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.25]},
    "epoch": 1,
    "global_step": 3,
    "best_metric": 0.5,
}

junk = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**12), max_value=10**12) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=6,
)
where = st.sampled_from(
    [
        ("model",),
        ("config",),
        ("class_names",),
        ("preprocessing",),
        ("epoch",),
        ("global_step",),
        ("best_metric",),
        ("ema",),
        ("preprocessing", "input_size"),
        ("preprocessing", "channels"),
        ("preprocessing", "mean"),
        ("preprocessing", "std"),
        ("config", "model"),
        ("config", "width"),
        ("config", "depth"),
        ("config", "widths"),
        ("config", "amp"),
        ("config", "dropout"),
        ("config", "scheduler_params"),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where, junk)
@example(("config", "depth"), 0)  # no stage at all: nothing for the first convolution to be
@example(("config", "width"), 0)
@example(("config", "widths"), "4,-2")
@example(("preprocessing", "channels"), 0)
@example(("class_names",), [])
def test_any_field_loads_or_is_refused_in_one_line(path, value):
    ckpt = {**BASE, "preprocessing": dict(BASE["preprocessing"]), "config": dict(BASE["config"])}
    target = ckpt
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "c.pt"
        torch.save(ckpt, file)
        try:
            loaded = load_model_from_checkpoint(file, torch.device("cpu"))
        except AppError:
            return
    h, w = loaded.preprocessing["input_size"]
    with torch.no_grad():  # what was accepted really runs
        out = loaded.model(torch.zeros(1, loaded.channels, h, w))
    assert out.shape == (1, len(loaded.class_names))


def test_the_base_checkpoint_loads(tmp_path):
    torch.save(BASE, tmp_path / "c.pt")
    assert load_model_from_checkpoint(tmp_path / "c.pt", torch.device("cpu")).class_names == ["a", "b", "c"]
