"""The catalog and the presets as text: ``plot_schedule.py --list`` (terminal) and ``--list --markdown``
(docs/schedules.md).

Both are rendered from the registry, so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

from schedulers.presets import PRESETS, REFERENCE_EPOCHS, SPEC_NAMES
from schedulers.registry import SCHEDULES, Param, ScheduleSpec, is_horizon_free, preset_of

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
        lines.append(f"{names}  [{GRANULARITY_WORDS[spec.granularity]}; new --epochs on resume: {_resume_word(spec)}]")
        lines.append(f"    {spec.summary}")
        for pname, param in spec.params.items():
            unit = f" ({param.unit})" if param.unit else ""
            rng = f"  {_range(param)}" if _range(param) else ""
            lines.append(
                f"    --scheduler_{pname:<16} {param.type.__name__:<5} default {_default(param)}{rng}  "
                f"-- {param.help}{unit}"
            )
        for alias, ours in spec.param_aliases.items():
            lines.append(f"    --scheduler_{alias:<16} torch's name for --scheduler_{ours}")
    lines.append(
        "Warmup (any schedule): --warmup_epochs W | --warmup_steps N, --warmup_mode "
        "linear|exponential|cosine|constant, --warmup_start_factor F (default 0.01)"
    )
    return "\n".join(lines) + "\n\n" + presets_text()


def _values(params: dict) -> str:
    """A preset's values as written (for a 100-epoch run)."""

    def one(v):
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return (
                "["
                + ", ".join(
                    c["name"]
                    + "("
                    + ", ".join(
                        f"{k}={x:g}" if isinstance(x, float) else f"{k}={x}" for k, x in c.items() if k != "name"
                    )
                    + ")"
                    for c in v
                )
                + "]"
            )
        if isinstance(v, bool):
            return str(v).lower()
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={one(v)}" for k, v in params.items())


def _preset_names(pid: str) -> str:
    """``A0_007 step_default StepLR_default``; a name that is also a catalog name in parentheses with a *."""
    return " ".join([pid] + [n if preset_of(n) else f"({n}*)" for n in (PRESETS[pid]["name"], SPEC_NAMES[pid])])


def presets_text() -> str:
    """The seed presets, with their entry and values for a 100-epoch run."""
    lines = [
        f"Presets: --scheduler A0_001 ... A0_035 or the name; values as written are for a "
        f"{REFERENCE_EPOCHS}-epoch run. For another --epochs, values in epochs (step sizes, milestones, "
        f"t_max, t_0, total_iters, patience, swa_start, anneal_epochs) scale in proportion (whole epochs "
        f"rounded, >= 1): step_size 30 becomes 3 with --epochs 10; rates and LRs do not. Any "
        f"--scheduler_<param> overrides a preset's value. Each preset has an id, a name and the specification's "
        f"name. (*: that name is also a catalog name, which it keeps: MultiplicativeLR, ExponentialLR and "
        f"ChainedScheduler -- the specification's names of A0_006, A0_012, A0_030 -- select torch's class with "
        f"its defaults, as do multiplicative, exponential, chained; select those presets by their id.)"
    ]
    for pid, p in PRESETS.items():
        note = f"  [{p['note']}]" if p["note"] else ""
        lines.append(f"  {_preset_names(pid):<58} {p['scheduler']}: {_values(p['params'])}{note}")
    return "\n".join(lines)


def presets_markdown() -> str:
    """The preset table of docs/schedules.md."""
    rows = [
        "| id | name | specification's name | variant (seed table) | entry: values for 100 epochs | notes |",
        "|---|---|---|---|---|---|",
    ]
    for pid, p in PRESETS.items():
        name, spec = (
            f"`{n}`" if preset_of(n) else f"(`{n}`: a catalog name; id only)" for n in (p["name"], SPEC_NAMES[pid])
        )
        rows.append(
            f"| `{pid}` | {name} | {spec} | {p['variant']} | `{p['scheduler']}`: {_values(p['params'])} | "
            f"{p['note'] or ''} |"
        )
    return "\n".join(rows)


def catalog_markdown() -> str:
    """The catalog table of docs/schedules.md."""
    rows = [
        "| name (aliases) | what it does | steps | key hyperparameters (default) | new `--epochs` on resume |",
        "|---|---|---|---|---|",
    ]
    for spec in _ordered():
        names = f"`{spec.name}`" + (" (" + ", ".join(f"`{a}`" for a in spec.aliases) + ")" if spec.aliases else "")
        params = ", ".join(f"`{k}`={_default(p)}" + (f" ({p.unit})" if p.unit else "") for k, p in spec.params.items())
        params += "".join(f"; torch's `{a}` = `{o}`" for a, o in spec.param_aliases.items())
        rows.append(
            f"| {names} | {spec.summary} | {GRANULARITY_WORDS[spec.granularity]} | {params or '—'} | "
            f"{_resume_word(spec)} |"
        )
    return "\n".join(rows)
