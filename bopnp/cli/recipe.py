"""``bopnp recipe``: the time-budgeted pose recipe (synth -> prepare -> train L_trans then e2e -> held-out scores),
a thin command over :func:`bopnp.train.recipe.run_recipe`."""

from __future__ import annotations

import click

from bopnp.cli.options import bop_path_option


@click.command(
    "recipe",
    epilog="""\b
Examples:
  bopnp recipe --models datasets/lmo/models --minutes 8 --device cuda    # LM-O models, 8 minutes of one GPU
  bopnp recipe --minutes 2 --batch-size 16 --train-images 200 --test-images 20   # procedural objects, a CPU

Writes datasets NAME and NAME-test under --bop-path and the run to --out (recipe.json: settings, seconds,
scores). Run it again to finish an interrupted recipe: complete phases are reused.""",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A BOP models/ folder to render (e.g. LM-O's). [default: the procedural objects]",
)
@bop_path_option
@click.option("--name", default="lmo-synth", show_default=True, help="Training dataset (held-out: NAME-test).")
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=8.0, show_default=True,
              help="Training budget of the pose network (data and scoring come on top).")  # fmt: skip
@click.option("--train-images", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--test-images", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--crop-size", type=click.IntRange(min=8), default=64, show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=16, show_default=True, help="Network width.")
@click.option("--batch-size", type=click.IntRange(min=2), default=None,
              help="Crops per step. [default: 256 on CUDA, 16 on a CPU]")  # fmt: skip
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate at 16 crops (sqrt-scaled).")
@click.option("--augment", type=click.Choice(["pix2pose", "light", "none"]), default="light", show_default=True)
@click.option("--compile/--no-compile", "compile_net", default=False, show_default=True, help="torch.compile.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes. [default: one per core]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="[default: results/recipe/NAME]")
@click.option("--progress/--no-progress", default=None, help="Progress bars. [default: on a terminal]")
def recipe(
    models_dir, bop_path, name, minutes, train_images, test_images, crop_size, width, batch_size, lr, augment,
    compile_net, device, workers, seed, out, progress,
):  # fmt: skip
    """Render training and held-out sets, train the pose network for --minutes, score it with GT boxes.

    The pose network trains L_trans, then its last quarter of steps end to end through the PnP layer; the steps
    that fit the budget are measured at the start. The held-out renders (another seed) are scored with their GT
    boxes: ADD(-S), the MSSD and MSPD recalls and AR* (their mean), with the seconds of every phase.
    """
    from bopnp.device import resolve_device
    from bopnp.train.recipe import RecipeConfig, run_recipe

    if batch_size is None:
        batch_size = 256 if resolve_device(device).type == "cuda" else 16
    config = RecipeConfig(
        models_dir=models_dir,
        bop_path=str(bop_path),
        name=name,
        out=out,
        minutes=minutes,
        train_images=train_images,
        test_images=test_images,
        seed=seed,
        test_seed=seed + 1,
        crop_size=crop_size,
        width=width,
        batch_size=batch_size,
        lr=lr,
        augment=augment,
        compile=compile_net,
        device=device,
        workers=workers,
    )
    click.echo(run_recipe(config, progress=progress).format())
