"""Run an exported ``.onnx`` file with onnxruntime behind the same ``LoadedModel`` as a checkpoint.

``OnnxModule`` is an ``nn.Module`` whose forward calls onnxruntime, so predict.py, evaluate.py and
ensembles use one code path for both formats: the same decode, ``eval_transform``, test-time
augmentation and softmax. The class names, preprocessing and config come from the file's metadata
(written by :mod:`evaluation.export`); onnxruntime runs on the CPU. ``artifacts.model_io`` turns what
``read_onnx`` returns into its ``LoadedModel``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from artifacts.checkpoint import check_fields
from common.errors import AppError, first_line
from settings import config as config_mod
from settings.config import Config


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # the same thread budget as the PyTorch path
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise AppError(f"onnxruntime cannot load {path}: {first_line(e, 200)}") from None


class OnnxModule(nn.Module):
    """logits = onnxruntime(x), as a module (no parameters; always on the CPU)."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().float().cpu().numpy()
        if self.fixed_batch is None or arr.shape[0] == self.fixed_batch:
            out = self.session.run(None, {self.input_name: arr})[0]
        else:  # exported without --dynamic_batch: feed one image at a time
            out = np.concatenate(
                [self.session.run(None, {self.input_name: arr[i : i + 1]})[0] for i in range(arr.shape[0])]
            )
        return torch.from_numpy(out)

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)


def read_onnx(path: Path) -> tuple[OnnxModule, Config, list[str], dict]:
    """The module, config, class names and preprocessing of an exported .onnx file (AppError when
    the file is missing or has no imgclf metadata)."""
    if not path.is_file():
        raise AppError(f"{path} does not exist")
    module = OnnxModule(path)
    meta = module.metadata()
    try:
        names = json.loads(meta["imgclf.class_names"])
        pre = json.loads(meta["imgclf.preprocessing"])
        saved = json.loads(meta["imgclf.config"])
    except (KeyError, ValueError) as e:
        raise AppError(f"{path} has no imgclf metadata ({first_line(e)}); export it with export.py") from None
    check_fields({"model": {}, "config": saved, "class_names": names, "preprocessing": pre}, path)
    cfg = config_mod.from_dict(saved)  # type-checked by check_fields
    problem = graph_mismatch(module.session, len(names), pre)
    if problem:
        raise AppError(
            f"{path}: the graph and its metadata disagree ({problem}); the file was edited or "
            f"assembled by hand. Export it again with export.py"
        )
    return module.eval(), cfg, [str(n) for n in names], pre


def graph_mismatch(session, num_classes: int, pre: dict) -> str:
    """How the model's input/output shapes disagree with the metadata ("" when they agree); symbolic
    dimensions (a dynamic batch) agree with anything."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        return f"{len(inputs)} inputs and {len(outputs)} outputs, expected 1 image input and logits"
    want_in = [None, pre.get("channels"), *pre.get("input_size", [None, None])]
    got_in, got_out = list(inputs[0].shape), list(outputs[0].shape)

    def differs(got: list, want: list) -> bool:
        return len(got) != len(want) or any(isinstance(g, int) and w is not None and g != w for g, w in zip(got, want))

    if differs(got_in, want_in):
        return f"input shape {got_in}, metadata says [batch, {want_in[1]}, {want_in[2]}, {want_in[3]}]"
    if differs(got_out, [None, num_classes]):
        return f"output shape {got_out}, metadata lists {num_classes} classes"
    return ""
