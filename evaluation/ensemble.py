"""Ensembles: several checkpoints of the same classes, each with its own preprocessing, probabilities averaged.

Each member reads the images its own way (its channels, input size and normalisation, e.g. a
Custom CNN at 8x8 beside an EfficientNet-B0 at 32x32), so averaging happens on probabilities, the
one thing the members share. ``score_split`` is also evaluate.py's single-model path: one member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from artifacts.model_io import LoadedModel, load_model_from_checkpoint
from common.errors import AppError
from common.progress import phase
from data import prepare_data
from data.loader import Feed, make_loader
from engine.loop import predict_logits
from evaluation.inference import Prediction, predict_files

# Settings that decide which images land in which split: members must agree on them.
SPLIT_KEYS = ("dataset", "seed", "val_split", "test_split")


def preview(names: Sequence, limit: int = 6) -> str:
    names = [str(n) for n in names]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return "[" + ", ".join(names[:limit]) + more + "]"


def load_members(paths: Sequence[str], device: torch.device, amp: str = "auto") -> list[LoadedModel]:
    """Load every checkpoint (``amp``: see ``load_model_from_checkpoint``); they must predict the same
    classes in the same order."""
    members = [load_model_from_checkpoint(p, device, amp) for p in paths]
    first = members[0]
    for m in members[1:]:
        if m.class_names != first.class_names:
            raise AppError(
                f"ensemble members must share their classes: {first.path} has "
                f"{preview(first.class_names)} but {m.path} has {preview(m.class_names)}"
            )
    return members


def ensemble_predictions(
    members: Sequence[LoadedModel], paths: Sequence[Path], batch_size: int
) -> Iterator[Prediction]:
    """``predict_files`` for each member, merged per file: mean probabilities, summed latency."""
    for start in range(0, len(paths), max(1, batch_size)):
        chunk = paths[start : start + batch_size]
        per_member = [list(predict_files(m, chunk, batch_size)) for m in members]
        for preds in zip(*per_member):
            error = next((p.error for p in preds if p.error), "")
            if error:
                yield Prediction(preds[0].path, error=error)
                continue
            probs = torch.stack([p.probs for p in preds]).mean(0)
            yield Prediction(preds[0].path, probs, latency_ms=sum(p.latency_ms for p in preds))


@dataclass
class Scored:
    """One member's probabilities on a split, with what identifies the samples."""

    probs: torch.Tensor  # (N, classes), float32 on the CPU
    labels: torch.Tensor
    ids: list[str]
    split: object  # data.types.Split
    split_name: str
    complete: bool  # False when a streamed split skipped unreadable files


def score_split(loaded: LoadedModel, data_dir: str | None, split_name: str | None, batch_size: int) -> Scored:
    """The checkpoint's own dataset, split and resize as in training, through its eval preprocessing."""
    cfg = loaded.cfg if data_dir is None else dataclasses.replace(loaded.cfg, data_dir=data_dir)
    bundle = prepare_data(cfg, loaded.class_names)  # the checkpoint's class order, and so its split
    if [str(c) for c in bundle.class_names] != loaded.class_names:
        raise AppError(
            f"dataset '{cfg.dataset}' in {cfg.data_dir} has classes {preview(bundle.class_names)} but "
            f"the checkpoint was trained on {preview(loaded.class_names)}; pass the --data_dir it "
            f"was trained on"
        )
    name = split_name or ("test" if bundle.test is not None else "val")
    split = bundle.split(name)
    # The training code's own loader: in-memory or streamed from disk, whichever the split is.
    loader = make_loader(
        split,
        max(1, batch_size),
        Feed(loaded.preprocessing, loaded.device, num_workers=cfg.num_workers, strict=cfg.strict_data),
    )
    with phase(f"scoring {loaded.path.name} on {len(split):,} {name} images"):
        logits, labels = predict_logits(loaded.model, loader, loaded.amp, tta=cfg.tta)
    ids = [split.sample_id(i) for i in range(len(split))]
    complete = len(labels) == len(split)
    if not complete:  # positions no longer match the split's files
        ids = [f"read sample {i}" for i in range(len(labels))]
    return Scored(logits.softmax(1), labels, ids, split, name, complete)


def check_same_samples(members: Sequence[LoadedModel], scored: Sequence[Scored]) -> None:
    """Averaging is only meaningful over the same images in the same order."""
    first, ref = members[0], scored[0]
    for m, s in zip(members[1:], scored[1:]):
        differ = [k for k in SPLIT_KEYS if getattr(m.cfg, k) != getattr(first.cfg, k)]
        if differ or s.ids != ref.ids or not torch.equal(s.labels, ref.labels):
            why = f" ({', '.join(differ)} differ)" if differ else ""
            raise AppError(
                f"{m.path} was evaluated on other samples than {first.path}{why}; ensemble members "
                f"must be trained on the same dataset with the same seed and split fractions"
            )
