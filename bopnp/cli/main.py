"""The ``bopnp`` command: a Click group whose subcommands are imported only when run, so that
``bopnp --help`` answers at once without importing torch or pyrender."""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import click

from bopnp.errors import BopnpError

#: name -> ("module:function", one-line help shown by ``bopnp --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("bopnp.cli.check:check", "Report every problem of a BOP dataset (files, fields, ids, masks)."),
    "synth": ("bopnp.cli.synth:synth", "Write a synthetic BOP dataset (procedural or given meshes)."),
    "prepare": ("bopnp.cli.prepare:prepare", "Compute scene_gt_info and write Pix2Pose training crops."),
    "train": ("bopnp.cli.train:train", "Train the pose network (crop cache) or the detector (Mask R-CNN)."),
    "detect": ("bopnp.cli.detect:detect", "Run a trained detector over a split; write BOP default-detections json."),
    "predict": ("bopnp.cli.predict:predict", "Estimate 6D poses of the test targets and write a BOP19 results CSV."),
    "eval": ("bopnp.cli.eval:eval_cmd", "Score a BOP19 results CSV (VSD, MSSD, MSPD, AR, ADD(-S))."),
    "recipe": (
        "bopnp.cli.recipe:recipe",
        "Synth, prepare, train the pose network for N minutes, score held-out renders.",
    ),
    "viz": ("bopnp.cli.viz:viz", "Draw GT poses, estimates or training crops of a dataset into a PNG."),
    "models-info": ("bopnp.cli.models_info:models_info", "Compute models_info.json from meshes (size, symmetries)."),
}


#: problems of an error printed on the terminal; the full list goes to a file
SHOWN_PROBLEMS = 20
#: name of that file in a command's output folder
PROBLEMS_FILE = "problems.txt"
#: exit status of an operating-system error (disk full, read-only folder, permission denied, ...)
OS_ERROR_EXIT = 1
_REPORT_DIR_KEY = "bopnp.report_dir"

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space there, or write to a folder on another disk",
    errno.EDQUOT: "the disk quota is used up: free space there, or write to a folder on another disk",
    errno.EROFS: "the file system is read-only: write to a folder on a writable disk (the command's output option)",
    errno.EACCES: "permission denied: fix the permissions (chmod / chown), or use a folder you may write to",
    errno.EPERM: "operation not permitted: fix the permissions (chmod / chown), or use a folder you may write to",
    errno.ENOENT: "not found: check the path",
    errno.ENOTDIR: "a file stands where a folder is needed: check the path, or move the file away",
    errno.EISDIR: "a folder stands where a file is needed: check the path, or move the folder away",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n), or use fewer workers",
    errno.ENFILE: "too many open files on the system: close other programs, or use fewer workers",
    errno.EIO: "input/output error: the disk or network file system failed; check it and run the command again",
}


def set_report_dir(path: str | os.PathLike) -> None:
    """Tell the error handler where the running command writes its outputs: the full list of an
    error's problems then goes to ``path / PROBLEMS_FILE`` instead of a temporary file."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_REPORT_DIR_KEY] = Path(path)


def os_error_message(exc: OSError) -> str:
    """One line: the path, what the system said, and what to do."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "(the system did not say which file)"
    code = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno, "check the path, its permissions and the free space, then run the command again")
    return f"{where}: {what}" + (f" ({code})" if code else "") + f"; {hint}"


def _write_problem_list(head: str, problems: list[str], report_dir: Path | None) -> tuple[Path | None, str]:
    """Write every problem, one a line, to the output folder, else to a temporary file.

    Returns:
        (the file or None when nothing could be written, a few words on where it is).
    """
    text = head + "\n" + "".join(f"{p}\n" for p in problems)
    if report_dir is not None:
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            path = report_dir / PROBLEMS_FILE
            path.write_text(text, encoding="utf-8")
            return path, "in the output folder"
        except OSError:
            pass
    try:
        fd, name = tempfile.mkstemp(prefix="bopnp-problems-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Path(name), "a temporary file" + ("" if report_dir is None else f": {report_dir} was not writable")
    except OSError:
        return None, ""


def error_message(exc: BaseException, report_dir: str | os.PathLike | None = None) -> str:
    """The text the CLI prints for an error: an OSError names the path and the fix; an error with more
    than :data:`SHOWN_PROBLEMS` problems shows the first ones and the count, and the full list is
    written to ``report_dir / PROBLEMS_FILE`` (else to a temporary file) whose path is printed."""
    if isinstance(exc, OSError):
        return os_error_message(exc)
    text = str(exc)
    problems = list(getattr(exc, "problems", None) or [])
    if problems:
        listed = "\n" + "\n".join(f"  - {p}" for p in problems)
        head = text[: -len(listed)] if text.endswith(listed) else text.split("\n", 1)[0]
    else:  # a long message without a problem list: its lines after the first
        head, *problems = text.split("\n")
    if len(problems) <= SHOWN_PROBLEMS:
        return text
    path, where = _write_problem_list(head, problems, None if report_dir is None else Path(report_dir))
    saved = f"the full list is in {path} ({where})" if path else "the full list could not be written anywhere"
    shown = "\n".join(f"  - {p}" for p in problems[:SHOWN_PROBLEMS])
    return f"{head}\n{shown}\n  ... and {len(problems) - SHOWN_PROBLEMS} more ({len(problems)} in all); {saved}"


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs (or shows --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                raise click.UsageError(f"'{name}' is not available in this version of bopnp") from None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the static one-line helps: listing the commands imports none of them
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BopnpError as exc:
            click.secho(f"error: {error_message(exc, ctx.meta.get(_REPORT_DIR_KEY))}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # disk full, read-only folder, permission denied, ...: for every command
            click.secho(f"error: {os_error_message(exc)}", fg="red", err=True)
            sys.exit(OS_ERROR_EXIT)
        except KeyboardInterrupt:
            click.secho(
                "interrupted: finished work is kept; run the same command again to resume", fg="yellow", err=True
            )
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="bopnp")
def cli(verbose: int) -> None:
    """bopnp: RGB-only 6D object pose estimation for the BOP benchmark.

    \b
    Examples:
      bopnp synth demo                  # a small synthetic BOP dataset in ./datasets/demo
      bopnp prepare demo                # scene_gt_info + Pix2Pose training crops
      bopnp check lmo --split test      # report every problem of a dataset
      bopnp eval results/m_lmo-test.csv # BOP19 scores

    The datasets folder is --bop-path, else $BOP_PATH, else ./datasets.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    cli()
