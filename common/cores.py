"""The cores this process may use: counted once, for threads and data-loader workers alike."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPUs in this process's affinity mask (what taskset/cgroups allow), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
