"""Worker processes: how many a job may use, and the one pool that ``synth``, ``prepare`` and ``eval`` share.

:func:`bounded_workers` turns a requested count into one the work and the machine allow:
``min(requested, jobs, usable cores, available memory / worker_mb)``, and says so once when it caps.
:func:`run_jobs` runs a function over jobs in such a pool and yields the results as they complete.
Its workers end with their parent, even after a SIGKILL of the parent (Linux: ``PR_SET_PDEATHSIG``;
elsewhere a watchdog thread that polls ``os.getppid()``). When the workers are gone, multiprocessing's
resource tracker goes too: it lives until the last holder of its pipe exits, and spawned workers
inherit that pipe, so orphaned workers used to keep it alive.

Processes are started with ``spawn`` by default: an OpenGL or CUDA context must never be forked. ``fork``
(read-only inputs shared without pickling) is refused once this process has initialised CUDA.
"""

from __future__ import annotations

import logging
import os
import reprlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from bopnp.errors import BopnpError, ConfigError, WorkerError

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")

#: resident memory of one worker that holds a headless renderer (EGL context, meshes, buffers), MB
RENDER_WORKER_MB = 350

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_INTERVAL_S = 0.5


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def available_memory_mb() -> float | None:
    """Memory that new processes can still get without swapping, MB; None when unknown.

    The machine's ``MemAvailable``, or less when this process's cgroup (a container) has a lower limit:
    that limit less the group's usage, not counting reclaimable file cache.
    """
    free = [mb for mb in (_meminfo_available_mb(), _cgroup_free_mb()) if mb is not None]
    if free:
        return min(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (AttributeError, ValueError, OSError):
        return None


def _meminfo_available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_free_mb(root: str = "/sys/fs/cgroup") -> float | None:
    """Limit - usage + inactive file cache of the memory cgroup (v2, else v1), MB; None without a limit."""
    for limit, usage, stat, cache_key in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat", "total_inactive_file"),
    ):
        try:
            with open(os.path.join(root, limit)) as f:
                text = f.read().strip()
            if text == "max" or int(text) >= 2**60:  # no limit
                return None
            with open(os.path.join(root, usage)) as f:
                used = int(f.read())
            cache = 0
            with open(os.path.join(root, stat)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == cache_key:
                        cache = int(value)
            return max(0.0, (int(text) - used + cache) / 2**20)
        except (OSError, ValueError):
            continue
    return None


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


def bounded_workers(
    requested: int | None,
    jobs: int,
    *,
    worker_mb: float | None = None,
    default_cap: int = 8,
    what: str = "--workers",
    quiet: bool = False,
) -> int:
    """The worker count to use: ``min(requested, jobs, usable cores, available memory / worker_mb)``, at least 1.

    Args:
        requested: the user's count (>= 1), or None for one per usable core, at most ``default_cap``.
        jobs: independent pieces of work (a worker beyond this count would only idle).
        worker_mb: resident memory of one worker, MB (e.g. :data:`RENDER_WORKER_MB`); None: not limited.
        what: the option's name, for the messages.
        quiet: do not log when an explicit request is capped.
    Raises:
        ConfigError: ``requested`` is not a positive integer.

    >>> bounded_workers(100000, jobs=3) <= 3
    True
    """
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 1):
        raise ConfigError(f"{what} = {requested!r}: use a whole number of processes >= 1 (1 runs in this process)")
    limits = {"jobs": max(1, jobs), "usable CPU cores": usable_cpus()}
    if requested is None:
        limits["default cap"] = default_cap
    if worker_mb:
        mem = available_memory_mb()
        if mem is not None:
            limits[f"available memory ({mem:.0f} MB at {worker_mb:.0f} MB per worker)"] = max(1, int(mem // worker_mb))
    n = min([requested or sys.maxsize, *limits.values()])
    if requested is not None and n < requested and not quiet:
        why = ", ".join(f"{k}: {v}" for k, v in limits.items() if v == n)
        log.warning("%s %d capped to %d worker process(es) (limited by %s)", what, requested, n, why)
    return n


def cuda_initialized() -> bool:
    """True when this process has initialised CUDA (torch is not imported to find out)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_initialized())
    except Exception:  # a partly imported or stubbed torch: it cannot have initialised CUDA
        return False


# ------------------------------------------------------------------------------------- in the workers
_INIT_ERROR: BaseException | None = None


def _die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (its parent) ends, however the parent ends."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="bopnp-parent-watchdog", daemon=True).start()


def _watch_parent(
    parent_pid: int, interval_s: float = _WATCHDOG_INTERVAL_S, on_orphan: Callable[[], object] = lambda: os._exit(1)
) -> None:
    """Poll the parent's pid; call ``on_orphan`` (default: exit at once) when this process was orphaned."""
    import time

    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    on_orphan()


def _start_worker(parent_pid: int, initializer: Callable[..., object] | None, initargs: tuple) -> None:
    global _INIT_ERROR
    _die_with_parent(parent_pid)
    if initializer is None:
        return
    try:
        initializer(*initargs)
    except BaseException as exc:  # reported with the first job, in the parent, instead of a bare dead pool
        _INIT_ERROR = exc


def _call(fn: Callable[[J], R], job: J) -> R:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    return fn(job)


# ----------------------------------------------------------------------------------------- the pool
def run_jobs(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int,
    *,
    initializer: Callable[..., object] | None = None,
    initargs: tuple = (),
    method: Literal["spawn", "fork", "forkserver"] = "spawn",
    worker_mb: float | None = None,
    in_flight: int = 4,
    broken_hint: str = "",
    poll: Callable[[], object] | None = None,
    poll_s: float = 0.2,
) -> Iterator[tuple[J, R]]:
    """Run ``fn(job)`` for every job in worker processes; yield ``(job, result)`` as each completes.

    ``fn``, ``initializer`` and the jobs must be picklable module-level objects (with ``fork``, the
    ``initargs`` are inherited, not pickled: the way to share large read-only inputs). Each worker runs
    ``initializer(*initargs)`` once and ends with this process. At most ``in_flight * workers`` jobs
    are queued at a time. Closing the generator early cancels the jobs not started and ends the workers.
    Consume it in a thread that outlives the pool: on Linux a worker ends with the thread that started it.

    Args:
        workers: processes; capped as :func:`bounded_workers` does (without a second message).
        method: how the workers start. 'spawn' (default) is the only safe one for a process that has
            started OpenGL or CUDA.
        worker_mb: resident memory of one worker, MB, for the memory cap.
        broken_hint: what the user can do when a worker dies (appended to the error).
        poll: called once the first jobs are queued, then every ``poll_s`` seconds while waiting for
            results, and once at the end (e.g. to drain a queue of progress ticks, or to work meanwhile).
    Raises:
        WorkerError: 'fork' asked for after CUDA was initialised here; a worker died (killed, out of
            memory, a crash in native code); or ``fn`` raised an exception that is not a BopnpError.
        BopnpError: as raised by ``fn`` or the initializer in a worker, unchanged.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    if method == "fork" and cuda_initialized():
        raise WorkerError(
            "refusing to fork worker processes: this process has initialised CUDA, and a forked child cannot use "
            "it (its CUDA calls fail or hang). Start the workers with method='spawn', or run in this process "
            "(workers=1)"
        )
    if not jobs:
        return
    n = bounded_workers(workers, len(jobs), worker_mb=worker_mb, quiet=True)
    ctx = mp.get_context(method)
    pool = ProcessPoolExecutor(
        n, mp_context=ctx, initializer=_start_worker, initargs=(os.getpid(), initializer, initargs)
    )
    queue = list(reversed(range(len(jobs))))
    running: dict[Any, int] = {}
    try:
        while queue or running:
            while queue and len(running) < in_flight * n:
                k = queue.pop()
                running[pool.submit(_call, fn, jobs[k])] = k
            if poll:  # first right after the first jobs are queued
                poll()
            finished, _ = wait(running, timeout=poll_s if poll else None, return_when=FIRST_COMPLETED)
            for fut in finished:
                k = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise WorkerError(
                        f"a worker process died ({n} running; killed, out of memory, or crashed in native code): "
                        f"its error, if any, is printed above. {broken_hint}".rstrip()
                    ) from None
                except BopnpError:
                    raise
                except Exception as exc:
                    raise WorkerError(
                        f"a worker failed on job {reprlib.repr(jobs[k])}: {type(exc).__name__}: {exc}"
                    ) from exc
                yield jobs[k], result
        if poll:
            poll()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "RENDER_WORKER_MB",
    "available_memory_mb",
    "bounded_workers",
    "cuda_initialized",
    "default_workers",
    "run_jobs",
    "usable_cpus",
]
