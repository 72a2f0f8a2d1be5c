"""How words are written: the one "did you mean" of the project (config keys, command-line flags,
registry names), and the one plural of counted words ("1 thread", "2 threads").

A mistyped name is matched in three ways, in order: the same name up to case, dashes and
underscores (``--weight-decay`` -> ``--weight_decay``); a word people bring from other tools
(``--learning_rate`` -> ``--lr``, ``--bs`` -> ``--batch_size``); the closest spelling (difflib).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Words other tools use for the same setting -> this project's name. Only used when the target is
# among the valid names, so the table can serve every script's flags.
COMMON_SPELLINGS = {
    "lr": ("learning_rate", "lerning_rate", "learningrate", "learnrate", "rate", "base_lr", "max_lr", "eta"),
    "batch_size": ("bs", "batch", "batchsize", "mini_batch", "minibatch", "train_batch_size"),
    "epochs": ("epoch", "n_epochs", "num_epochs", "max_epochs", "nepochs", "num_train_epochs"),
    "weight_decay": ("wd", "weightdecay", "l2", "decay"),
    "scheduler": ("lr_scheduler", "schedule", "sched", "lr_schedule", "scheduler_name", "scheduler_type"),
    "optimizer": ("optim", "opt", "optimiser", "solver"),
    "num_workers": ("workers", "n_workers", "dataloader_workers", "j"),
    "threads": ("num_threads", "n_threads", "nthreads", "cpu_threads", "torch_threads"),
    "early_stopping": ("patience", "early_stop", "earlystopping", "es_patience"),
    "grad_clip": ("clip_grad", "clip_grad_norm", "max_grad_norm", "gradient_clipping", "clip"),
    "label_smoothing": ("smoothing", "smooth"),
    "warmup_epochs": ("warmup", "warm_up", "warmup_epoch", "warm_up_epochs"),
    "accum_steps": ("gradient_accumulation_steps", "grad_accum", "accumulate", "accumulation_steps"),
    "checkpoint_dir": ("output_dir", "out_dir", "save_dir", "ckpt_dir", "checkpoints", "outdir"),
    "run_name": ("name", "experiment", "exp_name"),
    "model": ("arch", "architecture", "network", "net", "backbone"),
    "dataset": ("data", "data_set"),
    "amp": ("mixed_precision", "fp16", "bf16", "autocast"),
    "device": ("gpu", "cuda"),
    "checkpoint": ("ckpt", "weights", "model_path"),
}
_ALIASES = {alias: target for target, aliases in COMMON_SPELLINGS.items() for alias in aliases}


def _key(name: str) -> str:
    """What two spellings of one name share: no leading dashes, underscores for dashes, lower case."""
    return name.lstrip("-").replace("-", "_").lower()


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name ``name`` was most likely meant to be, or None."""
    by_key = {_key(v): v for v in valid}
    key = _key(name)
    if key in by_key:
        return by_key[key]
    if _ALIASES.get(key) in by_key:
        return by_key[_ALIASES[key]]
    match = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.6)
    return by_key[match[0]] if match else None


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` to append to an error message, or '' when nothing is close."""
    match = closest(name, valid)
    return f" (did you mean '{match}'?)" if match else ""


def plural(n: int, word: str, many: str | None = None, *, count: bool = True) -> str:
    """``n`` and ``word`` agreeing in number: ``plural(1, "thread")`` -> '1 thread', ``plural(3, "thread")``
    -> '3 threads', ``plural(2, "batch")`` -> '2 batches'; ``many`` for irregular plurals; ``count=False``
    gives the word alone ('empty class folders: a, b')."""
    es = word.endswith(("s", "x", "z", "sh", "tch"))  # batch -> batches, class -> classes; epoch -> epochs
    form = word if n == 1 else (many or word + ("es" if es else "s"))
    return f"{n} {form}" if count else form
