"""Progress bars of long jobs: live on a terminal, an update at most every :data:`LOG_INTERVAL_S` seconds
in a log (tqdm's carriage-return updates, so a log viewer shows the latest).

>>> with progress_bar(total=3, desc="demo", unit="img", enabled=False) as bar:
...     bar.update(3)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

#: Seconds between two updates when stderr is not a terminal (CI logs, ``nohup``, pipes).
LOG_INTERVAL_S = 30.0


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str,
    enabled: bool | None = True,
    leave: bool = True,
):
    """A tqdm bar on stderr.

    Args:
        iterable: wrapped and iterated, as ``tqdm(iterable)``; or None, then call ``bar.update(n)``.
        total: number of units (default ``len(iterable)`` where it has one).
        desc, unit: the bar's label and unit name (``"img"``, ``"image"``).
        enabled: False hides the bar; None shows it only on a terminal.
        leave: keep the finished bar on screen.
    """
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    interval = 0.1 if interactive else LOG_INTERVAL_S
    # maxinterval too: tqdm's monitor thread would otherwise print a stale update every 10 s
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=None if enabled is None else not enabled,
        leave=leave,
        dynamic_ncols=interactive,
        mininterval=interval,
        maxinterval=max(interval, 10.0),
    )
