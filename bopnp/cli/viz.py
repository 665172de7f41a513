"""``bopnp viz NAME``: a PNG of some images of a split with their GT poses (and the estimates of a BOP19
results CSV), or of the training crops ``bopnp prepare`` wrote."""

from __future__ import annotations

from pathlib import Path

import click

from bopnp.cli.options import bop_path_option

#: default folder of the pictures
VIZ_DIR = Path("results") / "viz"


def _png_path(ctx, param, value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"{value}: pictures are written as PNG; give a file name ending in .png")
    return value


def choose_images(
    scenes: tuple[int, ...], ims: tuple[int, ...], split_scenes: list[int]
) -> list[tuple[int, int]] | None:
    """The (scene_id, im_id) pairs that ``--scene`` / ``--im`` name, or None when no image is named.

    ``--im`` with one ``--scene`` (or in a split of one scene): those images of that scene; with as
    many ``--scene`` as ``--im``: the pairs, in order. ``--scene`` alone restricts the choice to those
    scenes (handled by the caller).
    """
    if not ims:
        return None
    if len(scenes) == len(ims):
        return list(zip(scenes, ims))
    if len(scenes) == 1:
        return [(scenes[0], i) for i in ims]
    if not scenes and len(split_scenes) == 1:
        return [(split_scenes[0], i) for i in ims]
    if not scenes:
        raise click.BadParameter(
            f"the split has {len(split_scenes)} scenes: say which with --scene (e.g. --scene {split_scenes[0]} --im "
            f"{ims[0]})",
            param_hint="--im",
        )
    raise click.BadParameter(
        f"{len(scenes)} --scene for {len(ims)} --im: give one --scene for all images, or one --scene per --im",
        param_hint="--scene/--im",
    )


def default_out(
    name: str,
    split: str,
    results: Path | None,
    crops: bool,
    images: list[tuple[int, int]] | None,
    scenes: tuple[int, ...],
) -> Path:
    """``results/viz/<name>`` derived from the inputs."""
    if crops:
        return VIZ_DIR / f"{name}_{split}_crops.png"
    stem = results.stem if results is not None else f"{name}_{split}"
    if images:
        stem += "_" + "_".join(f"{s}-{i}" for s, i in images[:6]) + ("_etc" if len(images) > 6 else "")
    elif scenes:
        stem += "_scene" + "-".join(str(s) for s in scenes[:6])
    return VIZ_DIR / f"{stem}.png"


def _check_csv_dataset(csv: Path, name: str, split: str | None) -> str | None:
    """The split the CSV's file name names; a typed error when it names another dataset."""
    from bopnp.bop.results import parse_result_filename, split_folder
    from bopnp.errors import ResultsFormatError

    try:
        parsed = parse_result_filename(csv)
    except ResultsFormatError:
        return None  # not named the BOP way: the estimates' image and object ids are checked instead
    if parsed.dataset != name:
        raise ResultsFormatError(
            f"{csv.name} is named for dataset '{parsed.dataset}' (METHOD_DATASET-SPLIT.csv), not '{name}': "
            f"run `bopnp viz {parsed.dataset} --results {csv}`, or rename the file if it really is for {name}"
        )
    csv_split = split_folder(parsed)  # with bop_toolkit's default split type (tless-test -> test_primesense)
    if split is not None and split != csv_split:
        raise ResultsFormatError(
            f"{csv.name} is named for split '{csv_split}', not '{split}': leave --split out or pass --split {csv_split}"
        )
    return csv_split


def _crops_split(bop_path: Path, name: str, split: str | None) -> str:
    from bopnp.data.cache import cache_dir_for
    from bopnp.errors import DatasetError

    root = cache_dir_for(bop_path, name)
    if split is not None:
        return split
    prepared = sorted(p.name for p in root.iterdir() if (p / "cache.json").is_file()) if root.is_dir() else []
    if not prepared:
        if not (Path(bop_path) / name).is_dir():
            raise DatasetError(
                f"{Path(bop_path) / name} not found: create it with `bopnp synth {name}` or put a BOP dataset there, "
                "or pass --bop-path"
            )
        raise DatasetError(f"{root} holds no crops: run `bopnp prepare {name}` first")
    for preferred in ("train_pbr", "train"):
        if preferred in prepared:
            return preferred
    return prepared[0]


@click.command(
    "viz",
    epilog="""\b
Examples:
  bopnp viz demo                                   # 4 test images of datasets/demo with their GT
  bopnp viz lmo --scene 2 --im 3 --im 894          # two chosen images
  bopnp viz lmo --results results/mymethod_lmo-test.csv --images 6
  bopnp viz demo --crops                           # the training crops of `bopnp prepare demo`
  bopnp viz lmo --images 9 --out lmo_gt.png
  bopnp viz lmo --debug --scene 2 --im 3 --pose RUN --detections DETS.json   # the pose stage, step by step

With --results, estimates are coloured by the evaluator's matching when `bopnp eval` (or
`bopnp predict --eval`) has scored that very CSV (results/eval/STEM or CSV_DIR/eval/STEM, or --eval-dir).

The picture goes to results/viz/ unless --out says where; its path is printed.""",
)
@click.argument("name")
@bop_path_option
@click.option(
    "--split",
    default=None,
    help="Split folder. [default: the CSV's split with --results, the prepared split with --crops, else test]",
)
@click.option(
    "--images",
    "n_images",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Images to show, spread over the split (with --results: over the images that have estimates).",
)
@click.option(
    "--scene",
    "scenes",
    type=click.IntRange(min=0),
    multiple=True,
    help="Scene id (repeatable): only these scenes, or the scene of --im.",
)
@click.option(
    "--im", "ims", type=click.IntRange(min=0), multiple=True, help="Image id (repeatable): show exactly these images."
)
@click.option(
    "--results",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="BOP19 results CSV whose estimates are drawn over the images they refer to.",
)
@click.option("--crops", is_flag=True, help="Draw the training crops of `bopnp prepare NAME` instead of images.")
@click.option(
    "--per-object",
    type=click.IntRange(1, 32),
    default=8,
    show_default=True,
    help="With --crops: crops shown per object.",
)
@click.option(
    "--tile-width",
    type=click.IntRange(160, 4096),
    default=640,
    show_default=True,
    help="Wider images are shrunk to this width, pixels.",
)
@click.option(
    "--eval-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="With --results: the `bopnp eval` output folder of that CSV. [default: looked for]",
)
@click.option("--debug", is_flag=True, help="The pose stage on one image (--scene, --im) step by step; needs --pose.")
@click.option(
    "--pose",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="With --debug: the pose run folder or checkpoint.",
)
@click.option("--detections", default=None, help="With --debug: a detections json file, or 'gt'. [default: gt]")
@click.option(
    "--detector",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="With --debug: a detector checkpoint.",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="With --debug."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_png_path,
    default=None,
    help="Output PNG. [default: results/viz/<name from the inputs>.png]",
)
def viz(
    name,
    bop_path,
    split,
    n_images,
    scenes,
    ims,
    results,
    crops,
    per_object,
    tile_width,
    eval_dir,
    debug,
    pose,
    detections,
    detector,
    device,
    out,
):
    """Draw GT poses (and estimates) of some images of dataset NAME, or its training crops, into a PNG.

    Each image shows every GT instance's visible mask (fill and contour), its 3D bounding box and
    object id; with --results, each estimate's rendered silhouette, box and score in another colour.
    With --crops: per object a few crops with their coordinate target and masks.
    With --debug: one image through the pose stage (crops, coordinate and error maps, PnP pixels,
    reprojected model per detection).
    """
    if debug:
        if crops or results is not None:
            raise click.UsageError("--debug draws the pose stage on one image: leave out --crops and --results")
        _debug(name, bop_path, split or "test", scenes, ims, pose, detections, detector, device, tile_width, out)
        return
    if crops and (results is not None or scenes or ims):
        raise click.UsageError("--crops draws the prepared crops: leave out --results, --scene and --im")
    if crops:
        from bopnp.data.cache import cache_dir_for
        from bopnp.viz import crops_preview, save_png

        split = _crops_split(bop_path, name, split)
        picture = crops_preview(cache_dir_for(bop_path, name, split), per_object=per_object)
        path = save_png(out or default_out(name, split, None, True, None, ()), picture)
        click.echo(f"{path}  ({picture.shape[1]}x{picture.shape[0]})")
        return

    from bopnp.bop.dataset import BopDataset
    from bopnp.bop.results import load_results_csv
    from bopnp.errors import DatasetError
    from bopnp.viz import pick_images, save_png, scene_overview

    estimates = None
    if results is not None:
        split = _check_csv_dataset(results, name, split) or split
        estimates = load_results_csv(results)
        if not estimates:
            raise DatasetError(f"{results} holds no estimates (only the header): nothing to draw")
    split = split or "test"
    ds = BopDataset.from_bop_path(bop_path, name, split)
    chosen = choose_images(scenes, ims, ds.scene_ids())
    if chosen is None:
        chosen = pick_images(ds, n_images, estimates, scene_ids=scenes or None)
    else:
        for s, i in chosen:
            if i not in ds.scene_camera(s):
                have = ds.image_ids(s)
                raise DatasetError(
                    f"{ds.scene_path(s) / 'scene_camera.json'} has no image {i} (images {have[0]}..{have[-1]}, "
                    f"{len(have)} in all)"
                    if have
                    else f"scene {s} has no images"
                )
    title = f"{name} / {split}" + (f"  -  {results.name}" if results is not None else "")
    matches = None
    if results is not None:
        matches = _matches(results, eval_dir, ds)
    picture = scene_overview(ds, split, chosen, estimates, title=title, tile_width=tile_width, matches=matches)
    path = save_png(out or default_out(name, split, results, False, None if not ims else chosen, scenes), picture)
    click.echo(f"{path}  ({picture.shape[1]}x{picture.shape[0]}, {len(chosen)} image{'s' if len(chosen) != 1 else ''})")


def _matches(results: Path, eval_dir: Path | None, ds):
    """The evaluator's matching of the CSV's estimates, or None (said on the terminal) without an evaluation."""
    from bopnp.viz.matches import estimate_matches, find_evaluation

    found = find_evaluation(results, [eval_dir] if eval_dir is not None else [])
    if found is None:
        where = f"{eval_dir}" if eval_dir is not None else "results/eval/ or next to the CSV"
        click.echo(
            f"no evaluation of this very CSV in {where}: estimates drawn in one colour (run `bopnp eval {results}` "
            "to colour them by the evaluator's matching)",
            err=True,
        )
        return None
    width = ds.camera.width if ds.camera_path.is_file() else None
    if width is None:
        from bopnp.bop.images import image_size

        s = ds.scene_ids()[0]
        width = image_size(ds.image_path(s, ds.image_ids(s)[0]))[0]
    click.echo(f"estimates coloured by the evaluation in {found}", err=True)
    return estimate_matches(found / "errors.csv", ds.models_info, width)


def _debug(name, bop_path, split, scenes, ims, pose, detections, detector, device, tile_width, out) -> None:
    from bopnp.bop.dataset import BopDataset
    from bopnp.infer.debug import estimate_image
    from bopnp.viz import save_png
    from bopnp.viz.debug import debug_sheet

    if pose is None:
        raise click.UsageError("--debug needs --pose RUN_OR_CKPT (the pose network to look into)")
    if detections is not None and detector is not None:
        raise click.UsageError("give either --detections or --detector, not both")
    ds = BopDataset.from_bop_path(bop_path, name, split)
    chosen = choose_images(scenes, ims, ds.scene_ids())
    if not chosen or len(chosen) != 1:
        raise click.UsageError("--debug draws one image: give it with --scene S --im I")
    ((scene_id, im_id),) = chosen
    dets = detections if (detections is not None or detector is not None) else "gt"
    source = f"detector {Path(detector).name}" if detector is not None else "gt" if dets == "gt" else Path(dets).name
    image, K, res = estimate_image(ds, scene_id, im_id, pose, detections=dets, detector=detector, device=device)
    picture = debug_sheet(
        ds,
        scene_id,
        im_id,
        image,
        K,
        res,
        tile_width=tile_width,
        title=f"{name} / {split}: pose stage debug ({Path(pose).name}, detections: {source})",
    )
    path = save_png(out or VIZ_DIR / f"{name}_{split}_{scene_id}-{im_id}_debug.png", picture)
    valid = sum(r.valid for r in res)
    click.echo(f"{path}  ({picture.shape[1]}x{picture.shape[0]}, {len(res)} detections, {valid} poses)")
