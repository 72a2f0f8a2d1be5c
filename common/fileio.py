"""Atomic file writes: a crash or a full disk mid-write never leaves a broken file under the final name.

Writes go to a temp file in the same folder, are fsynced and renamed over the target. Temp files
are hidden and never end in the target's suffix, so ``*.pt`` globs see only whole files.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from common import faults
from common.errors import AppError

TMP_PREFIX = "."


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_failed(path: Path, e: OSError) -> AppError:
    return AppError(
        f"could not write {path}: {e.strerror or e}. The previous file is intact; "
        f"free disk space or choose another --checkpoint_dir, then --resume auto"
    )


def write_atomic(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename; the old file survives a failure."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.tmp-{os.getpid()}")
    view, half = memoryview(data), len(data) // 2
    try:
        with open(tmp, "wb") as f:
            # Two halves so the tests can crash or fill the disk with a half-written temp file.
            f.write(view[:half])
            f.flush()
            faults.point(f"write:{path.name}")
            f.write(view[half:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_failed(path, e) from None
    _fsync_dir(path.parent)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files left by a process killed mid-write (not those of a live process)."""
    removed = []
    for tmp in Path(folder).glob(f"{TMP_PREFIX}*.tmp-*"):
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process is writing into this folder right now
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Where a file system has no hard links (or not across these two names), a copy does the same job.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def link_atomic(src: Path, dst: Path) -> None:
    """Make ``dst`` name the same file as ``src`` (a hard link), replacing ``dst`` atomically.

    Files are only ever replaced by rename, never rewritten in place, so two names of one file stay
    correct: a later write of ``src`` gives ``src`` a new file and leaves ``dst`` as it was.
    """
    tmp = dst.with_name(f"{TMP_PREFIX}{dst.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise
            write_atomic(Path(src).read_bytes(), dst)
            return
        faults.point(f"write:{dst.name}")
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_failed(dst, e) from None
    _fsync_dir(dst.parent)


def check_writable(path: str | Path, flag: str, folder: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is done (UsageError naming
    ``flag``): the folder it would go in must be a folder we may write, or creatable in one."""
    from common.errors import UsageError

    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kind = "a file" if folder else "a folder"
        raise UsageError(f"{flag} {path} is {kind}; give {'a folder' if folder else 'a file name'}")
    place = path if folder else path.parent
    place = place if str(place) else Path(".")
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise UsageError(f"{flag} {path} cannot be created: {place} is a file, not a folder; choose another path")
    if not os.access(place, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path} cannot be written: no write permission in {place}; choose another path")
    return path
