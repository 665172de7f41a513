"""``bopnp prepare NAME``: scene_gt_info where missing, coordinate targets and Pix2Pose training crops."""

from __future__ import annotations

import sys

import click

from bopnp.cli.options import bop_path_option, parse_object_ids


@click.command(
    "prepare",
    epilog="""\b
Examples:
  bopnp prepare demo                          # the synthetic dataset of `bopnp synth demo`
  bopnp prepare lmo --objects 1,5 --workers 4 # two LM-O objects of train_pbr
  bopnp prepare lmo --crop-size 96 --overwrite

The crops go to BOP_PATH/NAME/crops/SPLIT/ (format: docs/cache_format.md), with preview.png
showing a few of them per object. Scenes already
prepared are skipped: run the same command again to resume after an interruption.""",
)
@click.argument("name")
@bop_path_option
@click.option(
    "--split",
    default=None,
    help="Split folder to prepare. [default: train_pbr, else train, train_synt, train_primesense]",
)
@click.option("--crop-size", type=int, default=128, show_default=True, help="Side of the crops, pixels.")
@click.option(
    "--enlarge",
    type=float,
    default=1.5,
    show_default=True,
    help="Crop side relative to the longer side of the instance box.",
)
@click.option(
    "--box",
    "box_source",
    type=click.Choice(["bbox_obj", "bbox_visib"]),
    default="bbox_obj",
    show_default=True,
    help="Instance box the crop is centred on: the whole silhouette or its visible part.",
)
@click.option(
    "--min-visib-fract",
    type=float,
    default=0.1,
    show_default=True,
    help="Instances less visible than this get no crop.",
)
@click.option(
    "--objects", callback=parse_object_ids, default=None, help="Comma-separated object ids. [default: all objects]"
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes, one renderer each (~350 MB), capped by the scenes, cores and free memory. "
    "[default: one per CPU core, at most 8]",
)
@click.option(
    "--overwrite", is_flag=True, help="Delete this split's crop cache first (needed to change crop settings)."
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def prepare(
    name, bop_path, split, crop_size, enlarge, box_source, min_visib_fract, objects, workers, overwrite, progress
):
    """Compute scene_gt_info where missing and write Pix2Pose training crops of dataset NAME.

    For every instance visible enough: a square crop around its box (image, coordinate target
    normalised to [-1, 1], full and visible masks, and the crop's K), written per object into a
    compact cache that training memory-maps. Also writes each object's symmetry pool.
    """
    from bopnp.data.prepare import PrepareConfig
    from bopnp.data.prepare import prepare as run

    config = PrepareConfig(
        bop_path=bop_path,
        name=name,
        split=split,
        crop_size=crop_size,
        enlarge=enlarge,
        box_source=box_source,
        min_visib_fract=min_visib_fract,
        objects=objects,
        workers=workers,
        overwrite=overwrite,
    )
    summary = run(config, progress=progress)
    click.echo(summary.format())
    if summary.scenes_failed:
        sys.exit(2)
    _write_preview(summary.cache_dir)


def _write_preview(cache_dir) -> None:
    """Write ``preview.png`` (a few crops per object, see :func:`bopnp.viz.crops_preview`) beside the cache;
    a problem with it is a warning, never a failed prepare."""
    from bopnp.errors import BopnpError
    from bopnp.viz import crops_preview, save_png

    try:
        path = save_png(cache_dir / "preview.png", crops_preview(cache_dir))
    except BopnpError as exc:
        click.secho(f"warning: no preview picture: {exc}", fg="yellow", err=True)
        return
    click.echo(f"preview: {path}")
