"""Fuzz ``solve_pnp`` against ``cv2.solvePnP`` (SOLVEPNP_ITERATIVE) on well-posed random problems.

Every problem is one item drawn from its seed (:func:`fuzz_problem`): 6 to 39 points of a small object (radius
``--radius`` mm) at 400 to 1500 mm, 3 px Gaussian noise by default. A problem counts as a miss when OpenCV returns a
pose with every point in front of the camera but ``solve_pnp`` says ``valid=False`` or ends at a higher cost::

    PYTHONPATH=. python tests/pnp/fuzz_pnp.py --problems 2000 --radius 3 40

Prints one line per miss (seed, N, radius, both costs, iterations) and the count; exit status 1 if any.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import torch

from bopnp.geometry import project_points, random_rotation, transform_points
from bopnp.pnp import objective as obj
from bopnp.pnp import solve_pnp

K_LM = [[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]]


def fuzz_problem(seed: int, radius_mm: tuple[float, float] = (3.0, 40.0), noise_px: float = 3.0) -> dict:
    """One float64 problem (batch of 1): x2d (1, N, 2) px, x3d (1, N, 3) mm, K (1, 3, 3), true R (1, 3, 3), t (1, 3)."""
    g = torch.Generator().manual_seed(seed)
    N = int(torch.randint(6, 40, (1,), generator=g))
    radius = float(torch.empty(1, dtype=torch.float64).uniform_(*radius_mm, generator=g))
    depth = float(torch.empty(1, dtype=torch.float64).uniform_(400.0, 1500.0, generator=g))
    x3d = torch.randn(1, N, 3, generator=g, dtype=torch.float64) * radius
    R = random_rotation(1, generator=g, dtype=torch.float64)
    t = torch.randn(1, 3, generator=g, dtype=torch.float64) * 40.0
    t[:, 2] += depth
    K = torch.tensor(K_LM, dtype=torch.float64)[None]
    x2d = project_points(transform_points(R, t, x3d), K)
    x2d = x2d + noise_px * torch.randn(1, N, 2, generator=g, dtype=torch.float64)
    return dict(x2d=x2d, x3d=x3d, K=K, R=R, t=t, radius_mm=radius)


def reprojection_cost(R, t, p) -> tuple[float, float]:
    """Sum of squared reprojection errors (px^2) of the pose (R (1, 3, 3), t (1, 3) mm) and its smallest depth (mm)."""
    A, c = p["K"][:, :2, :2], p["K"][:, :2, 2]
    pt = obj.point_terms(R, t, p["x3d"].mT, A, c, p["x2d"].mT, torch.ones_like(p["x2d"][..., 0]))
    return float(obj.cost(pt)), float(pt.X[:, 2].min())


def opencv_cost(p) -> float | None:
    """Reprojection cost of ``cv2.solvePnP``'s pose, or None where it fails or puts a point behind the camera."""
    ok, rvec, tvec = cv2.solvePnP(
        p["x3d"][0].numpy(), p["x2d"][0].numpy(), p["K"][0].numpy(), None, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return None
    R = torch.from_numpy(cv2.Rodrigues(rvec)[0])[None]
    cost, z_min = reprojection_cost(R, torch.from_numpy(tvec.reshape(1, 3)), p)
    return cost if z_min > 0 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--radius", type=float, nargs=2, default=(3.0, 40.0), metavar=("MIN", "MAX"), help="mm")
    ap.add_argument("--noise", type=float, default=3.0, help="px")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    misses = 0
    for seed in range(args.seed, args.seed + args.problems):
        p = fuzz_problem(seed, tuple(args.radius), args.noise)
        cost_cv = opencv_cost(p)
        if cost_cv is None:
            continue
        res = solve_pnp(p["x2d"], p["x3d"], p["K"])
        cost = float(res.cost[0])
        if not bool(res.valid[0]) or cost > cost_cv * (1 + 1e-6) + 1e-9:
            misses += 1
            print(
                f"seed {seed}: N {p['x2d'].shape[1]}, radius {p['radius_mm']:.1f} mm, valid {bool(res.valid[0])}, "
                f"cost {cost:.6g} px^2 (OpenCV {cost_cv:.6g}), {int(res.iterations[0])} iterations",
                flush=True,
            )
    print(f"{misses} misses of {args.problems} problems")
    return int(misses > 0)


if __name__ == "__main__":
    sys.exit(main())
