"""Typed errors. Every error the user can cause is a :class:`BopnpError`; the CLI prints its message
without a traceback and exits non-zero. Messages name the file, row or field and say how to fix it."""

from __future__ import annotations


class BopnpError(Exception):
    """Base class of all errors that bopnp raises on purpose."""

    #: exit status the CLI uses for this error
    exit_code: int = 2


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
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


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
