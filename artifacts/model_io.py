"""From a checkpoint to a model ready for evaluation: the one path every consumer takes.

Training's final test, ``evaluate.py``, ``predict.py`` and the tools built on them all call
:func:`load_model_from_checkpoint`, so they pick the same weights (the EMA/SWA average when the
run kept one, else the trained weights), the same preprocessing, class names and autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from artifacts.checkpoint import load_checkpoint
from common.errors import AppError, UsageError, first_line
from models import build_model
from runtime.runtime import AmpPolicy, amp_policy
from settings import config as config_mod
from settings.config import Config

PREPROCESSING_KEYS = ("input_size", "channels", "mean", "std")


@dataclass
class LoadedModel:
    """A model ready for inference, with everything its checkpoint says about its input."""

    model: nn.Module
    cfg: Config
    class_names: list[str]
    preprocessing: dict[str, Any]
    device: torch.device
    amp: AmpPolicy
    path: Path
    epoch: int  # completed epochs when the checkpoint was saved
    best_metric: float | None  # the monitored value early stopping had as best then
    global_step: int = 0  # optimizer updates when the checkpoint was saved

    @property
    def is_onnx(self) -> bool:
        """An export.py ONNX file: no run, epoch or training state behind it."""
        return is_onnx_path(self.path)

    @property
    def channels(self) -> int:
        return int(self.preprocessing["channels"])


def is_onnx_path(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


AMP_CHOICES = ("auto", "on", "off")  # evaluate.py / predict.py --amp


def load_model_from_checkpoint(path: str | Path, device: torch.device, amp: str = "auto") -> LoadedModel:
    """Build the checkpoint's model with its inference weights (EMA when kept), in eval mode.

    Raises AppError for missing/corrupt/other-version files (via ``load_checkpoint``) and for
    weights that do not fit the architecture the checkpoint names. An ``.onnx`` file written by
    export.py loads too: onnxruntime runs it on the CPU in float32 (``device`` and ``amp`` are then ignored).
    ``amp``: ``auto`` runs the run's own autocast, ``on`` forces it (bfloat16 on a CPU), ``off`` float32.
    """
    if amp not in AMP_CHOICES:
        raise UsageError(f"unknown --amp '{amp}'; valid: {', '.join(AMP_CHOICES)}")
    path = Path(path)
    if is_onnx_path(path):
        from artifacts.onnx_model import read_onnx

        module, cfg, names, pre = read_onnx(path)
        cpu = torch.device("cpu")
        return LoadedModel(module, cfg, names, pre, cpu, amp_policy(False, "auto", cpu), path, 0, None)
    ckpt = load_checkpoint(path)
    cfg = config_mod.from_dict(ckpt["config"])
    pre = ckpt["preprocessing"]
    missing = [k for k in PREPROCESSING_KEYS if k not in pre]
    if missing:
        raise AppError(
            f"{path} does not describe its preprocessing (missing {', '.join(missing)}); retrain "
            f"with this version to get a self-describing checkpoint"
        )
    names = [str(n) for n in ckpt["class_names"]]
    try:
        # No pretrained download or weight file: the checkpoint's own weights replace them anyway.
        model = build_model(
            cfg.model, len(names), int(pre["channels"]), int(pre["input_size"][0]), **config_mod.model_args(cfg)
        )
    except UsageError as e:  # e.g. a timm architecture this install does not have
        raise AppError(f"cannot rebuild the model of {path}: {e}") from None
    except (RuntimeError, ValueError, TypeError, LookupError, ArithmeticError) as e:  # settings no trainer wrote
        raise AppError(
            f"cannot rebuild the model of {path}: its saved settings do not make a model ({first_line(e)}); "
            f"the file is damaged or was edited"
        ) from None
    try:
        model.load_state_dict(inference_weights(ckpt))
    except RuntimeError as e:
        raise AppError(
            f"the weights in {path} do not fit model '{cfg.model}' "
            f"({first_line(e)}); the checkpoint is damaged or was edited"
        ) from None
    model.to(device).eval()
    # The run's own autocast, as its validation and final test used: evaluate.py then reproduces
    # summary.json's accuracy, not one a few images off. A float16 run (a GPU's: its GradScaler
    # state is saved) read on a CPU runs in float32 instead: CPUs have no float16 autocast, and
    # bfloat16 would be neither the run's numbers nor fast on CPUs without bf16 instructions.
    gpu_float16 = bool(ckpt.get("scaler")) or cfg.amp_dtype == "float16"
    cpu_half = device.type == "cpu" and gpu_float16
    enabled = {"auto": cfg.amp == "on" and not cpu_half, "on": True, "off": False}[amp]
    policy = amp_policy(enabled, "bfloat16" if cpu_half else cfg.amp_dtype, device)
    return LoadedModel(
        model,
        cfg,
        names,
        dict(pre),
        device,
        policy,
        path,
        int(ckpt.get("epoch", 0)),
        ckpt.get("best_metric"),
        int(ckpt.get("global_step", 0)),
    )


def inference_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state_dict to predict with: the EMA weights when the run kept them."""
    ema = ckpt.get("ema")
    if ema and int(ema.get("n_averaged", 1)) > 0:  # an SWA run saved before its first averaged epoch has none
        prefix = "module."
        return {k[len(prefix) :]: v for k, v in ema.items() if k.startswith(prefix)}
    return ckpt["model"]
