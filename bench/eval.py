"""Benchmark: `bopnp eval` against bop_toolkit's `eval_bop19_pose.py` on the same LM-O inputs.

The inputs are the real LM-O test GT (200 images, 1445 targets) with perturbed estimates. bop_toolkit
needs a depth image and scene_gt_info for every image; the real files hold one depth image and no
scene_gt_info, so this script renders depth images of the GT scenes (and their visibility) into a
scratch BOP folder for the other 199 images (said in its output), and computes scene_gt_info from the
depth images there with bop_toolkit's definitions (bopnp.render.compute_gt_info). Both tools then read
that folder.

    python bench/eval.py                                     # bopnp only
    python bench/eval.py --bop-toolkit-python ENV/bin/python # side by side (make bop-toolkit-env makes ENV)

Prints a table with the wall time of each tool (each run as a command, start-up included; bopnp the
fastest of --repeat runs, with its default outputs: scores, errors.csv, report and plots), the ratio,
and the scores of both.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from lmo_data import default_lmo_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bopnp from this checkout, installed or not
DEFAULT_LMO = default_lmo_dir()
SCORE_KEYS = [
    "bop19_average_recall",
    "bop19_average_recall_vsd",
    "bop19_average_recall_mssd",
    "bop19_average_recall_mspd",
    "bop19_average_time_per_image",
]


def build_scratch(lmo: Path, root: Path) -> str:
    """scratch/lmo: the real LM-O files plus rendered depth and scene_gt_info; returns a summary line."""
    from bopnp.bop import io
    from bopnp.bop.records import GtInfo, ImageCamera
    from bopnp.render import compute_gt_info, get_renderer

    ds = root / "lmo"
    stamp = ds / ".complete-v2"  # v2: scene_gt_info from compute_gt_info (v1 counted render masks)
    if stamp.is_file():
        return stamp.read_text()
    if ds.exists():
        shutil.rmtree(ds)
    (ds / "test" / "000002" / "depth").mkdir(parents=True)
    for name in ("models", "models_eval"):
        (ds / name).symlink_to((lmo / name).resolve())
    for name in ("camera.json", "test_targets_bop19.json"):
        shutil.copy(lmo / name, ds / name)
    src = lmo / "test" / "000002"
    dst = ds / "test" / "000002"
    shutil.copy(src / "scene_gt.json", dst / "scene_gt.json")
    gt = io.load_scene_gt(src / "scene_gt.json")
    cams = io.load_scene_camera(src / "scene_camera.json")
    cam = io.load_camera(lmo / "camera.json")
    r = get_renderer(cam.width, cam.height)
    for obj_id in {g.obj_id for v in gt.values() for g in v}:
        r.add_model(obj_id, io.load_ply(lmo / "models" / f"obj_{obj_id:06d}.ply", load_texture=False))
    infos, new_cams, real, rendered = {}, {}, 0, 0
    for im_id, gts in gt.items():
        instances = [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts]
        real_depth = src / "depth" / f"{im_id:06d}.png"
        depth_path = dst / "depth" / f"{im_id:06d}.png"
        if real_depth.is_file():
            shutil.copy(real_depth, depth_path)
            new_cams[im_id] = cams[im_id]
            real += 1
        else:
            io.save_depth(depth_path, r.render(cams[im_id].K, instances).depth_mm, 0.1)
            new_cams[im_id] = ImageCamera(K=cams[im_id].K, depth_scale=0.1)
            rendered += 1
        # as bop_toolkit's calc_gt_info: visibility against the depth image the evaluation reads
        scale = new_cams[im_id].depth_scale
        depth_mm = io.load_depth(depth_path, 1.0 if scale is None else scale)
        infos[im_id] = [GtInfo(**e) for e in compute_gt_info(r, cams[im_id].K, instances, depth_mm)]
    io.save_scene_camera(dst / "scene_camera.json", new_cams)
    io.save_scene_gt_info(dst / "scene_gt_info.json", infos)
    summary = (
        f"depth: {real} real image(s) kept, {rendered} rendered from the GT poses (depth_scale 0.1); "
        "scene_gt_info computed from the depth images (bop_toolkit's definitions)"
    )
    stamp.write_text(summary)
    return summary


def write_estimates(lmo: Path, path: Path, seed: int) -> int:
    """Perturbed GT estimates for every target instance, plus low-scored wrong poses (so that the top-k
    selection matters); returns the number of rows."""
    from bopnp.bop import io
    from bopnp.bop.records import ResultRow
    from bopnp.bop.results import save_results_csv
    from bopnp.bop.symmetry import axis_angle_matrix

    rng = np.random.default_rng(seed)
    gt = io.load_scene_gt(lmo / "test" / "000002" / "scene_gt.json")
    ests = []

    def rot(aa):
        """Rotation by the axis-angle vector ``aa`` (radians)."""
        return axis_angle_matrix(float(np.linalg.norm(aa)), aa)

    for t in io.load_targets(lmo / "test_targets_bop19.json"):
        time_s = 0.1 + 0.001 * t.im_id
        for g in gt[t.im_id]:
            if g.obj_id != t.obj_id:
                continue
            R = rot(rng.normal(0, math.radians(rng.choice([1.0, 4.0, 10.0])), 3)) @ g.R_m2c
            U, _, Vt = np.linalg.svd(R)
            tt = g.t_m2c + rng.normal(0, 1, 3) * rng.choice([2.0, 8.0, 25.0]) * np.array([1.0, 1.0, 3.0])
            ests.append(ResultRow(t.scene_id, t.im_id, t.obj_id, float(rng.uniform(0.5, 1.0)), U @ Vt, tt, time_s))
            if rng.random() < 0.3:
                U, _, Vt = np.linalg.svd(rot(rng.normal(0, 1.0, 3)) @ g.R_m2c)
                ests.append(
                    ResultRow(
                        t.scene_id,
                        t.im_id,
                        t.obj_id,
                        float(rng.uniform(0.0, 0.5)),
                        U @ Vt,
                        g.t_m2c + rng.normal(0, 40, 3),
                        time_s,
                    )
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_results_csv(path, ests)  # the rotations are orthonormalised above (SVD): the reader's checks pass
    return len(ests)


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_bopnp(csv: Path, bop: Path, out: Path, device: str) -> tuple[float, float, dict]:
    """(wall s, cpu s of the command and its workers, scores)."""
    cmd = [
        sys.executable,
        "-m",
        "bopnp",
        "eval",
        str(csv),
        "--bop-path",
        str(bop),
        "--out",
        str(out),
        "--device",
        device,
        "-q",
    ]
    if importlib.util.find_spec("matplotlib") is None:
        cmd.append("--no-plots")  # a bare GPU image may lack it; said in the output
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    c0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0, _children_cpu() - c0, json.loads((out / "scores_bop19.json").read_text())


def run_toolkit(csv: Path, bop: Path, out: Path, python: str, workers: int) -> tuple[float, float, dict]:
    """bop_toolkit in its own interpreter, through the library (what `bopnp eval --backend bop_toolkit` runs)."""
    from bopnp.eval.toolkit import run_bop_toolkit

    c0, t0 = _children_cpu(), time.perf_counter()
    scores = run_bop_toolkit(csv, bop, out_dir=out, num_workers=workers, python=python)
    return time.perf_counter() - t0, _children_cpu() - c0, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--lmo",
        type=Path,
        default=DEFAULT_LMO,
        help="real LM-O files (default: $BOPNP_LMO_DIR, the copy beside the checkout, or $BOP_PATH/lmo)",
    )
    ap.add_argument(
        "--scratch", type=Path, default=REPO / "bench" / "out" / "eval", help="scratch folder (reused between runs)"
    )
    ap.add_argument(
        "--bop-toolkit-python",
        default=os.environ.get("BOPNP_TOOLKIT_PYTHON") or os.environ.get("BOP_TOOLKIT_PYTHON"),
        help="python of an environment where bop_toolkit is importable (`make bop-toolkit-env TOOLKIT=CLONE` makes "
        "one; default $BOPNP_TOOLKIT_PYTHON); omit to time bopnp only",
    )
    ap.add_argument("--bop-toolkit-workers", type=int, default=1, help="bop_toolkit's --num_workers")
    ap.add_argument("--repeat", type=int, default=3, help="runs of bopnp (the fastest counts; bop_toolkit runs once)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if not (args.lmo / "models_info.json").exists() and not (args.lmo / "models" / "models_info.json").is_file():
        print(f"LM-O files not found at {args.lmo}: pass --lmo DIR (a BOP lmo folder with test_targets_bop19.json)")
        return
    import torch

    bop = args.scratch / "bop"
    t0 = time.perf_counter()
    summary = build_scratch(args.lmo, bop)
    print(f"scratch BOP folder {bop} ready ({time.perf_counter() - t0:.1f} s): {summary}")
    csv = args.scratch / "results" / "perturbed_lmo-test.csv"
    n = write_estimates(args.lmo, csv, args.seed)
    print(f"estimates: {n} rows (perturbed GT poses for the 1445 targets + low-scored wrong poses) in {csv}")
    print(
        f"cpu threads: {torch.get_num_threads()}, "
        f"cuda: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available'}"
    )
    print("(times are wall-clock of each command, start-up included; the machine may be shared)\n")

    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        runs = [run_bopnp(csv, bop, args.scratch / f"eval_bopnp_{dev}", dev) for _ in range(max(1, args.repeat))]
        print(
            f"bopnp ({dev}) runs: "
            + ", ".join(f"{t:.2f} s ({c:.1f} s cpu)" for t, c, _ in runs)
            + ("" if importlib.util.find_spec("matplotlib") else " (no matplotlib: without the recall plots)")
        )
        best = min(runs, key=lambda r: r[0])
        rows.append((f"bopnp ({dev})", best[0], min(c for _, c, _ in runs), best[2]))
    if args.bop_toolkit_python:
        secs, cpu, s = run_toolkit(
            csv, bop, args.scratch / "eval_bop_toolkit", args.bop_toolkit_python, args.bop_toolkit_workers
        )
        rows.append(
            (
                f"bop_toolkit ({args.bop_toolkit_workers} worker{'s' if args.bop_toolkit_workers > 1 else ''})",
                secs,
                cpu,
                s,
            )
        )
    else:
        print("bop_toolkit: not run (pass --bop-toolkit-python)\n")

    head = f"{'tool':<24}{'wall (s)':>9}{'ratio':>7}{'cpu (s)':>9}{'ratio':>7}" + "".join(
        f"{k.replace('bop19_average_', ''):>16}" for k in SCORE_KEYS
    )
    print(head)
    ref = next((r for r in rows if r[0].startswith("bop_toolkit")), None)
    for name, secs, cpu, s in rows:
        ratio = f"{ref[1] / secs:.1f}x" if ref else "-"
        cratio = f"{ref[2] / cpu:.1f}x" if ref else "-"
        vals = "".join(f"{(s.get(k) if s.get(k) is not None else float('nan')):>16.6f}" for k in SCORE_KEYS)
        print(f"{name:<24}{secs:>9.2f}{ratio:>7}{cpu:>9.1f}{cratio:>7}{vals}")
    print("(ratio = bop_toolkit / tool; cpu = user + sys seconds of the command and its child processes)")
    if ref:
        from bopnp.eval.toolkit import format_comparison

        for name, _, _, s in rows:
            if name.startswith("bopnp"):
                print(f"\n{name} vs bop_toolkit:\n{format_comparison(s, ref[3])}")


if __name__ == "__main__":
    main()
