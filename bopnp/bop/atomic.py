"""Atomic file writes: a temporary file in the destination folder, then ``os.replace``.

A reader never sees a half-written file, and an interrupted process leaves the old file (or none) in
place. There is no fsync: every file bopnp writes can be made again, and syncing each mask png made
dataset synthesis markedly slower.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> write_text_atomic(path, "hello")
>>> path.read_text()
'hello'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: permissions of a new file or folder as ``open()`` / ``mkdir()`` would give them (temporary files are
#: created private, 0600 / 0700; the renamed result must not be)
FILE_MODE = 0o666 & ~_current_umask()
DIR_MODE = 0o777 & ~_current_umask()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating the parent folders.

    Args:
        path: destination file; replaced if it exists.
        data: the complete file content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as :func:`write_bytes_atomic` names its temporary files (``.NAME.XXXX.tmp``)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files that killed writers left anywhere under ``folder`` (a process killed
    between creating and renaming one cannot remove it); returns how many. Only for a folder that no
    other process is writing to.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in (".a.png.x1y2.tmp", "a.png"):
    ...     _ = (d / name).write_bytes(b"")
    >>> remove_temporaries(d), sorted(p.name for p in d.iterdir())
    (1, ['a.png'])
    """
    n = 0
    for p in Path(folder).rglob(".*.tmp"):
        if p.is_file() and is_temporary(p):
            p.unlink(missing_ok=True)
            n += 1
    return n
