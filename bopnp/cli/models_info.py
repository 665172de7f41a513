"""``bopnp models-info NAME``: compute models_info.json (diameter, box, symmetries) from the meshes."""

from __future__ import annotations

import time

import click

from bopnp.cli.options import bop_path_option


@click.command("models-info")
@click.argument("name")
@bop_path_option
@click.option(
    "--symmetries",
    type=click.Choice(["detect", "keep", "none"]),
    default="detect",
    show_default=True,
    help="detect: search each mesh for rotational symmetries; keep: copy them from the existing models_info.json; "
    "none: write none.",
)
@click.option(
    "--appearance",
    is_flag=True,
    help="A symmetry must also map the vertex colours (or the texture) onto equal colours, as BOP's symmetries "
    "are of shape and texture: a box printed differently on each side has none.",
)
@click.option(
    "--scale",
    type=float,
    default=None,
    help="Multiply the vertices by this factor (1000: metres -> mm) and rewrite the meshes in mm; each original "
    "is kept beside it as obj_XXXXXX.ply.unscaled.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing models_info.json (else it is kept and compared).")
def models_info(name, bop_path, symmetries, appearance, scale, overwrite):
    """Compute models_info.json for the meshes of the BOP dataset NAME (its models/ folder), or of a folder.

    For every obj_XXXXXX.ply (mm): the diameter (largest distance between two vertices, exact), the bounding box
    (min_x/y/z, size_x/y/z) and the rotational symmetries (symmetries_discrete as 4x4 row-major transforms in mm,
    symmetries_continuous as axis and offset), found on points sampled from the surface. A symmetry is accepted
    when it maps the surface onto itself within 1 % of the diameter on average and 8 % at worst. The file is
    written atomically; an existing one is kept, and its differences from the computed values are printed,
    unless --overwrite.

    \b
    Examples:
      bopnp models-info mydata                       # datasets/mydata/models/models_info.json
      bopnp models-info path/to/models --overwrite   # a folder of obj_XXXXXX.ply meshes
      bopnp models-info lmo --symmetries none        # compare LM-O's diameters and boxes with the meshes
      bopnp models-info scans --scale 1000           # meshes exported in metres
      bopnp models-info mydata --appearance          # shape and colour must both match
    """
    from bopnp.bop.io import load_models_info, load_ply, save_models_info
    from bopnp.bop.models_info import ModelsInfoConfig, compute_model_info, differences, model_files, rescale_meshes
    from bopnp.cli.options import dataset_root
    from bopnp.errors import DatasetError

    if scale is not None and not scale > 0:
        raise click.BadParameter(f"must be a positive number (1000: metres -> mm), got {scale}", param_hint="--scale")
    config = ModelsInfoConfig(symmetries=symmetries, appearance=appearance, scale=scale)
    config.validate()
    root = dataset_root(bop_path, name)
    folder = root / "models" if (root / "models").is_dir() else root
    files = model_files(folder)
    info_path = folder / "models_info.json"
    backups = [p for p in files.values() if p.with_name(p.name + ".unscaled").exists()]
    if scale is not None and backups:
        raise click.BadParameter(
            f"{backups[0]}.unscaled exists: the meshes were rescaled already; drop --scale, or put the originals back",
            param_hint="--scale",
        )

    existing = None
    if info_path.is_file():
        try:
            existing = load_models_info(info_path)
        except DatasetError as exc:
            if not overwrite or symmetries == "keep":
                raise DatasetError(f"{exc}\n(--overwrite replaces the file with the computed values)") from None
            click.echo(f"{info_path}: unreadable, replaced (--overwrite)")
    elif symmetries == "keep":
        raise click.BadParameter(f"{info_path} does not exist: there is nothing to keep", param_hint="--symmetries")

    start, cpu = time.perf_counter(), time.process_time()
    reports = {}
    for obj_id, path in files.items():
        report = compute_model_info(obj_id, load_ply(path), path, config, (existing or {}).get(obj_id))
        reports[obj_id] = report
        info = report.info
        n_sym = len(info.symmetries_discrete)
        sym = (f"{n_sym} discrete symmetr{'y' if n_sym == 1 else 'ies'}" if n_sym else "no discrete symmetry") + (
            f", {len(info.symmetries_continuous)} continuous" if info.symmetries_continuous else ""
        )
        size = " x ".join(f"{s:.2f}" for s in info.size_mm)
        click.echo(f"{path.name}: diameter {info.diameter_mm:.3f} mm, box {size} mm, {sym} ({report.seconds:.1f} s)")
        for note in report.notes:
            click.echo(f"  {note}")
    took = f"{time.perf_counter() - start:.1f} s ({time.process_time() - cpu:.1f} s CPU)"

    if existing is not None and not overwrite:
        changed = 0
        for obj_id, report in reports.items():
            if obj_id not in existing:
                click.echo(f"obj {obj_id}: not in {info_path.name}")
                changed += 1
                continue
            diffs = differences(existing[obj_id], report.info)
            changed += bool(diffs)
            for line in diffs:
                click.echo(f"obj {obj_id}: {line}")
        gone = sorted(set(existing) - set(reports))
        if gone:
            click.echo(f"{info_path.name} lists objects without a mesh: {', '.join(map(str, gone))}")
        verdict = "agrees with the meshes" if not changed and not gone else f"differs for {changed + len(gone)} objects"
        click.echo(f"{info_path} kept: it {verdict} (--overwrite replaces it); {len(reports)} meshes in {took}")
        return

    dropped = sorted(set(existing or {}) - set(reports))
    if dropped:
        click.echo(f"dropped from {info_path.name}, no mesh: objects {', '.join(map(str, dropped))}")
    save_models_info(info_path, {obj_id: r.info for obj_id, r in reports.items()})
    if scale is not None:
        rescale_meshes(files, scale)
        click.echo(f"meshes rewritten in mm (x {scale:g}); the originals are kept as obj_XXXXXX.ply.unscaled")
    click.echo(f"wrote {info_path}: {len(reports)} objects in {took}")
