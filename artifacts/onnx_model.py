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

from common.errors import AppError
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
        raise AppError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:200]}") from None


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
            out = np.concatenate([self.session.run(None, {self.input_name: arr[i:i + 1]})[0]
                                  for i in range(arr.shape[0])])
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
        cfg = config_mod.from_dict(json.loads(meta["imgclf.config"]))
    except (KeyError, ValueError) as e:
        raise AppError(f"{path} has no imgclf metadata ({e}); export it with export.py") from None
    return module.eval(), cfg, [str(n) for n in names], pre
