"""How many worker processes a job should use by default."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers(cap: int = 8, jobs: int | None = None) -> int:
    """One worker per usable core, at most ``cap``, and no more than there are ``jobs``.

    >>> 1 <= default_workers(cap=4) <= 4
    True
    >>> default_workers(jobs=1)
    1
    """
    n = min(usable_cpus(), cap)
    if jobs is not None:
        n = min(n, jobs)
    return max(1, n)
