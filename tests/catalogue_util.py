"""What every catalogue case asserts about a refused command, shared by the catalogue test files.

A refused command: exit status 1 or 2, stderr's last line starts with ``error:``, no traceback
anywhere in its output, and the files of earlier runs are byte-identical (compare two
:func:`snapshot` s). Use::

    done = cli("predict.py", "--checkpoint", bad, "img.png")
    assert_refused(done, says=("corrupt", "use another"))
    assert snapshot(run) == before
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path) -> sha256 of its bytes."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(done: subprocess.CompletedProcess, codes: Iterable[int] = (1, 2), says: Iterable[str] = ()) -> str:
    """Assert ``done`` was refused with one ``error:`` line; returns that line."""
    out = (done.stdout or "") + (done.stderr or "")
    lines = (done.stderr or "").strip().splitlines()
    assert "Traceback" not in out, out
    assert done.returncode in tuple(codes), f"exit {done.returncode}\n{out}"
    assert lines and lines[-1].startswith("error: "), out
    for fragment in says:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a trained run for a case that could touch it (returns ``dst``)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
