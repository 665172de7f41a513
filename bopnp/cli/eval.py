"""``bopnp eval``: BOP19 scores of results CSVs (VSD, MSSD, MSPD, AR, ADD(-S))."""

from __future__ import annotations

from pathlib import Path

import click

from bopnp.cli.options import bop_path_option


@click.command("eval")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@bop_path_option
@click.option(
    "--targets",
    default="test_targets_bop19.json",
    show_default=True,
    help="Targets file: a name in the dataset folder, or a path.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: results/eval/<csv stem>; with several CSVs, one subfolder <csv stem> "
    "each]. Several CSVs of one file name (a/m_lmo-test.csv, b/m_lmo-test.csv) are refused: "
    "their outputs would share a folder.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a finished evaluation of another results file in the output folder (a re-run on the "
    "same file, or an unfinished evaluation, is always replaced).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Device of the batched errors (auto: cuda when present).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes rendering VSD [default: one per core, at most 4, on CPU; 1 with CUDA].",
)
@click.option(
    "--rot-tol",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    help="Tolerance of the rotation check of the CSV: |R^T R - I| and |det R - 1| [default: 0.05, "
    "what BOP's own GT rotations need].",
)
@click.option("--no-vsd", is_flag=True, help="Skip VSD (no rendering); AR is then n/a.")
@click.option("--no-plots", is_flag=True, help="Do not write the PNG recall curves.")
@click.option("--leaderboard", is_flag=True, help="After the evaluations, print one table ranking all CSVs by AR.")
@click.option(
    "--backend",
    type=click.Choice(["bopnp", "bop_toolkit"]),
    default="bopnp",
    show_default=True,
    help="bop_toolkit: also run the official eval_bop19_pose.py on the same files, in its own interpreter "
    "(--toolkit-python), and print both tables side by side with their differences.",
)
@click.option(
    "--toolkit-python",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --backend bop_toolkit: the python of an environment with bop_toolkit (make bop-toolkit-env "
    "TOOLKIT=path/to/bop_toolkit builds one). [default: $BOPNP_TOOLKIT_PYTHON, else this python]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def eval_cmd(
    results,
    bop_path,
    targets,
    out_dir,
    overwrite,
    device,
    workers,
    rot_tol,
    no_vsd,
    no_plots,
    leaderboard,
    backend,
    toolkit_python,
    quiet,
):
    """Score BOP19 results CSVs (METHOD_DATASET-SPLIT.csv) as the BOP leaderboard does.

    Writes scores_bop19.json (bop_toolkit's keys, plus per-object recalls and ADD(-S)), errors.csv
    (every estimate's errors), report.txt and recall plots to the output folder, and prints a table.
    scores_bop19.json is written last: a folder without it holds an unfinished evaluation.
    Images without a depth image get no VSD: VSD and AR are then reported as n/a and MSSD / MSPD are
    still computed for every target.

    Deliberate divergence from bop_toolkit's loader: a CSV with a NaN or infinite score, R or t, or an R
    that is not a rotation (see --rot-tol), is refused with every bad line listed, where bop_toolkit's
    loader accepts it and scores the numbers as they are. Rows that bop_toolkit accepts and scores
    (of scenes the split lacks, exact repeats, times above an hour per image) are scored the same and
    listed in the report's notes.

    \b
    Examples:
      bopnp eval results/mymethod_lmo-test.csv
      bopnp eval results/*.csv --leaderboard
      bopnp eval results/mymethod_lmo-test.csv --backend bop_toolkit --toolkit-python ENV/bin/python
                                   # and the official scripts in their own environment, side by side
    """
    from bopnp.cli.main import error_message, set_report_dir
    from bopnp.errors import BopnpError

    python = None
    if backend == "bop_toolkit":  # before any evaluation: a missing toolkit fails at once
        from bopnp.errors import ConfigError
        from bopnp.eval.toolkit import find_toolkit
        from bopnp.eval.toolkit import toolkit_python as which_python

        if Path(targets).name != targets:
            raise ConfigError(
                f"--backend bop_toolkit reads the targets from the dataset folder: pass a file name there, not the "
                f"path {targets}"
            )
        python = which_python(toolkit_python)
        find_toolkit(python)
    rows = []
    several = len(results) > 1
    _refuse_shared_output_folders(results, out_dir)
    for csv in results:
        out = out_dir / csv.stem if (out_dir is not None and several) else out_dir
        # where the CLI writes the full list of a long error report
        report_dir = out if out is not None else Path("results") / "eval" / csv.stem
        set_report_dir(report_dir)
        try:
            from bopnp.eval.pipeline import EvalConfig, evaluate

            extra = {} if rot_tol is None else {"rot_tol": rot_tol}
            cfg = EvalConfig(
                results_csv=csv,
                bop_path=bop_path,
                targets=targets,
                out_dir=out,
                device=device,
                vsd=not no_vsd,
                plots=not no_plots,
                progress=not quiet,
                workers=workers,
                overwrite=overwrite,
                **extra,
            )
            result = evaluate(cfg)
            scores = result.scores
            click.echo(result.table)
            click.echo(f"\nwritten to {result.out_dir}")
            if backend == "bop_toolkit":
                scores = {**scores, "bop_toolkit": _compare_with_toolkit(csv, bop_path, targets, result, python)}
            rows.append(scores)
        except (BopnpError, OSError) as exc:
            if not several:
                raise
            message = error_message(exc, report_dir)
            click.secho(f"error: {csv}: {message}", fg="red", err=True)
            rows.append({"file": str(csv), "error": message})
        if several:
            click.echo("")
    if leaderboard:
        from bopnp.eval.report import format_leaderboard

        click.echo(format_leaderboard(rows))
    if any("error" in r for r in rows):
        raise SystemExit(2)


def _compare_with_toolkit(csv: Path, bop_path, targets: str, result, python: str) -> dict:
    """Run bop_toolkit on the same files (into ``OUT/bop_toolkit``), print the two tables side by side and write
    them to ``OUT/bop_toolkit/comparison.txt``; bop_toolkit's scores."""
    from bopnp.bop.atomic import write_text_atomic
    from bopnp.eval.toolkit import format_comparison, run_bop_toolkit

    out = Path(result.out_dir) / "bop_toolkit"
    click.echo(f"\nbop_toolkit's eval_bop19_pose.py ({python}) on the same files ...")
    theirs = run_bop_toolkit(csv, bop_path, targets=targets, out_dir=out, python=python)
    table = format_comparison(result.scores, theirs)
    click.echo(f"\n{table}\n\nbop_toolkit's outputs: {theirs['eval_dir']}")
    write_text_atomic(out / "comparison.txt", table + "\n")
    return theirs


def _refuse_shared_output_folders(results, out_dir) -> None:
    """Two results files of one name would write into one output folder, the second replacing the first.

    Raises:
        click.BadParameter: naming the files and what to do.
    """
    by_stem: dict[str, list[Path]] = {}
    for csv in results:
        by_stem.setdefault(csv.stem, []).append(csv)
    clashes = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    if not clashes:
        return
    stem, paths = next(iter(clashes.items()))
    folder = (out_dir / stem) if out_dir is not None else Path("results") / "eval" / stem
    same = len({p.resolve() for p in paths}) == 1
    if same:
        what = f"{paths[0]} is given {len(paths)} times"
    else:
        what = f"{', '.join(map(str, paths))} share the name {paths[0].name}"
    fix = (
        "pass it once"
        if same
        else "rename one (keeping METHOD_DATASET-SPLIT, e.g. "
        f"{stem.split('_', 1)[0]}-v2_{stem.split('_', 1)[-1]}.csv), "
        "or evaluate them one at a time with different --out folders"
    )
    raise click.BadParameter(f"{what}: their outputs would share {folder}; {fix}", param_hint="RESULTS")
