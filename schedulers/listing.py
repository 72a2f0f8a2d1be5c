"""The catalog as text: ``plot_schedule.py --list`` (terminal) and ``--list --markdown`` (README).

Both are rendered from the registry, so the documentation cannot drift from what the code accepts.
"""
from __future__ import annotations

from schedulers.registry import SCHEDULES, Param, ScheduleSpec, is_horizon_free

GRANULARITY_WORDS = {
    "update": "per update",
    "epoch": "per epoch",
    "metric": "per epoch, on val loss",
    "events": "as its entries",
}
FAMILY_ORDER = {"torch": 0, "transformers": 1}


def _ordered() -> list[ScheduleSpec]:
    return sorted(SCHEDULES.values(), key=lambda s: (FAMILY_ORDER.get(s.family, 2), s.name.lower()))


def _default(param: Param) -> str:
    if param.default is None:
        return "auto"  # derived from the plan or the LR; the help says how
    if isinstance(param.default, list):
        return "[" + ", ".join(d.get("name", "?") if isinstance(d, dict) else str(d) for d in param.default) + "]"
    return f"{param.default:.4g}" if isinstance(param.default, float) else str(param.default)


def _range(param: Param) -> str:
    if param.choices:
        return "|".join(map(str, param.choices))
    if param.low is None and param.high is None:
        return ""
    low = "-inf" if param.low is None else f"{param.low:g}"
    high = "inf" if param.high is None else f"{param.high:g}"
    return f"[{low}, {high}]"


def _resume_word(spec: ScheduleSpec) -> str:
    if is_horizon_free(spec.name, {}):
        return "yes"
    return "if its lengths are given" if callable(spec.horizon_free) else "no"


def catalog_text() -> str:
    """Every schedule with its names, granularity and hyperparameters (type, default, range, unit)."""
    lines = []
    for spec in _ordered():
        names = spec.name + (f" ({', '.join(spec.aliases)})" if spec.aliases else "")
        lines.append(f"{names}  [{GRANULARITY_WORDS[spec.granularity]}; new --epochs on resume: "
                     f"{_resume_word(spec)}]")
        lines.append(f"    {spec.summary}")
        for pname, param in spec.params.items():
            unit = f" ({param.unit})" if param.unit else ""
            rng = f"  {_range(param)}" if _range(param) else ""
            lines.append(f"    --scheduler_{pname:<16} {param.type.__name__:<5} default {_default(param)}{rng}  "
                         f"-- {param.help}{unit}")
    lines.append("Warmup (any schedule): --warmup_epochs W | --warmup_steps N, --warmup_mode "
                 "linear|exponential|cosine|constant, --warmup_start_factor F (default 0.01)")
    return "\n".join(lines)


def catalog_markdown() -> str:
    """The README's catalog table."""
    rows = ["| name (aliases) | what it does | steps | key hyperparameters (default) | new `--epochs` on resume |",
            "|---|---|---|---|---|"]
    for spec in _ordered():
        names = f"`{spec.name}`" + (" (" + ", ".join(f"`{a}`" for a in spec.aliases) + ")" if spec.aliases else "")
        params = ", ".join(f"`{k}`={_default(p)}" + (f" ({p.unit})" if p.unit else "") for k, p in spec.params.items())
        rows.append(f"| {names} | {spec.summary} | {GRANULARITY_WORDS[spec.granularity]} | {params or '—'} | "
                    f"{_resume_word(spec)} |")
    return "\n".join(rows)
