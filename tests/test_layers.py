"""The import structure README's "Layout" draws: layers only point down, and no file imports itself back.

Every import counts, including those inside functions (a lazy import is still a dependency).
A new package must be given a layer here, which is the moment to decide where it belongs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A package may import its own modules and any package of a lower layer; packages
# of one layer stay independent of each other. Entry scripts, bench/ and tests/ sit above all.
LAYERS = [
    ["common"],  # errors, CLI parser, atomic writes, fault hooks, cores
    ["data", "models", "schedulers", "resultsdb"],  # datasets, architectures + optimizers, schedules, results database
    ["settings", "runtime"],  # Config and its checks; device, threads, AMP, DDP, signals
    ["artifacts", "tracking"],  # checkpoint file and model loading; the run's sinks
    ["engine"],  # training loop, trainer, run folders, EMA, LR finder
    ["evaluation"],  # metrics, reports, prediction, explanation, export
    ["webapp", "lab"],  # the Streamlit page app.py serves; the sweep's Optuna study
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def packages() -> list[str]:
    return sorted(
        p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "bench", "configs", "docs")
    )


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the layered packages."""
    out = {}
    for pkg in packages():
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``path`` imports: ``from a import b`` is ``a.b`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            ]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in RANK or n in known)
    return found


def test_every_package_has_a_layer():
    missing = [p for p in packages() if p not in RANK]
    assert not missing, f"give these packages a layer in tests/test_layers.py: {missing}"


def test_imports_only_point_down():
    known = modules()
    wrong = []
    for name, path in known.items():
        pkg = name.split(".")[0]
        for target in imports_of(path, known):
            other = target.split(".")[0]
            if other != pkg and RANK.get(other, -1) >= RANK[pkg]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target} (layer {RANK.get(other)} >= {RANK[pkg]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_files():
    known = modules()
    graph = {name: {t for t in imports_of(path, known) if t in known and t != name} for name, path in known.items()}
    cycles = []
    for a, targets in graph.items():
        for b in targets:
            # b reaches a again: a cycle through a and b (a package's __init__ importing its own
            # modules is the usual re-export, not a cycle, unless a module imports the package back).
            seen, todo = set(), [b]
            while todo:
                n = todo.pop()
                if n == a:
                    cycles.append(f"{a} -> {b} -> ... -> {a}")
                    break
                if n not in seen:
                    seen.add(n)
                    todo.extend(graph.get(n, ()))
    assert not cycles, "\n".join(sorted(cycles))


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The checks above would fail on a real upward import (guards against a checker that sees nothing)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from engine.trainer import fit\n")
    assert "engine.trainer" in imports_of(bad, modules())


def test_entry_scripts_and_bench_import_public_names_only():
    """Scripts use what a package offers, not its internals: no ``_name``, and of the trainer only ``fit``."""
    scripts = sorted(ROOT.glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    wrong = []
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.level == 0
                and node.module.split(".")[0] in RANK
            ):
                continue
            for alias in node.names:
                if alias.name.startswith("_") or (node.module == "engine.trainer" and alias.name != "fit"):
                    wrong.append(f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}")
    assert scripts and not wrong, "\n".join(wrong)
