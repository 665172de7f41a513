"""The ``bopnp`` command: a Click group whose subcommands are imported only when run, so that
``bopnp --help`` answers at once without importing torch or pyrender."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from bopnp.errors import BopnpError

#: name -> ("module:function", one-line help shown by ``bopnp --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("bopnp.cli.check:check", "Report every problem of a BOP dataset (files, fields, ids, masks)."),
    "synth": ("bopnp.cli.synth:synth", "Write a synthetic BOP dataset (procedural or given meshes)."),
    "prepare": ("bopnp.cli.prepare:prepare", "Compute scene_gt_info and write Pix2Pose training crops."),
    "eval": ("bopnp.cli.eval:eval_cmd", "Score a BOP19 results CSV (VSD, MSSD, MSPD, AR, ADD(-S))."),
    "viz": ("bopnp.cli.viz:viz", "Draw GT poses, estimates or training crops of a dataset into a PNG."),
}


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
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted: finished work is kept; run the same command again to resume", fg="yellow", err=True)
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
