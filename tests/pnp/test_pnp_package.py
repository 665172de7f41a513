"""The bopnp.pnp package: its modules import each other without cycles and never another module's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import bopnp.pnp

PKG = Path(bopnp.pnp.__file__).parent


def _imports() -> dict[str, list[tuple[str, str]]]:
    """Module -> [(imported bopnp.pnp module, imported name or "")] from every import statement, lazy ones included."""
    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(PKG.glob("*.py")):
        mod = path.stem
        edges = out.setdefault(mod, [])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "bopnp.pnp":
                edges += [(a.name, "") for a in node.names]  # from bopnp.pnp import objective as obj
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bopnp.pnp."):
                edges += [(node.module.split(".")[2], a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                edges += [(a.name.split(".")[2], "") for a in node.names if a.name.startswith("bopnp.pnp.")]
    return out


def test_no_module_imports_a_private_name_of_another():
    private = [
        f"{mod} imports {name} from {src}"
        for mod, edges in _imports().items()
        for src, name in edges
        if name.startswith("_")
    ]
    assert not private


def test_no_import_cycles():
    graph = {
        mod: {src for src, _ in edges if (PKG / f"{src}.py").exists() and src != "__init__"}
        for mod, edges in _imports().items()
        if mod != "__init__"
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for nxt in sorted(graph.get(mod, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [mod, nxt])
            if nxt not in state:
                visit(nxt, path + [mod])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert "solver" not in graph["opencv"] and "result" in graph["opencv"]


def test_public_api_is_unchanged():
    from bopnp.pnp import PnPResult, RansacConfig, projection_loss, solve_pnp

    assert set(bopnp.pnp.__all__) == {"solve_pnp", "PnPResult", "RansacConfig", "projection_loss"}
    assert PnPResult.__module__ == "bopnp.pnp.result" and callable(solve_pnp) and callable(projection_loss)
    assert RansacConfig().threshold_px > 0
