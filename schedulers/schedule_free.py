"""``schedule_free``: the schedule of the schedule-free optimizers -- the base LR, constant after warmup.

Schedule-free AdamW/SGD (Defazio et al. 2024) need no decay: they average their iterates instead.
As a schedule name it lets a sweep rank the method beside the schedules with the same flags
(``sweep.py --schedulers cosine schedule_free``); models/optim.py makes it imply the schedule-free form
of ``--optimizer`` (adamw -> adamw_schedulefree, sgd -> sgd_schedulefree). The warmup is this project's
warmup wrapper (``--warmup_epochs`` / ``--warmup_steps``), not the optimizer's own ``warmup_steps``, so
that it is drawn, logged and resumed like every other schedule's.
"""

from __future__ import annotations

from torch.optim import lr_scheduler as tls

from schedulers.formulas import Formula
from schedulers.registry import ScheduleSpec, register

register(
    ScheduleSpec(
        name="schedule_free",
        aliases=(),
        granularity="update",
        horizon_free=True,
        summary="constant LR after warmup: --optimizer adamw or sgd run schedule-free (their *_schedulefree forms)",
        family="schedulefree",
        build=lambda opt, p, plan: tls.LambdaLR(opt, Formula("constant", 1)),
    )
)
