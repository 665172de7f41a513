"""``bopnp eval``: BOP19 scores of results CSVs (VSD, MSSD, MSPD, AR, ADD(-S))."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bopnp.cli.options import bop_path_option


@click.command("eval")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@bop_path_option
@click.option("--targets", default="test_targets_bop19.json", show_default=True,
              help="Targets file: a name in the dataset folder, or a path.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: results/eval/<csv stem>; with several CSVs, one subfolder each].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Device of the batched errors (auto: cuda when present).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes rendering VSD [default: one per core, at most 4, on CPU; 1 with CUDA].")
@click.option("--rot-tol", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=None,
              help="Tolerance of the rotation check of the CSV: |R^T R - I| and |det R - 1| [default: 0.05, "
                   "what BOP's own GT rotations need].")
@click.option("--no-vsd", is_flag=True, help="Skip VSD (no rendering); AR is then n/a.")
@click.option("--no-plots", is_flag=True, help="Do not write the PNG recall curves.")
@click.option("--leaderboard", is_flag=True, help="After the evaluations, print one table ranking all CSVs by AR.")
@click.option("--backend", type=click.Choice(["bopnp", "bop_toolkit"]), default="bopnp", show_default=True,
              help="bop_toolkit: run the official eval_bop19_pose.py instead (needs bop_toolkit_lib installed).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def eval_cmd(results, bop_path, targets, out_dir, device, workers, rot_tol, no_vsd, no_plots, leaderboard, backend, quiet):
    """Score BOP19 results CSVs (METHOD_DATASET-SPLIT.csv) as the BOP leaderboard does.

    Writes scores_bop19.json (bop_toolkit's keys, plus per-object recalls and ADD(-S)), errors.csv
    (every estimate's errors), report.txt and recall plots to the output folder, and prints a table.
    Images without a depth image get no VSD: VSD and AR are then reported as n/a and MSSD / MSPD are
    still computed for every target.

    \b
    Examples:
      bopnp eval results/mymethod_lmo-test.csv
      bopnp eval results/*.csv --leaderboard
      bopnp eval results/mymethod_lmo-test.csv --backend bop_toolkit   # the official scripts
    """
    from bopnp.errors import BopnpError

    rows = []
    several = len(results) > 1
    for csv in results:
        out = out_dir / csv.stem if (out_dir is not None and several) else out_dir
        try:
            if backend == "bop_toolkit":
                from bopnp.eval.toolkit import run_bop_toolkit

                scores = run_bop_toolkit(csv, bop_path, targets=targets, out_dir=out)
                click.echo(json.dumps(scores, indent=2))
            else:
                from bopnp.eval.pipeline import EvalConfig, evaluate

                extra = {} if rot_tol is None else {"rot_tol": rot_tol}
                cfg = EvalConfig(results_csv=csv, bop_path=bop_path, targets=targets, out_dir=out, device=device,
                                 vsd=not no_vsd, plots=not no_plots, progress=not quiet, workers=workers, **extra)
                result = evaluate(cfg)
                scores = result.scores
                click.echo(result.table)
                click.echo(f"\nwritten to {result.out_dir}")
            rows.append(scores)
        except BopnpError as exc:
            if not several:
                raise
            click.secho(f"error: {csv}: {exc}", fg="red", err=True)
            rows.append({"file": str(csv), "error": str(exc)})
        if several:
            click.echo("")
    if leaderboard:
        from bopnp.eval.report import format_leaderboard

        click.echo(format_leaderboard(rows))
    if any("error" in r for r in rows):
        raise SystemExit(2)
