"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

bop_path_option = click.option(
    "--bop-path",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="BOP_PATH",
    default=Path("datasets"),
    show_default=True,
    show_envvar=True,
    help="Folder that holds BOP datasets (one subfolder per dataset).",
)
