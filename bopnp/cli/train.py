"""``bopnp train NAME --stage pose``: train the coordinate network on the crop cache, optionally end to end."""

from __future__ import annotations

import os
import sys

import click

from bopnp.cli.options import bop_path_option, parse_object_ids


def _relaunch_with_torchrun(nproc: int) -> None:
    """Run this same command under torchrun with ``nproc`` processes (``--nproc`` dropped), then exit with
    its status."""
    import subprocess

    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        args.append(a)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "bopnp",
        *args,
    ]
    click.echo(f"launching {nproc} processes: {' '.join(cmd[1:])}", err=True)
    sys.exit(subprocess.call(cmd))


@click.command(
    "train",
    epilog="""\b
Examples:
  bopnp train demo --stage pose --steps 2000           # L_trans only
  bopnp train demo --stage pose --e2e                  # L_trans, then the last quarter end to end
  bopnp train demo --stage pose --e2e --init results/train/demo/pose/best.pt --out results/train/demo/e2e
  bopnp train lmo --stage pose --objects 1,5 --device cuda --batch-size 32
  bopnp train demo --stage pose --nproc 2              # distributed data parallel (torchrun)

The run goes to results/train/NAME/pose (or --out): config.json, last.pt, best.pt, log.jsonl,
augmented.png and TensorBoard files. Interrupted? Run the same command with --resume.""",
)
@click.argument("name")
@bop_path_option
@click.option(
    "--stage", type=click.Choice(["pose", "detector"]), default="pose", show_default=True, help="What to train."
)
@click.option("--split", default="train_pbr", show_default=True, help="Split whose crop cache (bopnp prepare) is used.")
@click.option("--objects", callback=parse_object_ids, default=None, help="Comma-separated object ids. [default: all]")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Optimiser steps in all.")
@click.option("--e2e", is_flag=True, help="Fine-tune end to end through the PnP layer (projection loss).")
@click.option(
    "--e2e-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Steps of the e2e phase, the last of --steps. [default: a quarter; all with --init]",
)
@click.option(
    "--init",
    "init",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Start from this checkpoint's weights (e.g. best.pt of an L_trans run).",
)
@click.option("--lambda-proj", type=float, default=1.0, show_default=True, help="Weight of the projection loss.")
@click.option(
    "--batch-size", type=click.IntRange(min=2), default=16, show_default=True, help="Crops per step and process."
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate (warm-up, cosine decay).")
@click.option("--width", type=click.IntRange(min=1), default=32, show_default=True, help="Channels of the first level.")
@click.option(
    "--val-every",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Validate every N steps (0: only at the end).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="DataLoader processes.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Run folder. [default: results/train/NAME/pose]"
)
@click.option("--resume", is_flag=True, help="Continue the run in the run folder exactly where it stopped.")
@click.option("--overwrite", is_flag=True, help="Delete the run folder's run and start over.")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes (distributed data parallel through torchrun).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar. [default: on a terminal]")
def train(
    name,
    bop_path,
    stage,
    split,
    objects,
    steps,
    e2e,
    e2e_steps,
    init,
    lambda_proj,
    batch_size,
    lr,
    width,
    val_every,
    device,
    workers,
    seed,
    out,
    resume,
    overwrite,
    nproc,
    progress,
):
    """Train the pose network of dataset NAME on its Pix2Pose crops (from `bopnp prepare NAME`).

    One class-aware U-Net serves every object: L_trans (transformer loss over the symmetry pool plus
    the error-map loss), then, with --e2e, L_trans + lambda * L_proj through the differentiable PnP.
    """
    if stage == "detector":
        raise click.UsageError("--stage detector is not available in this version yet; train --stage pose")
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        _relaunch_with_torchrun(nproc)
    from dataclasses import replace

    from bopnp.train.config import PoseTrainConfig
    from bopnp.train.pose import train_pose

    base = PoseTrainConfig()
    config = PoseTrainConfig(
        bop_path=str(bop_path),
        name=name,
        split=split,
        objects=objects,
        out=out,
        steps=steps,
        e2e=e2e,
        e2e_steps=e2e_steps,
        init=init,
        batch_size=batch_size,
        lr=lr,
        width=width,
        val_every=val_every,
        device=device,
        workers=workers,
        seed=seed,
        e2e_loss=replace(base.e2e_loss, lambda_proj=lambda_proj),
    )
    summary = train_pose(config, resume=resume, overwrite=overwrite, progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(summary.format())
