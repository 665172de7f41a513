"""A tiny BOP dataset built here, independent of ``bopnp synth``: an asymmetric box (object 1) and a
cylinder with a continuous symmetry about its z axis (object 2), two scenes of three 320x240 images.

Both scenes have a ``scene_gt_info.json`` computed here from the renderer's masks (in-image boxes and
counts, visibility by the depth test); scene 0 has mask pngs, scene 1 none, so ``prepare`` renders its
visible masks. A test deletes a gt_info file to make ``prepare`` compute it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bopnp.bop.symmetry import axis_angle_matrix

W, H = 320, 240
K = np.array([[300.0, 0.0, 161.3], [0.0, 302.0, 118.7], [0.0, 0.0, 1.0]])


def rotation(axis, angle_rad):
    """(3, 3) rotation by ``angle_rad`` about ``axis`` (any nonzero length)."""
    return axis_angle_matrix(angle_rad, np.asarray(axis, float))


def make_meshes():
    import trimesh

    from bopnp.bop.mesh import Mesh

    box = trimesh.creation.box(extents=(60.0, 40.0, 30.0)).subdivide().subdivide()
    v = np.asarray(box.vertices, np.float32)
    col_box = np.clip((v - v.min(0)) / np.ptp(v, 0) * 200 + 40, 0, 255).astype(np.uint8)  # asymmetric colours
    cyl = trimesh.creation.cylinder(radius=25.0, height=50.0, sections=48)
    vc = np.asarray(cyl.vertices, np.float32)
    z = (vc[:, 2] - vc[:, 2].min()) / np.ptp(vc[:, 2])
    col_cyl = np.stack([60 + 180 * z, 200 - 150 * z, np.full_like(z, 90)], 1).astype(np.uint8)  # depends on z only
    return {
        1: Mesh(vertices_mm=v, faces=np.asarray(box.faces, np.int64), colors=col_box),
        2: Mesh(vertices_mm=vc, faces=np.asarray(cyl.faces, np.int64), colors=col_cyl),
    }


def model_info(obj_id, mesh):
    from bopnp.bop.records import ContinuousSymmetry, ModelInfo

    v = mesh.vertices_mm.astype(np.float64)
    d = np.sqrt(((v[:, None] - v[None]) ** 2).sum(-1)).max()
    cont = (ContinuousSymmetry(axis=np.array([0.0, 0.0, 1.0]), offset_mm=np.zeros(3)),) if obj_id == 2 else ()
    return ModelInfo(
        obj_id=obj_id, diameter_mm=float(d), min_mm=v.min(0), size_mm=np.ptp(v, 0), symmetries_continuous=cont
    )


def scene_poses(rng, n_images):
    """Per image: instances (obj_id, R, t); object 2 appears twice in some images; overlaps happen."""
    images = []
    for _ in range(n_images):
        insts = []
        for obj_id, (x, y) in ((1, (-40, -10)), (2, (35, 15)), (2, (5, -30))):
            R = rotation(rng.normal(size=3), rng.uniform(0, np.pi))
            t = np.array([x + rng.uniform(-10, 10), y + rng.uniform(-10, 10), rng.uniform(380, 520)])
            insts.append((obj_id, R, t))
        images.append(insts)
    return images


def build(root: Path) -> None:
    from bopnp.bop import io
    from bopnp.bop.images import mask_bbox_xywh
    from bopnp.bop.records import Camera, GtInfo, GtPose, ImageCamera
    from bopnp.render import get_renderer

    ds = root / "tiny"
    meshes = make_meshes()
    infos = {o: model_info(o, m) for o, m in meshes.items()}
    for o, m in meshes.items():
        io.save_ply(ds / "models" / f"obj_{o:06d}.ply", m)
    io.save_models_info(ds / "models" / "models_info.json", infos)
    io.save_camera(ds / "camera.json", Camera(K=K, width=W, height=H, depth_scale=1.0))
    r = get_renderer(W, H)
    for o, m in meshes.items():
        r.add_model(o, m)
    rng = np.random.default_rng(7)
    for scene_id in (0, 1):
        sdir = ds / "train_pbr" / f"{scene_id:06d}"
        gt, cams, gt_info = {}, {}, {}
        for im_id, insts in enumerate(scene_poses(rng, 3)):
            out = r.render(K, insts, rgb=True)
            noise = rng.integers(0, 60, (H, W, 3))
            rgb = np.where(out.instance_map[..., None] >= 0, out.rgb, noise).astype(np.uint8)
            io.save_image(sdir / "rgb" / f"{im_id:06d}.png", rgb)
            io.save_depth(sdir / "depth" / f"{im_id:06d}.png", out.depth_mm, 0.1)
            gt[im_id] = [GtPose(obj_id=o, R_m2c=R, t_m2c=t) for o, R, t in insts]
            cams[im_id] = ImageCamera(K=K, depth_scale=0.1)
            infos_im = []
            for gt_id in range(len(insts)):
                full, visib = out.mask_full[gt_id], out.mask_visib[gt_id]
                if scene_id == 0:
                    io.save_mask(sdir / "mask" / f"{im_id:06d}_{gt_id:06d}.png", full)
                    io.save_mask(sdir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png", visib)
                n_all, n_vis = int(full.sum()), int(visib.sum())
                infos_im.append(
                    GtInfo(
                        bbox_obj=mask_bbox_xywh(full), bbox_visib=mask_bbox_xywh(visib), px_count_all=n_all,
                        px_count_valid=n_all, px_count_visib=n_vis, visib_fract=n_vis / max(n_all, 1),
                    )
                )  # fmt: skip
            gt_info[im_id] = infos_im
        io.save_scene_gt(sdir / "scene_gt.json", gt)
        io.save_scene_camera(sdir / "scene_camera.json", cams)
        io.save_scene_gt_info(sdir / "scene_gt_info.json", gt_info)
