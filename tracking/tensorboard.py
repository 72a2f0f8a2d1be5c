"""The ``--tensorboard`` sink: the run's per-epoch record and per-update LR as TensorBoard events.

Everything is logged against one x-axis, the global step (optimizer updates so far), as Lightning
does: epoch scalars (``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``lr``, ``epoch``)
sit at the step where their epoch ended, ``lr/update`` at every update. One axis is what makes a
resumed run clean: the writer is opened with ``purge_step`` = the first update the resumed run
will redo, and TensorBoard then hides whatever a killed run had written from that step on, so no
step appears twice. At the end: the test confusion matrix as an image and the hparams with the
final metrics (the HPARAMS tab compares runs of one ``--logdir``).

    tensorboard --logdir checkpoints
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tracking.sink import RunInfo, RunResult, Sink

TB_DIR = "tb"
# Config fields that are locations or run plumbing, not hyperparameters worth comparing runs by.
NOT_HPARAMS = {
    "data_dir",
    "checkpoint_dir",
    "resume",
    "run_name",
    "pretrained_weights",
    "device",
    "num_workers",
    "threads",
    "tensorboard",
    "save_every",
    "scheduler_params",
}


class TensorBoardSink(Sink):
    """Writes ``<run>/tb/events.*``; opened at ``start``, from the global step the run (re)starts at."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.writer = None
        self.cfg = None

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = run.step + 1 if run.step > 0 else None  # updates are numbered from 1
        self.cfg = run.cfg
        self.writer = SummaryWriter(log_dir=str(self.run_dir / TB_DIR), purge_step=purge)

    def on_update(self, step: int, lr: float) -> None:
        """After each optimizer update: the LR that update used."""
        self.writer.add_scalar("lr/update", lr, step)

    def on_epoch(self, step: int, row: dict[str, Any]) -> None:
        """The epoch's row of metrics.csv, at the global step where the epoch ended."""
        for tag, key in (
            ("train/loss", "train_loss"),
            ("train/acc", "train_acc"),
            ("val/loss", "val_loss"),
            ("val/acc", "val_acc"),
            ("lr", "lr"),
            ("epoch", "epoch"),
        ):
            self.writer.add_scalar(tag, row[key], step)
        self.writer.flush()  # an epoch is the unit a crash may lose; TensorBoard shows it live

    def finish(self, result: RunResult) -> None:
        """The confusion matrix of the final evaluation and the hparams with the final metrics."""
        import matplotlib
        from sklearn.metrics import ConfusionMatrixDisplay
        from torch.utils.tensorboard.summary import hparams

        matplotlib.use("Agg")
        s, split, n = result.summary, result.split, len(result.class_names)
        metrics = {
            f"{split}_acc": s[f"{split}_acc"],
            f"{split}_loss": s[f"{split}_loss"],
            "best_epoch": s["best_epoch"],
        }
        disp = ConfusionMatrixDisplay.from_predictions(
            result.labels,
            result.preds,
            labels=list(range(n)),
            display_labels=[str(c) for c in result.class_names],
            include_values=n <= 25,
            colorbar=False,
            xticks_rotation="vertical" if n > 6 else "horizontal",
        )
        disp.figure_.set_size_inches(max(4.0, 0.35 * n + 2), max(4.0, 0.35 * n + 2))
        self.writer.add_figure("confusion_matrix", disp.figure_, result.step)  # closes the figure
        hp = {
            k: v
            for k, v in dataclasses.asdict(self.cfg).items()
            if k not in NOT_HPARAMS and isinstance(v, (bool, int, float, str))
        }
        # Written into this run's own event file (SummaryWriter.add_hparams would open a sub-run).
        for summary in hparams(hp, {f"hparam/{k}": v for k, v in metrics.items()}):
            self.writer.file_writer.add_summary(summary)
        for k, v in metrics.items():
            self.writer.add_scalar(f"hparam/{k}", v, result.step)
        self.writer.flush()

    def end(self, status: str) -> None:
        """Closed whatever the status: the epochs' curves stay readable."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
