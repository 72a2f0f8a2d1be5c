"""Named LR formulas: small callable objects that LambdaLR / MultiplicativeLR can checkpoint.

torch's LambdaLR saves a callable *object*'s ``__dict__`` in its ``state_dict`` (a plain lambda is
dropped and would be lost on resume). Every attribute here is an int, float or str, so the state
loads with ``torch.load(weights_only=True)``, and a schedule rebuilt from the config followed by
``load_state_dict`` continues exactly. No pickled code, no closures.

Two families:

* :class:`Formula` -- the decay shapes offered to ``LambdaLR`` (as a factor of the base LR) and to
  ``MultiplicativeLR`` (as the ratio of consecutive factors, so both draw the same curve);
* :class:`HFFactor` -- transformers' schedule formulas after their warmup (the wrapper does the
  warmup), written as in ``transformers/optimization.py`` so the values agree to the last bit.
"""

from __future__ import annotations

import math

FORMULAS = ("linear", "power", "exponential", "cosine", "step", "constant")
HF_KINDS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
WSD_DECAYS = ("linear", "cosine", "1-sqrt")


class Formula:
    """Factor of the base LR at update ``t`` (0 = the first update after warmup).

    ``linear``/``power``/``cosine`` go from 1 to ``end_factor`` over ``horizon`` updates and stay
    there; ``exponential`` multiplies by ``gamma`` every ``period`` updates, smoothly;
    ``step`` multiplies by ``gamma`` at every ``period`` updates; ``constant`` is 1.
    With ``ratio=True`` it returns factor(t) / factor(t - 1), what MultiplicativeLR expects.
    """

    def __init__(
        self,
        kind: str,
        horizon: int,
        end_factor: float = 0.0,
        power: float = 1.0,
        gamma: float = 0.1,
        period: int = 1,
        ratio: bool = False,
    ):
        if kind not in FORMULAS:
            raise ValueError(f"unknown formula {kind!r}; valid: {', '.join(FORMULAS)}")
        self.kind = kind
        self.horizon = max(1, int(horizon))
        self.end_factor = float(end_factor)
        self.power = float(power)
        self.gamma = float(gamma)
        self.period = max(1, int(period))
        self.ratio = bool(ratio)

    def factor(self, t: int) -> float:
        x = min(t / self.horizon, 1.0)
        end = self.end_factor
        if self.kind == "linear":
            return 1.0 - (1.0 - end) * x
        if self.kind == "power":
            return end + (1.0 - end) * (1.0 - x) ** self.power
        if self.kind == "cosine":
            return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * x))
        if self.kind == "exponential":
            return self.gamma ** (t / self.period)
        if self.kind == "step":
            return self.gamma ** (t // self.period)
        return 1.0

    def __call__(self, t: int) -> float:
        if not self.ratio:
            return self.factor(t)
        if t <= 0:
            return 1.0
        before = self.factor(t - 1)
        # Once the LR is 0 it stays 0: a product of ratios cannot climb back from nothing.
        return self.factor(t) / before if before > 0 else 0.0


class HFFactor:
    """transformers' LR factor at ``step`` = updates since handover + ``warmup`` (its current_step).

    ``warmup`` and ``total`` are transformers' num_warmup_steps and num_training_steps; the steps
    before ``warmup`` never reach this object (the warmup wrapper owns them).
    """

    def __init__(
        self,
        kind: str,
        warmup: int,
        total: int,
        num_cycles: float = 0.5,
        power: float = 1.0,
        lr_end: float = 0.0,
        lr_init: float = 1.0,
        timescale: int = 0,
        min_lr_rate: float = 0.0,
        decay_steps: int = 0,
        decay_type: str = "cosine",
    ):
        if kind not in HF_KINDS:
            raise ValueError(f"unknown transformers schedule {kind!r}")
        self.kind = kind
        self.warmup = int(warmup)
        self.total = int(total)
        self.num_cycles = float(num_cycles)
        self.power = float(power)
        self.lr_end = float(lr_end)
        self.lr_init = float(lr_init)
        self.timescale = int(timescale)
        self.min_lr_rate = float(min_lr_rate)
        self.decay_steps = int(decay_steps)
        self.decay_type = decay_type

    def __call__(self, t: int) -> float:
        step, w, n = t + self.warmup, self.warmup, self.total
        progress = float(step - w) / float(max(1, n - w))
        kind = self.kind
        if kind == "linear":
            return max(0.0, float(n - step) / float(max(1, n - w)))
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * progress)))
        if kind == "cosine_with_restarts":
            if progress >= 1.0:
                return 0.0
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((self.num_cycles * progress) % 1.0))))
        if kind == "cosine_with_min_lr":
            factor = 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * progress))
            return max(0.0, factor * (1 - self.min_lr_rate) + self.min_lr_rate)
        if kind == "polynomial":
            if step > n:
                return self.lr_end / self.lr_init
            pct_remaining = 1 - (step - w) / (n - w)
            return ((self.lr_init - self.lr_end) * pct_remaining**self.power + self.lr_end) / self.lr_init
        if kind == "inverse_sqrt":
            shift = self.timescale - w
            return 1.0 / math.sqrt((step + shift) / self.timescale)
        if kind == "warmup_stable_decay":
            return self._wsd(step)
        return 1.0  # constant

    def _wsd(self, step: int) -> float:
        """Warmup-stable-decay after warmup: 1 until the decay starts, then down to min_lr_rate."""
        stable = self.total - self.warmup - self.decay_steps
        start = self.warmup + stable
        if step < start:
            return 1.0
        if step < start + self.decay_steps:
            progress = float(step - start) / float(max(1, self.decay_steps))
            if self.decay_type == "linear":
                factor = 1.0 - progress
            elif self.decay_type == "cosine":
                factor = 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * progress))
            else:  # 1-sqrt
                factor = 1.0 - math.sqrt(progress)
            return max(0.0, factor * (1.0 - self.min_lr_rate) + self.min_lr_rate)
        return self.min_lr_rate
