"""``bopnp predict NAME``: 6D poses for the test targets of a dataset, written as a BOP19 results CSV."""

from __future__ import annotations

from pathlib import Path

import click

from bopnp.cli.options import bop_path_option


@click.command(
    "predict",
    epilog="""\b
Examples:
  bopnp predict demo --detections gt --pose results/train/demo/pose --eval
  bopnp predict lmo --detections datasets/lmo/detections/cosypose-maskrcnn-pbr_lmo-test.json \\
      --pose results/train/lmo/pose --method pix2pose-bpnp
  bopnp predict lmo --scene 2 --im 3 --im 894 --detections DETS.json --pose RUN   # two images only
  bopnp predict lmo --detections DETS.json --pose RUN --nproc 4   # 4 processes (torchrun), e.g. one per GPU

Writes OUT/METHOD_NAME-SPLIT.csv (BOP19 columns scene_id,im_id,obj_id,score,R,t,time).
Interrupted? Run the same command again: finished images are kept in OUT/METHOD_NAME-SPLIT.work/
until the CSV is written; a rerun of a finished command does nothing (--overwrite redoes it).""",
)
@click.argument("name")
@bop_path_option
@click.option("--split", default="test", show_default=True, help="Split folder.")
@click.option(
    "--targets",
    type=click.Choice(["bop19", "all"]),
    default="bop19",
    show_default=True,
    help="bop19: the images and instance counts of test_targets_bop19.json; all: every image of the split.",
)
@click.option(
    "--detections",
    default=None,
    help="Detections: a BOP COCO-style json file (e.g. BOP's default detections), or 'gt' for the ground truth's "
    "visible boxes (scores the pose stage alone).",
)
@click.option(
    "--detector",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A trained detector checkpoint, instead of --detections.",
)
@click.option(
    "--pose",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Pose network: a `bopnp train --stage pose` run folder (best.pt, else last.pt) or a .pt file.",
)
@click.option(
    "--method", default="bopnp", show_default=True, help="METHOD of the CSV's name (no '_': BOP's rule; use '-')."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder of the CSV.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: CUDA when present.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Images per batch: their detections share one network call and one PnP call.",
)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Threads reading images.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads of the network. [default: one per core; fewer when other jobs use the cores]",
)
@click.option(
    "--extra-candidates",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Per object, this many detections beyond the targets' instance count get a pose too; the best-scoring "
    "estimates (detection score x PnP inlier fraction) are the ones BOP's evaluator scores.",
)
@click.option("--scene", "scenes", type=click.IntRange(min=0), multiple=True, help="Only this scene (repeatable).")
@click.option(
    "--im",
    "ims",
    type=click.IntRange(min=0),
    multiple=True,
    help="Only this image (repeatable; with one --scene, or one --scene per --im).",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes (run under torchrun): each takes a share of the images, one GPU each with CUDA.",
)
@click.option("--overwrite", is_flag=True, help="Discard an earlier CSV or unfinished run of the same name.")
@click.option(
    "--eval",
    "run_eval",
    is_flag=True,
    help="Then score the CSV (bopnp eval) on the finished images' targets into OUT/eval/STEM and print the table.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def predict(
    name,
    bop_path,
    split,
    targets,
    detections,
    detector,
    pose,
    method,
    out,
    device,
    batch_size,
    workers,
    threads,
    extra_candidates,
    scenes,
    ims,
    nproc,
    overwrite,
    run_eval,
    quiet,
):
    """Estimate the 6D poses of the test targets of dataset NAME and write a BOP19 results CSV.

    Per image: the detections (a file, the GT, or a detector), per object as many as the targets
    ask for and --extra-candidates more; Pix2Pose's two-stage crops through the pose network; PnP
    with RANSAC on the confident pixels. Score = detection score x PnP inlier fraction. Images
    whose file is missing or corrupt are reported and skipped (a rerun retries them).
    """
    import os

    from bopnp.cli.main import set_report_dir
    from bopnp.infer.predict import PredictConfig, check_method_name

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from bopnp.cli.train import _relaunch_with_torchrun

        _relaunch_with_torchrun(nproc)

    set_report_dir(out)
    try:
        check_method_name(method)
    except Exception as exc:
        raise click.BadParameter(str(exc).removeprefix("--method "), param_hint="--method") from None
    if (detections is None) == (detector is None):
        raise click.UsageError("give either --detections FILE.json|gt or --detector CKPT")
    images = _chosen_images(bop_path, name, split, scenes, ims)
    config = PredictConfig(
        bop_path=bop_path,
        name=name,
        pose=pose,
        detections=detections,
        detector=detector,
        split=split,
        targets=targets,
        method=method,
        out=out,
        device=device,
        batch_size=batch_size,
        workers=workers,
        threads=threads,
        extra_candidates=extra_candidates,
        images=images,
        scenes=tuple(scenes) if scenes and images is None else None,
        overwrite=overwrite,
        progress=not quiet,
    )
    from bopnp.infer.predict import predict as run_predict

    summary = run_predict(config)
    if os.environ.get("RANK", "0") != "0":
        return  # the main process reports
    click.echo(summary.format())
    if run_eval:
        result, note = evaluate_predictions(config, summary, eval_device=device)
        click.echo("")
        click.echo(result.table)
        if note:
            click.echo(f"note: {note}")
        click.echo(f"\nevaluation written to {result.out_dir}")


def _chosen_images(bop_path, name, split, scenes, ims) -> tuple[tuple[int, int], ...] | None:
    if not ims:
        return None
    from bopnp.bop.dataset import BopDataset
    from bopnp.cli.viz import choose_images

    scene_ids = BopDataset.from_bop_path(bop_path, name, split).scene_ids() if not scenes else list(scenes)
    return tuple(choose_images(tuple(scenes), tuple(ims), scene_ids))


def evaluate_predictions(config, summary, *, eval_device: str = "auto"):
    """Score a run's CSV with the BOP19 evaluator into ``OUT/eval/STEM/`` (``bopnp eval``'s own folder when OUT is
    ``results``), on the targets of the images the run finished (:func:`bopnp.infer.predict.scored_targets`; the
    targets file is written there as ``targets_scored.json``).

    Returns:
        (the :class:`bopnp.eval.pipeline.EvalResult`, a note or None).
    """
    from bopnp.bop.annotations import save_targets
    from bopnp.eval.pipeline import EvalConfig, evaluate
    from bopnp.infer.predict import scored_targets

    targets, note = scored_targets(config, summary)
    out_dir = Path(config.out) / "eval" / summary.csv.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    targets_path = out_dir / "targets_scored.json"
    save_targets(targets_path, targets)
    cfg = EvalConfig(
        results_csv=summary.csv,
        bop_path=Path(config.bop_path),
        targets=str(targets_path.resolve()),
        out_dir=out_dir,
        device=eval_device,
        progress=config.progress,
        overwrite=True,  # the folder of this CSV's own evaluation
    )
    return evaluate(cfg), note
