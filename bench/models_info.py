"""Benchmark: ``bopnp models-info`` per model of a models folder (LM-O's by default).

For each ``obj_XXXXXX.ply`` it times reading the PLY, the exact diameter on the convex hull against the baseline
bop_toolkit uses (every pair of vertices, ``scipy.spatial.distance.pdist``; skipped above 30 000 vertices), and the
symmetry search, in wall and CPU seconds, and prints what was found. The last row sums the folder: the target is
all 8 LM-O models in 30 s on 2 cores, symmetry search included.

    python bench/models_info.py                          # $BOPNP_LMO_DIR/models or ../shared/data/lmo/models
    python bench/models_info.py path/to/models --no-baseline
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bopnp.bop.io import load_ply  # noqa: E402
from bopnp.bop.models_info import ModelsInfoConfig, compute_model_info, diameter_mm, model_files  # noqa: E402

BASELINE_MAX_VERTICES = 30_000


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    default = Path(os.environ.get("BOPNP_LMO_DIR", repo.parent / "shared" / "data" / "lmo")) / "models"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="?", type=Path, default=default)
    parser.add_argument("--no-baseline", action="store_true", help="skip the all-pairs diameter")
    args = parser.parse_args()

    from scipy.spatial.distance import pdist

    files = model_files(args.models)
    print(f"models: {args.models} ({len(files)}); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    head = (
        f"{'obj':>4} {'vertices':>9} {'faces':>9} {'read s':>7} {'hull ms':>8} {'pairs ms':>9} {'x hull':>7} "
        f"{'search s':>9} {'CPU s':>6} symmetries"
    )
    print(head)
    total_wall = total_cpu = 0.0
    for obj_id, path in files.items():
        mesh, t_read, c_read = _timed(lambda p=path: load_ply(p))
        v = np.asarray(mesh.vertices_mm, np.float64)
        _, t_hull, _ = _timed(lambda v=v: diameter_mm(v))
        pairs = "-"
        ratio = "-"
        if not args.no_baseline and len(v) <= BASELINE_MAX_VERTICES:
            _, t_pairs, _ = _timed(lambda v=v: pdist(v).max())
            pairs, ratio = f"{1000 * t_pairs:9.0f}", f"{t_pairs / t_hull:7.1f}"
        report, t_all, c_all = _timed(lambda m=mesh, p=path, i=obj_id: compute_model_info(i, m, p, ModelsInfoConfig()))
        info = report.info
        sym = f"{len(info.symmetries_discrete)} discrete, {len(info.symmetries_continuous)} continuous"
        total_wall += t_read + t_all
        total_cpu += c_read + c_all
        print(
            f"{obj_id:>4} {len(v):>9} {len(mesh.faces):>9} {t_read:7.2f} {1000 * t_hull:8.0f} {pairs:>9} {ratio:>7} "
            f"{t_all:9.2f} {c_all:6.2f} {sym}"
        )
    print(f"all: {total_wall:.1f} s wall, {total_cpu:.1f} s CPU (read + diameter + box + symmetry search); target 30 s")


if __name__ == "__main__":
    main()
