"""``bopnp check``: report every problem of a BOP dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bopnp.cli.options import bop_path_option


@click.command("check")
@click.argument("name")
@click.option(
    "--split", default=None, help="Split folder to check (e.g. test, train_pbr, val); default: every split present."
)
@bop_path_option
@click.option("--models-only", is_flag=True, help="Check only camera.json and the models (no split).")
@click.option(
    "--images",
    type=click.Choice(["all", "present", "none"]),
    default="all",
    show_default=True,
    help="all: every image listed in scene_camera.json must exist; present: check the image, depth and "
    "mask files that exist and only note missing ones (for partial downloads); none: annotations only.",
)
@click.option(
    "--fast",
    is_flag=True,
    help="Read only the headers (sizes) of rgb and depth images instead of decoding them: faster, but truncated "
    "files and depth that is not 16-bit go unnoticed (the report says so).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar over images (default: on a terminal).")
def check(
    name: str, split: str | None, bop_path: Path, models_only: bool, images: str, fast: bool, progress: bool | None
) -> None:
    """Report every problem of the BOP dataset NAME (a folder under --bop-path, or a path).

    Checks camera.json, models_info.json against the models, every scene's scene_camera, scene_gt and
    scene_gt_info (object ids, rotations, counts), image and depth sizes, masks against
    scene_gt_info, and the BOP19 test targets. Images, depth and masks are decoded whole (truncated or
    corrupt files are found); --fast reads only the image and depth headers. Prints one line per problem
    (file: field: what),
    then a summary. Exit status 0 when clean, 2 when a problem was found.

    \b
    Examples:
      bopnp check lmo --split test                   # everything, every image must be there
      bopnp check lmo --split test --images present  # a partial download: check what is there
      bopnp check lmo --models-only                  # models, models_eval, models_info.json
      bopnp check ./my_dataset --images none         # annotations only
      bopnp check lmo --split test --fast            # headers only: sizes, not the pixels
    """
    from bopnp.bop.check import CheckOptions, check_dataset
    from bopnp.cli.options import dataset_root
    from bopnp.errors import DatasetError

    root = dataset_root(bop_path, name)
    options = CheckOptions(models_only=models_only, images=images, progress=progress, fast=fast)
    report = check_dataset(root, split, options)
    for line in report.problems:
        click.echo(f"problem: {line}")
    for line in report.notes:
        click.echo(f"note: {line}")
    if report.ok:
        click.secho(report.summary(), fg="green")
        return
    click.secho(report.summary(), fg="red")
    sys.exit(DatasetError.exit_code)  # the status of a dataset problem raised elsewhere
