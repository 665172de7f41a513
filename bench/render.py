"""Benchmark: coordinate ground truth (depth + visible masks + full masks + xyz maps) per second.

The workload is the real LM-O test scene 2: every GT instance of its first ``--images`` images (about 7.5
instances per image) at 640x480 with the LM-O models. Compared with a naive baseline that renders each
instance alone with pyrender (a new scene per instance, rgb + depth) and derives the scene depth, instance
map, masks and xyz maps with numpy (xyz by back-projecting the depth through K and the inverse pose).

    python bench/render.py [--lmo DIR] [--images 60] [--baseline-images 8]

``--lmo`` is a BOP LM-O folder (models/ and test/000002/scene_gt.json, scene_camera.json); the default is
$BOPNP_LMO_DIR, else the development copy beside the checkout, else ``$BOP_PATH/lmo``. ``--models`` overrides the models
folder alone. Prints the OpenGL device and a table of instance-renders per second with the ratio to the
baseline; on a CUDA machine the renderer runs on the NVIDIA EGL device (and the table says so).
Numbers on a shared machine are contended: run it twice and keep the better.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from lmo_data import default_lmo_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bopnp from this checkout, installed or not
DEFAULT_LMO = default_lmo_dir()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lmo", type=Path, default=DEFAULT_LMO, help="BOP LM-O folder (models/, test/000002/)")
    p.add_argument("--models", type=Path, default=None, help="models folder (default: LMO/models)")
    p.add_argument("--images", type=int, default=60, help="images of scene 2 to render with the bopnp renderer")
    p.add_argument("--baseline-images", type=int, default=8, help="images for the (slow) naive baseline")
    p.add_argument("--repeats", type=int, default=2, help="timed passes over the images (best is kept)")
    p.add_argument("--no-baseline", action="store_true", help="skip the pyrender baseline")
    return p.parse_args()


def load_workload(lmo: Path, models_dir: Path, n_images: int):
    from bopnp.bop.io import load_ply, load_scene_camera, load_scene_gt

    scene = lmo / "test" / "000002"
    for path in (scene / "scene_gt.json", scene / "scene_camera.json", models_dir):
        if not path.exists():
            sys.exit(f"{path} not found: pass --lmo DIR (a BOP LM-O folder) or --models DIR")
    gt = load_scene_gt(scene / "scene_gt.json")
    cams = load_scene_camera(scene / "scene_camera.json")
    im_ids = sorted(gt)[:n_images]
    images = [(cams[i].K, [(g.obj_id, g.R_m2c, g.t_m2c) for g in gt[i]]) for i in im_ids]
    obj_ids = sorted({o for _, inst in images for o, _, _ in inst})
    meshes = {o: load_ply(models_dir / f"obj_{o:06d}.ply", load_texture=False) for o in obj_ids}
    return images, meshes


def time_passes(fn, repeats: int):
    """(best seconds of ``repeats`` timed calls after a warm-up call, the last call's result)."""
    fn()  # warm-up: shader compilation, uploads
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def naive_baseline(images, meshes, width: int, height: int):
    """Per instance a fresh pyrender scene (rgb + depth), then numpy post-processing; yields outputs."""
    import trimesh

    from bopnp.render.pyrender_compat import import_pyrender, intrinsics_camera

    pyrender = import_pyrender()  # on EGL, as bopnp's renderer

    gl_meshes = {
        o: pyrender.Mesh.from_trimesh(
            trimesh.Trimesh(m.vertices_mm, m.faces, vertex_colors=m.colors, process=False), smooth=False
        )
        for o, m in meshes.items()
    }
    renderer = pyrender.OffscreenRenderer(width, height)
    cv_to_gl = np.diag([1.0, -1.0, -1.0, 1.0])

    def run(images_):
        outputs = []
        for K, instances in images_:
            depths = []
            for obj_id, R, t in instances:
                scene = pyrender.Scene(ambient_light=np.ones(3))
                T = np.eye(4)
                T[:3, :3], T[:3, 3] = R, t
                scene.add(gl_meshes[obj_id], pose=cv_to_gl @ T)
                scene.add(intrinsics_camera(K), pose=np.eye(4))
                _, depth = renderer.render(scene)
                depths.append(depth)
            depths = np.stack(depths)
            masks_full = depths > 0
            stacked = np.where(masks_full, depths, np.inf)
            instance_map = np.where(np.isfinite(stacked.min(0)), stacked.argmin(0), -1)
            depth = np.where(instance_map >= 0, stacked.min(0), 0).astype(np.float32)
            masks_visib = instance_map[None] == np.arange(len(instances))[:, None, None]
            v, u = np.mgrid[0:height, 0:width]
            x_c = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
            xyz = np.zeros_like(x_c)
            for k, (_, R, t) in enumerate(instances):
                xyz[masks_visib[k]] = (x_c[masks_visib[k]] - t) @ R
            outputs.append((depth, instance_map, masks_visib, masks_full, xyz))
        return outputs

    return run, renderer


def main() -> None:
    args = parse_args()
    models_dir = args.models or args.lmo / "models"
    images, meshes = load_workload(args.lmo, models_dir, max(args.images, args.baseline_images))
    import torch

    from bopnp.render import get_renderer

    width, height = 640, 480
    r = get_renderer(width, height)
    for obj_id, mesh in meshes.items():
        r.add_model(obj_id, mesh)
    cpu = os.cpu_count()
    print(
        f"OpenGL: {r.gl_renderer} ({r.device_name}); CPU cores visible: {cpu}"
        + (f"; LP_NUM_THREADS={os.environ['LP_NUM_THREADS']}" if "LP_NUM_THREADS" in os.environ else "")
    )
    print("cuda: " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"))
    work = images[: args.images]
    n_inst = sum(len(inst) for _, inst in work)
    print(
        f"workload: {len(work)} LM-O images, {n_inst} instances, {width}x{height}, {len(meshes)} models "
        f"({sum(len(m.vertices_mm) for m in meshes.values())} vertices)"
    )

    rows = []
    t, _ = time_passes(lambda: [r.render(K, inst) for K, inst in work], args.repeats)
    rows.append(("bopnp render: depth + visib + full masks + xyz", n_inst / t, t / len(work)))
    t, _ = time_passes(lambda: [r.render(K, inst, full_masks=False) for K, inst in work], args.repeats)
    rows.append(("bopnp render, no full masks", n_inst / t, t / len(work)))
    t, _ = time_passes(lambda: [r.render_depths(K, inst) for K, inst in work], args.repeats)
    rows.append(("bopnp render_depths (each alone, VSD)", n_inst / t, t / len(work)))
    t, _ = time_passes(lambda: [r.render(K, inst, rgb=True) for K, inst in work], args.repeats)
    rows.append(("bopnp render + rgb (synthetic images)", n_inst / t, t / len(work)))

    base_rate = None
    if not args.no_baseline:
        run, base_renderer = naive_baseline(images, meshes, width, height)
        base = images[: args.baseline_images]
        n_base = sum(len(inst) for _, inst in base)
        t, base_outputs = time_passes(lambda: run(base), 1)
        base_rate = n_base / t
        rows.insert(0, ("naive: pyrender per instance + numpy", base_rate, t / len(base)))
        # the two agree: visible masks and depth on the baseline's images
        agree, depth_err = [], []
        for (K, inst), (depth, _inst_map, _, masks_full, _) in zip(base, base_outputs):
            out = r.render(K, inst)
            agree.append(np.mean(out.mask_full == masks_full))
            both = (out.depth_mm > 0) & (depth > 0)
            depth_err.append(np.median(np.abs(out.depth_mm[both] - depth[both])))
        base_renderer.delete()
        print(
            f"check: full masks agree with the baseline on {100 * np.mean(agree):.3f}% of pixels, "
            f"median depth difference {np.median(depth_err):.4f} mm"
        )

    print()
    print(f"{'method':<48} {'inst/s':>9} {'ms/image':>9} {'x naive':>8}")
    for name, rate, per_image in rows:
        ratio = f"{rate / base_rate:8.1f}" if base_rate else "       -"
        print(f"{name:<48} {rate:9.1f} {1000 * per_image:9.1f} {ratio}")
    print("\n(inst/s = instance-renders per second; a shared machine gives contended numbers)")


if __name__ == "__main__":
    main()
