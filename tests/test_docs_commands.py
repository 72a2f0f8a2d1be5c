"""Every command shown in README.md, docs/*.md and bench/RESULTS.md is real, and every link resolves.

A command is a line of a ``bash`` block, a ``$ `` line of a ``console``/``text`` block, a line of a
plain block that starts with ``python``/``torchrun``/``make``, or an inline
code span that starts with ``python``/``make``/``torchrun`` (or ``X.py --flag``). For ``python S.py``
(also under ``torchrun``) the script must exist and every ``--flag`` must be one that S's own argument
parser knows; ``--scheduler_<param>`` must be a hyperparameter of the command's schedule; ``make T``
must be a Makefile target. The parsers are the scripts' real ones, caught in-process when ``main``
first parses (no subprocess, nothing runs).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import re
import shlex
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
RESULTS = ROOT / "bench" / "RESULTS.md"
PAGES = [README, *DOC_PAGES, RESULTS]

# Scripts that hand flags on to train.py's parser: lr_find.py every flag it does not know itself,
# sweep.py every flag after `--`.
TRAIN_FLAGS_AFTER = {"lr_find.py": "unknown", "sweep.py": "--"}
PYTHONS = {"python", "python3", ".venv/bin/python"}
SHELL_LANGS = {"bash", "sh", "shell"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"--[A-Za-z][\w-]*")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join backslash-continued lines; each result keeps the number of its first line."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in lines:
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line.strip()
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        out.append((number, line))
    if pending is not None:
        out.append(pending)
    return out


def page_commands(path: Path) -> list[tuple[str, str]]:
    """(``page:line``, command) for every command the page shows."""
    text = path.read_text()
    found: list[tuple[str, str]] = []
    for block in FENCE.finditer(text):
        lang, body = block.group(1).lower(), block.group(2)
        first = text.count("\n", 0, block.start(2)) + 1
        lines = [(first + i, line) for i, line in enumerate(body.splitlines())]
        if lang in SHELL_LANGS:
            lines = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
        else:  # console/text/plain: only what follows a prompt (and its continuation lines) is a command
            prompted, keep = [], False
            for n, line in lines:
                if line.startswith("$ "):
                    prompted.append((n, line[2:]))
                    keep = line.rstrip().endswith("\\")
                elif keep:
                    prompted.append((n, line))
                    keep = line.rstrip().endswith("\\")
                elif not lang and re.match(r"(python3? |torchrun |make )\S", line):  # a plain block's command
                    prompted.append((n, line))
                    keep = line.rstrip().endswith("\\")
                elif line.startswith("error:") and prompted:  # shown to be refused: not a command to copy
                    prompted.pop()
            lines = prompted
        found += [(f"{_rel(path)}:{n}", cmd) for n, cmd in _logical_lines(lines)]
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in INLINE.finditer(prose):
        cmd = span.group(1).strip()
        if re.match(r"(python3? |make |torchrun |[\w/]+\.py --)", cmd):
            found.append((f"{_rel(path)}:{prose.count(chr(10), 0, span.start()) + 1}", cmd))
    return found


ALL_COMMANDS = [c for page in PAGES for c in page_commands(page)]


class _Parsed(Exception):
    """Raised in place of parsing: carries the parser that ``main`` built."""


def _catch(self, args=None, namespace=None):
    raise _Parsed(self)


@functools.cache
def parser_of(script: str) -> argparse.ArgumentParser:
    """The argument parser ``script``'s ``main`` parses with, caught before it parses anything."""
    module = importlib.import_module(script[: -len(".py")].replace("/", "."))
    takes_argv = bool(inspect.signature(module.main).parameters)
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", _catch),
        mock.patch.object(sys, "argv", [script]),
    ):
        try:
            module.main([]) if takes_argv else module.main()
        except _Parsed as caught:
            return caught.args[0]
    raise AssertionError(f"{script}: main() returned without parsing its arguments")


def known_flags(parser: argparse.ArgumentParser, args: list[str]) -> set[str]:
    """The parser's options, and those of the sub-command ``args`` name (results.py best ...)."""
    flags = {s for a in parser._actions for s in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = next((a for a in args if a in action.choices), None)
            if chosen is not None:
                flags |= known_flags(action.choices[chosen], [])
    return flags


def flags_in(args: list[str]) -> list[str]:
    """The ``--flag`` names of ``args``: usage brackets, ``=value`` and ``<placeholders>`` taken off."""
    out = []
    for token in args:
        token = token.strip("[]").split("=")[0]
        if FLAG.fullmatch(token):
            out.append(token)
    return out


def schedule_of(args: list[str]) -> str:
    """The schedule a train.py/plot_schedule.py command uses: --scheduler, else its --config's, else the default."""
    if "--scheduler" in args:
        return args[args.index("--scheduler") + 1]
    config = args[args.index("--config") + 1] if "--config" in args else "configs/default.yaml"
    chosen = yaml.safe_load((ROOT / config).read_text()).get("scheduler") or "cosine"
    return chosen["name"] if isinstance(chosen, dict) else chosen


def unknown_flags(script: str, args: list[str]) -> list[str]:
    own = parser_of(script)
    train = parser_of("train.py")
    wrong = []
    if TRAIN_FLAGS_AFTER.get(script) == "--" and "--" in args:
        groups = [(own, args[: args.index("--")]), (train, args[args.index("--") + 1 :])]
    elif TRAIN_FLAGS_AFTER.get(script) == "unknown":
        groups = [
            (own, [a for a in args if a.strip("[]").split("=")[0] in known_flags(own, [])]),
            (train, [a for a in args if a.strip("[]").split("=")[0] not in known_flags(own, [])]),
        ]
    else:
        groups = [(own, args)]
    for parser, part in groups:
        known = known_flags(parser, part)
        for flag in flags_in(part):
            if flag in known:
                continue
            if flag.startswith("--scheduler_") and "--scheduler" in known:  # its schedule's hyperparameters
                from common.errors import UsageError
                from schedulers.registry import get_spec

                try:
                    spec = get_spec(schedule_of(part))
                except UsageError as e:  # a placeholder or a typo where the schedule's name goes
                    wrong.append(f"{flag} ({e})")
                    continue
                if flag[len("--scheduler_") :] in {*spec.params, *spec.param_aliases}:
                    continue
            wrong.append(flag)
    return wrong


@functools.cache
def make_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))


def check_command(command: str) -> list[str]:
    """What is wrong with one shown command (an empty list: nothing)."""
    problems = []
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:  # a quote that closes on a later output line (sqlite3 "SELECT ... \n ..."): words will do
        tokens = command.split()
    segments: list[list[str]] = [[]]
    for token in tokens:  # `a | b`, `a && b`, `a; b`: each part on its own
        if token in {"|", "||", "&&", ";"}:
            segments.append([])
        else:
            segments[-1].append(token)
    for words in segments:
        while words and re.match(r"^\w+=", words[0]):  # ENV=value prefixes
            words = words[1:]
        if not words:
            continue
        program, rest = words[0], words[1:]
        if program == "make":
            problems += [f"no Makefile target '{t}'" for t in rest if not t.startswith("-") and t not in make_targets()]
            continue
        if program == "bash" and rest:
            if not (ROOT / rest[0]).is_file():
                problems.append(f"no script {rest[0]}")
            continue
        if program == "torchrun":
            from torch.distributed.run import get_args_parser

            at = next((i for i, w in enumerate(rest) if w.endswith(".py")), len(rest))
            launcher = {s for a in get_args_parser()._actions for s in a.option_strings}
            problems += [f"torchrun has no {f}" for f in flags_in(rest[:at]) if f not in launcher]
            rest = rest[at:]
        elif program in PYTHONS:
            if not rest or rest[0] in {"-m", "-c"}:
                continue
        elif re.fullmatch(r"[\w/]+\.py", program):
            rest = words
        else:
            continue  # pip, tensorboard, sqlite3, awk ...: not ours to check
        if not rest:
            continue
        script, args = rest[0], rest[1:]
        if not (ROOT / script).is_file():
            problems.append(f"no script {script}")
            continue
        problems += [f"{script} has no {f}" for f in unknown_flags(script, args)]
    return problems


@pytest.mark.parametrize("where,command", ALL_COMMANDS, ids=[w for w, _ in ALL_COMMANDS])
def test_every_shown_command_exists_with_its_flags(where, command):
    assert check_command(command) == [], f"{where}: {command}"


def test_the_checker_finds_commands_and_catches_mistakes():
    """The pages show the main scripts' commands, and a wrong flag, schedule parameter or script is caught."""
    shown = " ".join(c for _, c in ALL_COMMANDS)
    for script in ("train.py", "evaluate.py", "predict.py", "sweep.py", "results.py", "plot_schedule.py"):
        assert f"python {script}" in shown
    assert check_command("python train.py --epochs 3 --scheduler plateau --scheduler_patience 2") == []
    assert check_command("python train.py --epochs_nope 3") == ["train.py has no --epochs_nope"]
    assert check_command("python train.py --scheduler cosine --scheduler_patience 2") == [
        "train.py has no --scheduler_patience"
    ]
    assert check_command("python plot_schedule.py --scheduler cosine --scheduler_T_max 5") == []
    assert check_command("python train.py --scheduler NAME --scheduler_gamma 0.5")[0].startswith(
        "train.py has no --scheduler_gamma (unknown scheduler 'NAME'"
    )
    assert check_command("python sweep.py --schedulers step -- --epochs 2 --nope") == ["sweep.py has no --nope"]
    assert check_command("python lr_find.py --num_iter 50 --epochs 2 --nope") == ["lr_find.py has no --nope"]
    assert check_command("python results.py best --top 3") == []
    assert check_command("python results.py runs --top 3") == ["results.py has no --top"]
    assert check_command("python bench/amp_speed.py --threads 2 --nope") == ["bench/amp_speed.py has no --nope"]
    assert check_command("torchrun --standalone --nproc_per_node 2 train.py --device cpu") == []
    assert check_command("torchrun --nodes 2 train.py") == ["torchrun has no --nodes"]
    assert check_command("python nope.py --x") == ["no script nope.py"]
    assert check_command("make demo test-quick") == []
    assert check_command("make deploy") == ["no Makefile target 'deploy'"]


# --- links ---------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(h) for h in re.findall(r"^#+\s+(.+)$", text, re.M)}


def test_anchors_are_githubs():
    assert (
        slug("Choices made by measurement: AMP, memory format, threads")
        == "choices-made-by-measurement-amp-memory-format-threads"
    )
    assert slug("Export: ONNX and TorchScript") == "export-onnx-and-torchscript"
    assert slug("The `runs` table") == "the-runs-table"
    assert "the-lr-range-test" in anchors(ROOT / "docs" / "lab.md")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_and_pictures_resolve(page):
    text = INLINE.sub("", FENCE.sub("", page.read_text()))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert broken == [], f"{_rel(page)}: links that lead nowhere"


def test_readme_is_a_front_door():
    """README stays short, links every docs page, and no page narrates when something was measured."""
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    assert [p.name for p in DOC_PAGES if f"docs/{p.name}" not in text] == []
    dated = re.compile(r"\b(\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\w*|20\d\d-\d\d-\d\d)\b")
    assert [(_rel(p), m.group(0)) for p in [README, *DOC_PAGES] for m in dated.finditer(p.read_text())] == [], (
        "dated measurements go to bench/RESULTS.md"
    )
