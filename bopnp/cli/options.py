"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

bop_path_option = click.option(
    "--bop-path",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="BOP_PATH",
    default=Path("datasets"),
    show_default=True,
    show_envvar=True,
    help="Folder that holds BOP datasets (one subfolder per dataset).",
)


def dataset_root(bop_path: Path, name: str) -> Path:
    """The dataset folder a command's NAME argument means: ``bop_path / name``, else ``name`` itself when it
    is a folder's path. An empty or blank NAME is refused (it would mean the BOP path itself).

    Raises:
        click.BadParameter: NAME is empty.
    """
    if not name.strip():
        raise click.BadParameter(
            "give a dataset name (a folder under --bop-path, e.g. lmo) or a dataset folder's path, not an empty string",
            param_hint="NAME",
        )
    root = Path(bop_path) / name
    if not root.is_dir() and Path(name).is_dir():
        root = Path(name)
    return root


def parse_object_ids(ctx, param, value: str | None) -> tuple[int, ...] | None:
    """Click callback of ``--objects``: ``"1,5,8"`` -> ``(1, 5, 8)`` (sorted, unique); None stays None."""
    if value is None:
        return None
    try:
        ids = tuple(sorted({int(v) for v in value.replace(" ", "").split(",") if v}))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated object ids like 1,5,8, got {value!r}") from None
    if not ids or min(ids) < 1:
        raise click.BadParameter(f"expected positive object ids like 1,5,8, got {value!r}")
    return ids
