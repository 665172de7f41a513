"""``bopnp synth NAME``: write a synthetic BOP dataset (procedural or given meshes)."""

from __future__ import annotations

from pathlib import Path

import click

from bopnp.cli.options import bop_path_option

# keep in step with bopnp.synth.generator (not imported here: `bopnp --help` must stay light)
_DEMO_TRAIN, _DEMO_TEST = 300, 50


@click.command("synth")
@click.argument("name")
@bop_path_option
@click.option(
    "--train-images",
    type=click.IntRange(min=0),
    default=_DEMO_TRAIN,
    show_default=True,
    help="Images of the train_pbr split.",
)
@click.option(
    "--test-images",
    type=click.IntRange(min=0),
    default=_DEMO_TEST,
    show_default=True,
    help="Images of the test split (with test_targets_bop19.json).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of everything random (same seed -> same files).",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A BOP models/ folder (ply + models_info.json) to render instead of the procedural objects.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Rendering processes (~350 MB each), capped by the images, cores and free memory; the output does not "
    "depend on it. [default: one per CPU core, at most 8]",
)
@click.option(
    "--poses",
    type=click.Choice(["tabletop", "uniform"]),
    default="tabletop",
    show_default=True,
    help="Object rotations: standing on a table seen from above (as BOP test images), or uniform over SO(3).",
)
@click.option(
    "--images-per-scene", type=click.IntRange(1, 1000), default=1000, show_default=True, help="Images per scene folder."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset made by `bopnp synth`.")
@click.option("--resume", is_flag=True, help="Finish an interrupted dataset (same options); finished images are kept.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def synth(
    name,
    bop_path,
    train_images,
    test_images,
    seed,
    models_dir,
    workers,
    poses,
    images_per_scene,
    overwrite,
    resume,
    no_progress,
):
    """Write a synthetic BOP dataset to BOP_PATH/NAME.

    Without --models it renders six procedural objects (two asymmetric, three with discrete and one with
    a continuous symmetry, declared in models_info.json) at random poses with random lighting, procedural
    backgrounds and distractor objects (the objects stand on a table seen from above unless
    --poses uniform); with --models it renders those meshes instead. It writes models/,
    models_eval/, camera.json, train_pbr/ (rgb, depth, masks, scene_gt, scene_gt_info, scene_camera),
    test/ and test_targets_bop19.json.

    \b
    Examples:
      bopnp synth demo                                  # the demo dataset in ./datasets/demo
      bopnp synth big --train-images 5000 --workers 2   # more training images
      bopnp synth lmo_synth --models datasets/lmo/models --test-images 0
      bopnp synth demo --resume                         # finish an interrupted run
    """
    if overwrite and resume:
        raise click.BadParameter("pass either --overwrite or --resume, not both", param_hint="--overwrite/--resume")
    from bopnp.synth.generator import SynthConfig, synthesize

    config = SynthConfig(
        name=name,
        bop_path=bop_path,
        train_images=train_images,
        test_images=test_images,
        seed=seed,
        models_dir=models_dir,
        workers=workers,
        mode="overwrite" if overwrite else "resume" if resume else "new",
        images_per_scene=images_per_scene,
        poses=poses,
        progress=not no_progress,
    )
    summary = synthesize(config)
    rendered = sum(summary.images_rendered.values())
    skipped = sum(summary.images_skipped.values())
    click.echo(
        f"{summary.dataset_dir}: {rendered} images rendered"
        + (f", {skipped} already there" if skipped else "")
        + f" in {summary.seconds:.1f} s; "
        + ", ".join(f"{split} {n} instances" for split, n in summary.instances.items() if n)
        + f"; {summary.targets} test targets"
    )
