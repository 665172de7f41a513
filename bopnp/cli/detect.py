"""``bopnp detect NAME``: run a trained detector over a split and write its detections as a BOP
default-detections file (COCO-style json with RLE masks), which ``bopnp`` and other BOP tools read back."""

from __future__ import annotations

from pathlib import Path

import click

from bopnp.cli.options import bop_path_option, dataset_root


def default_detector(name: str) -> Path:
    return Path("results") / "train" / name / "detector" / "best.pt"


def default_out(name: str, split: str) -> Path:
    return Path("results") / "detections" / f"maskrcnn_{name}-{split}.json"


def _json_path(ctx, param, value: Path | None) -> Path | None:
    if value is not None and not (value.name.endswith(".json") or value.name.endswith(".json.gz")):
        raise click.BadParameter(f"{value}: detections are written as .json (or .json.gz); give such a file name")
    return value


@click.command(
    "detect",
    epilog="""\b
Examples:
  bopnp detect demo                                 # results/train/demo/detector/best.pt on the test targets
  bopnp detect lmo --detector runs/lmo/best.pt --device cuda --out results/detections/mine_lmo-test.json
  bopnp detect demo --split train_pbr --all-images --score-threshold 0.5

The file is what BOP publishes as default detections (scene_id, image_id, category_id, score,
bbox [x, y, w, h], segmentation RLE, time); its path is printed.""",
)
@click.argument("name")
@bop_path_option
@click.option("--split", default="test", show_default=True, help="Split whose images are searched.")
@click.option(
    "--detector",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Detector checkpoint. [default: results/train/NAME/detector/best.pt]",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_json_path,
    default=None,
    help="Detections file. [default: results/detections/maskrcnn_NAME-SPLIT.json]",
)
@click.option(
    "--all-images",
    is_flag=True,
    help="Every image of the split. [default: the images of test_targets_bop19.json when the split is a test split "
    "and the file exists, else every image]",
)
@click.option("--score-threshold", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Images per pass.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar. [default: on a terminal]")
def detect(name, bop_path, split, detector, out, all_images, score_threshold, batch_size, device, progress):
    """Detect the objects of dataset NAME in the images of a split with a trained Mask R-CNN.

    Writes every detection scoring at least --score-threshold (class, score, box, mask, seconds per
    image) in the BOP default-detections format, as BOP publishes its default detections.
    """
    from bopnp.bop.dataset import BopDataset
    from bopnp.bop.detections import save_detections
    from bopnp.cli.main import set_report_dir
    from bopnp.errors import CheckpointError
    from bopnp.infer.detect import ImageItem, check_image_size
    from bopnp.infer.maskrcnn import MaskRcnnDetections
    from bopnp.progress import progress_bar
    from bopnp.train.runner import resolve_device

    ds = BopDataset(dataset_root(bop_path, name), split)
    detector = detector or default_detector(name)
    if not detector.is_file():
        raise CheckpointError(
            f"{detector}: no detector checkpoint there; train one with `bopnp train {name} --stage detector` "
            "or pass --detector"
        )
    out = out or default_out(name, split)
    set_report_dir(out.parent)
    if not all_images and split.startswith("test") and ds.targets_path.is_file():
        images = sorted({(t.scene_id, t.im_id) for t in ds.targets()})
        images = [k for k in images if k[0] in set(ds.scene_ids())]
    else:
        images = [(s, i) for s in ds.scene_ids() for i in ds.image_ids(s)]
    source = MaskRcnnDetections(
        detector, device=resolve_device(device), score_threshold=score_threshold, batch_size=batch_size
    )
    unknown = sorted(set(source.obj_ids) - set(ds.obj_ids))
    if unknown:
        raise CheckpointError(
            f"{detector}: it detects objects {unknown} that {ds.models_info_path} does not list: it was trained on "
            "another dataset"
        )
    detections = []
    with progress_bar(total=len(images), desc=f"detect {name}/{split}", unit="img", enabled=progress) as bar:
        for start in range(0, len(images), batch_size):
            keys = images[start : start + batch_size]
            items = [ImageItem(s, i, ds.image(s, i)) for s, i in keys]
            for item in items:  # a K and a GT for another image size would not fit
                check_image_size(ds, item.key, item.rgb)
            for dets in source(items):
                detections.extend(dets)
            bar.update(len(keys))
    save_detections(out, detections)
    seconds = sum({(d.scene_id, d.im_id): d.time_s for d in detections}.values())
    per_image = (
        f", {seconds / max(len({(d.scene_id, d.im_id) for d in detections}), 1):.2f} s/image" if detections else ""
    )
    click.echo(f"{out}  ({len(detections)} detections in {len(images)} images{per_image})")
    scenes = sorted({s for s, _ in images})
    if images and all(ds.has_gt(s) and ds.has_gt_info(s) for s in scenes):
        from bopnp.infer.detection_scores import score_detections

        sc = score_detections(ds, detections, images, source.obj_ids, min_score=0.5)
        click.echo(
            f"against the ground truth: box mAP {sc['ap_bbox']:.3f} (AP50 {sc['ap50_bbox']:.3f}), mask mAP "
            f"{sc['ap_segm']:.3f} (AP50 {sc['ap50_segm']:.3f}), recall@IoU0.5 {sc['recall50']:.3f} of "
            f"{int(sc['instances'])} instances at least 10 % visible (detections scoring >= 0.5)"
        )
        from bopnp.metrics.detection import format_confusion

        click.echo("classes given to those instances at IoU >= 0.5 (bg: no instance there; miss: not detected):")
        click.echo(format_confusion(sc["confusion"], sorted(source.obj_ids)))
