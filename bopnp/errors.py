"""Typed errors. Every error the user can cause is a :class:`BopnpError`; the CLI prints its message
without a traceback and exits non-zero. Messages name the file, row or field and say how to fix it."""

from __future__ import annotations

import re

#: how torch re-raises an error of a DataLoader worker (or its pin-memory thread) in the main process: the error's
#: type, called with one string, this header and the whole formatted traceback of the worker
_WORKER_HEADER = re.compile(r"Caught (?P<type>\w+) in [^\n]*\.\nOriginal Traceback \(most recent call last\):\n")


def unwrap_worker_message(cls: type[BaseException], message: object) -> tuple[object, str | None]:
    """The message an error of type ``cls`` had in a worker process, from the text torch re-raises it with.

    Returns:
        ``(message, None)`` for any other message; else ``(the worker's message, torch's text)``: the worker's
        message is what follows ``module.Type: `` on the last such line of the traceback (the error itself, after
        any it was raised while handling), down to the end.
    """
    if not isinstance(message, str):
        return message, None
    header = _WORKER_HEADER.match(message)
    if header is None or header["type"] != cls.__name__:
        return message, None
    for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
        at = message.rfind(f"\n{name}: ")
        if at >= 0:
            return message[at + len(name) + 3 :].rstrip("\n"), message
        if message.rstrip("\n").endswith(f"\n{name}"):  # an error without a message
            return "", message
    return message, None


class BopnpError(Exception):
    """Base class of all errors that bopnp raises on purpose.

    An error raised in a DataLoader worker reaches the main process as the same type, with the same message: torch
    re-raises it as ``type(error)("Caught ... Original Traceback ...")``, which the constructor turns back into the
    worker's message (torch's text stays in :attr:`worker_traceback` for debugging), so the CLI prints it as it
    prints an error of this process: one message, no traceback.
    """

    #: exit status the CLI uses for this error
    exit_code: int = 2
    #: the worker's traceback as torch formatted it, for an error re-raised from a worker; else None
    worker_traceback: str | None = None

    def __init__(self, *args: object):
        if len(args) == 1:
            message, traceback = unwrap_worker_message(type(self), args[0])
            if traceback is not None:
                args, self.worker_traceback = (message,), traceback
        super().__init__(*args)


class ShapeError(BopnpError, ValueError):
    """A tensor or array argument has the wrong shape, dtype or device."""


class ConfigError(BopnpError, ValueError):
    """An option or configuration value is invalid."""


class DatasetError(BopnpError):
    """A BOP dataset is missing files or holds malformed ones.

    Args:
        problems: one line per problem, each naming the file and field.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        message, traceback = unwrap_worker_message(type(self), message)
        if traceback is not None and problems is None:  # the worker's problems, back from the message's last lines
            lines = message.split("\n")
            while len(lines) > 1 and lines[-1].startswith("  - "):
                problems = [lines.pop()[4:], *(problems or [])]
            message = "\n".join(lines)
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)
        if traceback is not None:
            self.worker_traceback = traceback


class ResultsFormatError(DatasetError):
    """A results file (BOP19 CSV, detections json) is malformed; ``problems`` lists every bad row."""


class RenderError(BopnpError):
    """The headless renderer could not start or render."""


class WorkerError(BopnpError, RuntimeError):
    """A worker process died or failed, or worker processes cannot be started safely here."""


class CheckpointError(BopnpError):
    """A training checkpoint or run folder is missing, unreadable or from an incompatible run."""


class TrainingError(BopnpError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and what was saved."""
