"""The package's layers import only the layers before them (no import runs back up)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bopnp"

#: in order; a module may import its own layer and the ones listed before it
LAYERS = [
    "errors",
    "device",
    "checks",
    "parallel",
    "progress",
    "geometry",
    "pnp",
    "bop",
    "render",
    "synth",
    "data",
    "metrics",
    "models",
    "train",
    "infer",
    "eval",
    "viz",
    "cli",
    "__main__",
]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "bopnp" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_earlier_layers(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    assert own in LAYERS, f"{own} is not a known layer; add it to LAYERS in its place"
    bad = [
        f"line {line}: imports {name}"
        for line, name in _imports(path)
        if (layer := _layer(name)) is not None and layer in LAYERS and LAYERS.index(layer) > LAYERS.index(own)
    ]
    assert not bad, f"{path.relative_to(PACKAGE)} imports a later layer: " + "; ".join(bad)
