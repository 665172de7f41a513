"""Write the reference results ``test_pnp_reference.py`` compares ``solve_pnp`` with.

The file holds, for a fixed set of problems (regenerated from their seeds by the test, never stored), the pose, the
validity, the cost and the gradient of a fixed loss w.r.t. every input, as the solver computed them when the file was
written. A faster solver must keep them: the test reruns the problems and compares within stated tolerances.

Problems, all float64:
- ``fuzz``: seeds 0 to 159 of :func:`fuzz_pnp.fuzz_problem` (6 to 39 points of a 3 to 40 mm object, 3 px noise:
  the multi-start, retry and near-degenerate paths), one item per call as the fuzz script solves them;
- ``batch``: :func:`pnp_problems.make_problem` B=12 N=200, 1 px noise, random weights, two items made degenerate
  (collinear points, three usable points), one with a non-finite pixel;
- ``ransac``: :func:`pnp_problems.with_outliers` B=4 N=300, 50% outliers, default :class:`RansacConfig`.

Poses and costs are stored in float64, gradients in float32 (7 significant digits: more than the tests compare), the
fuzz problems' gradients only w.r.t. the pixels and K, all packed into a few tensors (the file stays small).

    PYTHONPATH=. python tests/pnp/make_reference.py    # rewrites tests/pnp/reference_results.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuzz_pnp import fuzz_problem  # noqa: E402
from pnp_problems import make_problem, with_outliers  # noqa: E402

from bopnp.pnp import RansacConfig, solve_pnp  # noqa: E402

OUT = HERE / "reference_results.pt"
FUZZ_SEEDS = range(160)


def _loss_weights(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def solve_with_grads(x2d, x3d, K, w=None, ransac=None, seed: int = 0) -> dict:
    """Solve and backpropagate ``sum(pose * v)`` for a fixed random ``v``; every tensor float64 on the CPU."""
    leaves = [v.clone().requires_grad_(True) for v in (x2d, x3d, K)]
    ww = None if w is None else w.clone().requires_grad_(True)
    res = solve_pnp(*leaves, ww, ransac=ransac)
    (res.pose * _loss_weights(tuple(res.pose.shape), seed)).sum().backward()
    out = {"R": res.R.detach(), "t": res.t.detach(), "valid": res.valid, "cost": res.cost, "inliers": res.inliers}
    grads = {"g_x2d": leaves[0].grad, "g_x3d": leaves[1].grad, "g_K": leaves[2].grad}
    if ww is not None:
        grads["g_w"] = ww.grad
    return out | {k: v.float() for k, v in grads.items()}


def _pack_fuzz(rows: list[dict]) -> dict:
    """One tensor per field over the fuzz problems; per-point gradients zero-padded to the largest N (``n`` says
    how many are real)."""
    n = torch.tensor([r["g_x2d"].shape[1] for r in rows])
    g = torch.zeros(len(rows), int(n.max()), 2)
    for i, r in enumerate(rows):
        g[i, : n[i]] = r["g_x2d"][0]
    cat = lambda k: torch.cat([r[k] for r in rows])  # noqa: E731
    return {
        "n": n,
        "R": cat("R"),
        "t": cat("t"),
        "valid": cat("valid"),
        "cost": cat("cost"),
        "g_x2d": g,
        "g_K": cat("g_K"),
    }


def batch_problem() -> dict:
    p = make_problem(B=12, N=200, noise_px=1.0, seed=5)
    w = torch.rand(12, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) + 0.1
    x3d = p["x3d"].clone()
    x3d[3] = torch.linspace(-50, 50, 200, dtype=torch.float64)[:, None] * torch.tensor([1.0, 0.5, -0.2])  # collinear
    w[7, 3:] = 0  # three usable points
    x2d = p["x2d"].clone()
    x2d[9, 17, 0] = float("nan")  # one point dropped
    return dict(x2d=x2d, x3d=x3d, K=p["K"], w=w)


def ransac_problem() -> tuple[dict, RansacConfig]:
    p, _ = with_outliers(B=4, N=300, frac=0.5, seed=7)
    return p, RansacConfig(threshold_px=3.0)


def compute() -> dict:
    torch.set_num_threads(1)
    fuzz = []
    for seed in FUZZ_SEEDS:
        p = fuzz_problem(seed)
        fuzz.append(solve_with_grads(p["x2d"], p["x3d"], p["K"], seed=seed))
    b = batch_problem()
    batch = solve_with_grads(b["x2d"], b["x3d"], b["K"], b["w"], seed=1)
    p, cfg = ransac_problem()
    ransac = solve_with_grads(p["x2d"], p["x3d"], p["K"], ransac=cfg, seed=2)
    return {"fuzz": _pack_fuzz(fuzz), "batch": batch, "ransac": ransac}


def main() -> int:
    ref = compute()
    tmp = OUT.with_suffix(".tmp")
    torch.save(ref, tmp)
    tmp.replace(OUT)
    fuzz = ref["fuzz"]
    print(f"wrote {OUT.name}: {len(fuzz['n'])} fuzz problems ({int(fuzz['valid'].sum())} valid), batch, ransac")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
