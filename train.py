"""Train an image classifier with a warmup-wrapped LR schedule, checkpoints, resume and early stopping.

Examples:
    python train.py                                             # Custom CNN on the bundled digits
    python train.py --scheduler plateau --warmup_epochs 1
    python train.py --config configs/efficientnet_b0.yaml --epochs 5
    python train.py --run_name exp1 --resume auto               # continue exp1, or start it
    python train.py --resume checkpoints/exp1/epoch_002.pt --run_name exp1_branch
    python train.py --dataset folder --data_dir my_images --check_data   # dataset report only
    torchrun --standalone --nproc_per_node 4 train.py           # 4 GPUs (DDP); --device cpu: gloo processes
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import run_cli
from settings.config import parse_args
from settings.validate import check_config


def main(argv: Sequence[str] | None = None) -> int:
    cfg, script = parse_args(argv, description=__doc__)
    check_config(cfg)
    if script.get("check_data"):  # the dataset check alone: report, exit status, no run folder
        from data import run_check

        return run_check(cfg)
    from engine.trainer import fit  # heavy imports only once the command line is known to be good
    from runtime.distributed import peer_failures

    with peer_failures():  # under torchrun: another process died -> one line, not a traceback
        from tracking.trial import from_env

        trial = from_env()  # started by sweep.py as a trial of its study: report, and stop if pruned
        fit(cfg, script["cli_keys"], sinks=[trial] if trial is not None else [])
    return 0


if __name__ == "__main__":
    run_cli(main)
