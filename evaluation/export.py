"""Ship a checkpoint outside PyTorch: ONNX (run with onnxruntime) or TorchScript, self-describing.

Both formats carry what predict.py needs besides the weights: the class names, the preprocessing
(input size, channels, mean, std) and the run's config, as JSON strings. ONNX keeps them in the
model's ``metadata_props`` (keys in ``META_KEYS``), TorchScript in ``_extra_files``.

Every export is checked against the PyTorch model on real images of the run's dataset: the largest
absolute logit difference is printed, and above ``TOLERANCE`` (float32) the export fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from artifacts.model_io import LoadedModel
from common.errors import AppError, first_line
from common.fileio import write_atomic
from settings import config as config_mod

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-4  # float32: kernels differ in summation order, ~1e-6 is typical
META_KEYS = ("imgclf.class_names", "imgclf.preprocessing", "imgclf.config", "imgclf.source")
INPUT, OUTPUT = "input", "logits"


def metadata(loaded: LoadedModel) -> dict[str, str]:
    """The JSON strings stored beside the graph (ONNX metadata / TorchScript extra files)."""
    return {
        "imgclf.class_names": json.dumps(loaded.class_names),
        "imgclf.preprocessing": json.dumps(loaded.preprocessing),
        "imgclf.config": json.dumps(config_mod.to_dict(loaded.cfg)),
        "imgclf.source": json.dumps(str(loaded.path)),
    }


def _example(loaded: LoadedModel, batch: int) -> torch.Tensor:
    h, w = loaded.preprocessing["input_size"]
    return torch.randn(batch, loaded.channels, h, w)


def export_onnx(loaded: LoadedModel, path: Path, dynamic_batch: bool) -> None:
    """torch.onnx's exporter (torch.export based), then the metadata, written atomically."""
    import onnx

    model = loaded.model.float().cpu().eval()
    # A batch of 2 for the dynamic export: torch.export specialises a dimension it sees as 1.
    kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1)},)} if dynamic_batch else {}
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (_example(loaded, 2 if dynamic_batch else 1),),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                external_data=False,
                verbose=False,
                **kwargs,
            )
        except Exception as e:  # the exporter raises many types; say which model failed and why
            raise AppError(f"ONNX export of '{loaded.cfg.model}' failed: {first_line(e, 200)}") from None
    proto = program.model_proto
    for key, value in metadata(loaded).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    write_atomic(proto.SerializeToString(), path)


def export_torchscript(loaded: LoadedModel, path: Path) -> None:
    """``torch.jit.trace`` (the models have no data-dependent control flow), metadata as extra files."""
    model = loaded.model.float().cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice: still the TorchScript path
        traced = torch.jit.trace(model, _example(loaded, 1))
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={f"{k}.json": v for k, v in metadata(loaded).items()})
    write_atomic(buf.getvalue(), path)


def exported_logits(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    """Run the exported file on ``x``: onnxruntime for ONNX (one image at a time if the batch is
    fixed), torch.jit.load for TorchScript."""
    if fmt == "onnx":
        from artifacts.onnx_model import OnnxModule

        return OnnxModule(path)(x).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(x).numpy()


def verify(loaded: LoadedModel, path: Path, fmt: str, x: torch.Tensor) -> float:
    """Max |logit difference| between the export and the PyTorch model (float32, no autocast) on ``x``."""
    with torch.no_grad():
        ref = loaded.model.float().cpu().eval()(x).numpy()
    return float(np.abs(exported_logits(path, fmt, x) - ref).max())


def verification_images(loaded: LoadedModel, data_dir: str | None, n: int = 32) -> tuple[torch.Tensor, str]:
    """``n`` real images of the run's dataset (test split, else val), preprocessed as in evaluation."""
    import dataclasses

    from data import prepare_data
    from data.transforms import eval_transform
    from evaluation.explain import split_image

    cfg = loaded.cfg if data_dir is None else dataclasses.replace(loaded.cfg, data_dir=data_dir)
    try:
        bundle = prepare_data(cfg)
    except AppError as e:
        raise AppError(f"cannot load dataset '{cfg.dataset}' to verify the export ({e}); pass --data_dir") from None
    name = "test" if bundle.test is not None else "val"
    split = bundle.split(name)
    count = min(n, len(split))
    images = [split_image(split, i, loaded.channels) for i in range(count)]
    x = torch.cat([eval_transform(im.unsqueeze(0), loaded.preprocessing) for im in images])
    return x, f"{count} {name} images of {cfg.dataset}"
