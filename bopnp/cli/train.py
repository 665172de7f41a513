"""``bopnp train NAME --stage pose|detector``: train the coordinate network on the crop cache (optionally end to
end), or the Mask R-CNN detector on the split's images; one engine runs both (see :mod:`bopnp.train.runner`)."""

from __future__ import annotations

import os
import sys

import click

from bopnp.cli.options import bop_path_option, parse_object_ids

#: the detector's backbones and presets (as bopnp.models.detector.BACKBONES and bopnp.train.detector_config.PRESETS;
#: spelled out here so that --help imports no torch)
BACKBONES = ("resnet50_fpn_v2", "resnet18_fpn", "mobilenet_v3_large_fpn")
PRESETS = ("auto", "full", "cpu")
#: augmentation names per stage (the library's AUGMENT_PRESETS and detector_config.AUGMENTS)
POSE_AUGMENTS = ("pix2pose", "light", "none")
DETECTOR_AUGMENTS = ("full", "color", "none")
#: the pose stage's coordinate networks (bopnp.models.ARCHS) and normalisations
POSE_ARCHS = ("pix2pose", "unet", "resnet18", "resnet34")
POSE_NORMS = ("batch", "group")
#: per-stage defaults of the shared options
STAGE_DEFAULTS = {"pose": {"batch_size": 16, "lr": 1e-3}, "detector": {"batch_size": 2, "lr": None}}


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
  bopnp train lmo --stage pose --e2e --minutes 8 --device cuda --batch-size 512 --lr-scale sqrt
  bopnp train demo --stage pose --nproc 2              # distributed data parallel (torchrun)
  bopnp train demo --stage detector --steps 500        # Mask R-CNN; on a CPU the light 'cpu' preset
  bopnp train lmo --stage detector --preset full --backbone-weights resnet50-11ad3fa6.pth --device cuda

The run goes to results/train/NAME/STAGE (or --out): config.json, last.pt, best.pt, log.jsonl,
augmented.png and TensorBoard files. Interrupted? Run the same command with --resume.""",
)
@click.argument("name")
@bop_path_option
@click.option(
    "--stage", type=click.Choice(["pose", "detector"]), default="pose", show_default=True, help="What to train."
)
@click.option(
    "--split",
    default="train_pbr",
    show_default=True,
    help="Training split (pose: its crop cache from bopnp prepare; detector: its images).",
)
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
@click.option(
    "--lambda-proj",
    type=float,
    default=1e-3,
    show_default=True,
    help="Weight of the projection loss (px^2) next to L_trans (about 100).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Crops (pose) or images (detector) per step and process. [default: 16 pose, 2 detector]",
)
@click.option(
    "--lr",
    type=float,
    default=None,
    help="Peak learning rate, warm-up then cosine decay. [default: pose 1e-3 (Adam); detector: AdamW 1e-3, SGD "
    "0.02 x batch size / 16]",
)
@click.option(
    "--lr-scale",
    type=click.Choice(["none", "sqrt", "linear"]),
    default="none",
    show_default=True,
    help="Pose: scale --lr with the batch (all processes) against 16 crops: sqrt (Adam's rule for large batches) "
    "or linear.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.02,
    show_default=True,
    help="Pose: share of the steps of the learning-rate warm-up (e.g. 0.05 for batches of 256 and more).",
)
@click.option(
    "--minutes",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="A time budget instead of --steps: the throughput is measured for a few seconds and the steps that fit "
    "(validations and the pose stage's e2e phase included) are recorded in config.json; --resume keeps them "
    "(and refuses another --minutes).",
)
@click.option(
    "--compile/--no-compile",
    "compile_net",
    default=False,
    show_default=True,
    help="Pose: torch.compile the network (its first steps compile; for long runs).",
)
@click.option(
    "--channels-last",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Pose: NHWC memory format (auto: on CUDA).",
)
@click.option(
    "--augment",
    type=click.Choice(sorted(set(POSE_AUGMENTS) | set(DETECTOR_AUGMENTS))),
    default=None,
    help="Augmentation. Pose: pix2pose (default: backgrounds, occluders, box and colour jitter, for renders that "
    "must transfer to photos), light (a weaker mix that learns faster on a CPU budget) or none. Detector: full "
    "(scale jitter and colour), color or none [default: full with the full preset, color with cpu].",
)
@click.option(
    "--width", type=click.IntRange(min=1), default=32, show_default=True, help="Pose: channels of the first level."
)
@click.option(
    "--arch",
    type=click.Choice(POSE_ARCHS),
    default="pix2pose",
    show_default=True,
    help="Pose network: Pix2Pose's U-Net, a plain U-Net, or a ResNet-18/34 encoder with a light decoder.",
)
@click.option(
    "--norm", type=click.Choice(POSE_NORMS), default="batch", show_default=True, help="Pose: normalisation layers."
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default="auto",
    show_default=True,
    help="Detector network: full (ResNet-50 FPN v2, 640x480) or cpu (light, 320x240); auto: full on CUDA, else cpu.",
)
@click.option("--backbone", type=click.Choice(BACKBONES), default=None, help="Detector backbone. [default: preset's]")
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adamw"]),
    default=None,
    help="Detector optimiser. [default: sgd with the full preset, adamw with cpu]",
)
@click.option("--min-size", type=click.IntRange(min=32), default=None, help="Detector input: short side, pixels.")
@click.option("--max-size", type=click.IntRange(min=32), default=None, help="Detector input: long side at most.")
@click.option(
    "--backbone-weights",
    type=str,
    default=None,
    metavar="imagenet|coco|FILE",
    help="Detector: pretrained weights: imagenet or coco (torchvision's, from torch's hub cache, downloaded there when "
    "online) or a weights file (torchvision's ImageNet backbone or COCO Mask R-CNN). [default: torch's hub cache when "
    "it holds them, else from scratch]. Pose with --arch resnet18/34: imagenet or a torchvision ResNet state dict "
    "for the encoder [default: random init]",
)
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
    "--cache-in-memory",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Pose: hold the crops on the training device and draw batches there (auto: on a GPU, when they fit).",
)
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Run folder. [default: results/train/NAME/STAGE]"
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
    lr_scale,
    warmup,
    minutes,
    compile_net,
    channels_last,
    augment,
    width,
    arch,
    norm,
    preset,
    backbone,
    optimizer,
    min_size,
    max_size,
    backbone_weights,
    val_every,
    device,
    workers,
    seed,
    cache_in_memory,
    out,
    resume,
    overwrite,
    nproc,
    progress,
):
    """Train the pose network of dataset NAME on its Pix2Pose crops (from `bopnp prepare NAME`), or its detector.

    Pose: one class-aware U-Net serves every object: L_trans (transformer loss over the symmetry pool plus
    the error-map loss), then, with --e2e, L_trans + lambda * L_proj through the differentiable PnP.

    Detector: a Mask R-CNN with one class per object, trained on the split's images and their visible
    instances (scene_gt_info from `bopnp prepare`), validated by box/mask mAP and recall on held-out images.
    """
    defaults = STAGE_DEFAULTS[stage]
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    lr = defaults["lr"] if lr is None else lr
    if stage == "pose" and batch_size < 2:
        raise click.BadParameter("the pose stage needs at least 2 crops a step (batch norm)", param_hint="--batch-size")
    if stage == "detector" and (e2e or e2e_steps is not None):
        raise click.UsageError("--e2e and --e2e-steps belong to --stage pose")
    if stage == "detector" and (compile_net or lr_scale != "none"):
        raise click.UsageError("--compile and --lr-scale belong to --stage pose")
    stage_augments = POSE_AUGMENTS if stage == "pose" else DETECTOR_AUGMENTS
    if augment is not None and augment not in stage_augments:
        raise click.BadParameter(
            f"{augment!r} is not a {stage} augmentation: use one of {', '.join(stage_augments)}", param_hint="--augment"
        )
    if stage == "detector" and (arch != "pix2pose" or norm != "batch"):
        raise click.UsageError("--arch and --norm belong to --stage pose")
    if stage == "pose" and backbone_weights is not None and not arch.startswith("resnet"):
        raise click.BadParameter(
            "pose backbone weights serve --arch resnet18 or resnet34", param_hint="--backbone-weights"
        )
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        _relaunch_with_torchrun(nproc)
    if stage == "detector":
        _train_detector(
            name=name,
            bop_path=bop_path,
            split=split,
            objects=objects,
            steps=steps,
            minutes=minutes,
            init=init,
            batch_size=batch_size,
            lr=lr,
            preset=preset,
            backbone=backbone,
            augment=augment,
            optimizer=optimizer,
            min_size=min_size,
            max_size=max_size,
            backbone_weights=backbone_weights,
            val_every=val_every,
            device=device,
            workers=workers,
            seed=seed,
            out=out,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
        )
        return
    from dataclasses import replace

    from bopnp.data.training_set import AugmentConfig
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
        lr_scale=lr_scale,
        warmup=warmup,
        minutes=minutes,
        compile=compile_net,
        channels_last=channels_last,
        width=width,
        arch=arch,
        norm=norm,
        backbone_weights=None if backbone_weights is None else str(backbone_weights),
        val_every=val_every,
        device=device,
        workers=workers,
        seed=seed,
        cache_in_memory=cache_in_memory,
        e2e_loss=replace(base.e2e_loss, lambda_proj=lambda_proj),
        augment=AugmentConfig.preset(augment or "pix2pose"),
    )
    summary = train_pose(config, resume=resume, overwrite=overwrite, progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(summary.format())


def _train_detector(
    *, preset, backbone, augment, optimizer, min_size, max_size, resume, overwrite, progress, bop_path, **options
):
    from dataclasses import replace

    import torch

    from bopnp.train.detector import train_detector
    from bopnp.train.detector_config import AUGMENTS as AUGMENT_CONFIGS
    from bopnp.train.detector_config import PRESET_AUGMENTS, PRESET_OPTIMIZERS, DetectorTrainConfig
    from bopnp.train.detector_config import PRESETS as NETS

    if preset == "auto":
        on_cuda = options["device"] == "cuda" or (options["device"] == "auto" and torch.cuda.is_available())
        preset = "full" if on_cuda else "cpu"
    net = NETS[preset]
    if backbone is not None:
        net = replace(net, backbone=backbone, returned_layers=None if backbone != net.backbone else net.returned_layers)
    if min_size is not None or max_size is not None:
        lo = min_size if min_size is not None else net.min_size
        hi = max_size if max_size is not None else round(lo * net.max_size / net.min_size)  # the preset's aspect
        net = replace(net, min_size=lo, max_size=hi)
    optimizer = optimizer or PRESET_OPTIMIZERS[preset]
    augment = augment or PRESET_AUGMENTS[preset]
    config = DetectorTrainConfig(
        bop_path=str(bop_path), net=net, optimizer=optimizer, augment=AUGMENT_CONFIGS[augment], **options
    )
    summary = train_detector(config, resume=resume, overwrite=overwrite, progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(summary.format())
