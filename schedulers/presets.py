"""The 35 seed presets: named configurations of catalog entries, as the seed project's table gave them.

``PRESETS`` is a plain dict keyed by id (``A0_001`` ... ``A0_035``); each value holds the preset's
descriptive ``name`` (``SPEC_NAMES`` holds the specification's name of each id), the catalog entry it
configures (``scheduler``), its ``params`` written for a
**100-epoch run** (``REFERENCE_EPOCHS``), and the table's ``variant`` text. ``--scheduler A0_007``
and ``--scheduler step_default`` are the same preset.

How a preset becomes a schedule (registry.resolve_params does it):

* every value whose hyperparameter is declared in epochs (``unit="epochs"``: step sizes, milestones,
  ``t_max``, ``t_0``, ``total_iters``, ``patience``, ``swa_start``, ...) is scaled by
  ``epochs / 100`` -- a StepLR step of 30 becomes 3 in a 10-epoch run; whole numbers are rounded
  half up and kept >= 1, milestones that collide after rounding are merged;
* rates (``gamma`` per epoch, factors, absolute LRs such as ``eta_min`` or ``max_lr``) are not scaled;
* any ``--scheduler_<param>`` the user gives replaces the preset's value, unscaled.

Where the seed's table leaves a value open, the entry's default is used and ``note`` says so.
This module is data only (no imports of ours), so tools such as ``sweep.py --all_presets`` can read it.
"""

from __future__ import annotations

from typing import Any

REFERENCE_EPOCHS = 100  # the run length the presets' values are written for


def _p(name: str, scheduler: str, variant: str, note: str = "", **params: Any) -> dict[str, Any]:
    return {"name": name, "scheduler": scheduler, "params": params, "variant": variant, "note": note}


_CYCLIC_NOTE = "step_size_up: the entry's default (2 epochs, not scaled); momentum cycled as torch's default"
_ONECYCLE_NOTE = "momentum cycled (base 0.85, max 0.95) as torch's default"

PRESETS: dict[str, dict[str, Any]] = {
    "A0_001": _p("lambda_linear", "LambdaLR", "lr·(1−e/E)", formula="linear", end_factor=0.0),
    "A0_002": _p("lambda_power", "LambdaLR", "lr·(1−e/E)²", formula="power", power=2.0, end_factor=0.0),
    "A0_003": _p(
        "lambda_exponential", "LambdaLR", "lr·0.95^e", "0.95 per epoch, not scaled", formula="exponential", gamma=0.95
    ),
    "A0_004": _p("lambda_cosine", "LambdaLR", "lr·(1+cos(πe/E))/2", formula="cosine", end_factor=0.0),
    "A0_005": _p(
        "lambda_step", "LambdaLR", "1.0 first half, 0.5 second half", formula="step", gamma=0.5, step_size=50.0
    ),
    "A0_006": _p(
        "multiplicative",
        "MultiplicativeLR",
        "×0.95 per epoch",
        "0.95 per epoch, not scaled",
        formula="exponential",
        gamma=0.95,
    ),
    "A0_007": _p("step_default", "StepLR", "step 30, γ 0.1", step_size=30, gamma=0.1),
    "A0_008": _p("step_50", "StepLR", "step 50, γ 0.5", step_size=50, gamma=0.5),
    "A0_009": _p("step_10", "StepLR", "step 10, γ 0.1", step_size=10, gamma=0.1),
    "A0_010": _p("multistep_3", "MultiStepLR", "[30, 60, 90], γ 0.1", milestones=[30, 60, 90], gamma=0.1),
    "A0_011": _p("multistep_4", "MultiStepLR", "[20, 40, 60, 80], γ 0.1", milestones=[20, 40, 60, 80], gamma=0.1),
    "A0_012": _p("exponential", "ExponentialLR", "γ 0.99", "per epoch, not scaled", gamma=0.99),
    # torch's LinearLR rises to end_factor 1.0 by default: a warmup (the project's LinearLR decays).
    "A0_013": _p(
        "linear_warmup", "LinearLR", "start 0.1, 10 iters", start_factor=0.1, end_factor=1.0, total_iters=10.0
    ),
    "A0_014": _p("constant_warmup", "ConstantLR", "factor 0.333, 5 iters", factor=0.333, total_iters=5),
    "A0_015": _p("poly_linear", "PolynomialLR", "power 1, 100 iters", power=1.0, total_iters=100.0),
    "A0_016": _p("poly_quadratic", "PolynomialLR", "power 2, 100 iters", power=2.0, total_iters=100.0),
    "A0_017": _p("poly_quartic", "PolynomialLR", "power 4, 100 iters", power=4.0, total_iters=100.0),
    "A0_018": _p("cosine_default", "CosineAnnealingLR", "T_max 100", t_max=100.0),
    "A0_019": _p("cosine_min", "CosineAnnealingLR", "T_max 100, eta_min 0.001", t_max=100.0, eta_min=0.001),
    "A0_020": _p("cosine_highmin", "CosineAnnealingLR", "T_max 100, eta_min 0.01", t_max=100.0, eta_min=0.01),
    "A0_021": _p("warm_restarts_small", "CosineAnnealingWarmRestarts", "T_0 5, T_mult 1", t_0=5.0, t_mult=1),
    "A0_022": _p("warm_restarts_large", "CosineAnnealingWarmRestarts", "T_0 10, T_mult 2", t_0=10.0, t_mult=2),
    "A0_023": _p(
        "cyclic_triangular",
        "CyclicLR",
        "base 0.001, max 0.1",
        _CYCLIC_NOTE,
        base_lr=0.001,
        max_lr=0.1,
        mode="triangular",
        cycle_momentum=True,
    ),
    "A0_024": _p(
        "cyclic_triangular2",
        "CyclicLR",
        "base 0.001, max 0.1",
        _CYCLIC_NOTE,
        base_lr=0.001,
        max_lr=0.1,
        mode="triangular2",
        cycle_momentum=True,
    ),
    "A0_025": _p(
        "cyclic_exp_range",
        "CyclicLR",
        "base 0.001, max 0.1",
        _CYCLIC_NOTE + "; gamma 1.0 is torch's default (give --scheduler_gamma to decay)",
        base_lr=0.001,
        max_lr=0.1,
        mode="exp_range",
        cycle_momentum=True,
    ),
    "A0_026": _p(
        "cyclic_small",
        "CyclicLR",
        "base 0.001, max 0.01",
        _CYCLIC_NOTE,
        base_lr=0.001,
        max_lr=0.01,
        mode="triangular",
        cycle_momentum=True,
    ),
    # The specification gives A0_027 steps_per_epoch 100. A fixed 100 fits only a run with exactly 100
    # updates per epoch: with fewer the cycle never finishes (the LR never anneals), with more torch
    # raises past total_steps. The run's real count is used instead, so the cycle spans the run.
    "A0_027": _p(
        "onecycle_default",
        "OneCycleLR",
        "max_lr 0.1",
        _ONECYCLE_NOTE + "; steps_per_epoch: the run's own (the specification's fixed 100 would leave the "
        "cycle unfinished or overrun it; --scheduler_steps_per_epoch 100 restores it)",
        max_lr=0.1,
        cycle_momentum=True,
    ),
    "A0_028": _p(
        "onecycle_aggressive",
        "OneCycleLR",
        "max_lr 0.2, pct_start 0.1",
        _ONECYCLE_NOTE,
        max_lr=0.2,
        pct_start=0.1,
        cycle_momentum=True,
    ),
    "A0_029": _p(
        "onecycle_linear",
        "OneCycleLR",
        "anneal linear",
        "max_lr 0.1 as A0_027; " + _ONECYCLE_NOTE,
        max_lr=0.1,
        anneal_strategy="linear",
        cycle_momentum=True,
    ),
    "A0_030": _p(
        "chained",
        "ChainedScheduler",
        "StepLR(30, 0.1) with CosineAnnealingLR(100)",
        schedulers=[{"name": "StepLR", "step_size": 30, "gamma": 0.1}, {"name": "CosineAnnealingLR", "t_max": 100.0}],
    ),
    "A0_031": _p(
        "sequential_warmup",
        "SequentialLR",
        "LinearLR(0.1, 10) → PolynomialLR(2.0, 90)",
        schedulers=[
            {"name": "LinearLR", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 10.0},
            {"name": "PolynomialLR", "power": 2.0, "total_iters": 90.0},
        ],
        milestones=[10],
    ),
    "A0_032": _p("plateau_default", "ReduceLROnPlateau", "patience 5, factor 0.1", patience=5, factor=0.1),
    "A0_033": _p("plateau_patient", "ReduceLROnPlateau", "patience 10, factor 0.5", patience=10, factor=0.5),
    # The seed's SWA pair differ in SWALR's anneal shape; averaging starts at 3/4 of the run and the
    # anneal takes torch's default 10 epochs (both scaled); swa_lr is the entry's default (half the LR).
    "A0_034": _p(
        "swalr_cosine",
        "SWALR",
        "SWA on a cosine base",
        "anneal_strategy cos; swa_start 75, anneal 10 epochs",
        anneal_strategy="cos",
        swa_start=75,
        anneal_epochs=10,
    ),
    "A0_035": _p(
        "swalr_linear",
        "SWALR",
        "SWA on a linear base",
        "anneal_strategy linear; swa_start 75, anneal 10 epochs",
        anneal_strategy="linear",
        swa_start=75,
        anneal_epochs=10,
    ),
}

# The specification's names, in id order. Three of them are torch's class names (A0_006
# MultiplicativeLR, A0_012 ExponentialLR, A0_030 ChainedScheduler): those keep meaning the class (the
# catalog entry with its defaults), so those three presets are reached by id or descriptive name.
SPEC_NAMES: dict[str, str] = dict(
    zip(
        PRESETS,
        (
            "LambdaLR_linear",
            "LambdaLR_power",
            "LambdaLR_exponential",
            "LambdaLR_cosine",
            "LambdaLR_step",
            "MultiplicativeLR",
            "StepLR_default",
            "StepLR_step50",
            "StepLR_step10",
            "MultiStepLR_3step",
            "MultiStepLR_4step",
            "ExponentialLR",
            "LinearLR_warmup",
            "ConstantLR_warmup",
            "PolynomialLR_linear",
            "PolynomialLR_quadratic",
            "PolynomialLR_quartic",
            "CosineAnnealingLR_default",
            "CosineAnnealingLR_min",
            "CosineAnnealingLR_highmin",
            "CosineAnnealingWarmRestarts_small",
            "CosineAnnealingWarmRestarts_large",
            "CyclicLR_triangular",
            "CyclicLR_triangular2",
            "CyclicLR_exp_range",
            "CyclicLR_small",
            "OneCycleLR_default",
            "OneCycleLR_aggressive",
            "OneCycleLR_linear",
            "ChainedScheduler",
            "SequentialLR_warmup",
            "ReduceLROnPlateau_default",
            "ReduceLROnPlateau_patient",
            "SWALR_cosine",
            "SWALR_linear",
        ),
    )
)  # id -> name

# Descriptive and specification names -> id. Where a name is also a catalog name or alias
# (exponential, multiplicative, chained; ExponentialLR, MultiplicativeLR, ChainedScheduler) the catalog
# entry wins (saved runs must resolve as they did): registry.py applies that rule.
PRESET_IDS: dict[str, str] = {
    **{p["name"]: pid for pid, p in PRESETS.items()},
    **{name: pid for pid, name in SPEC_NAMES.items()},
}
