"""Pose errors of every (estimate, GT instance) pair of a :class:`~bopnp.eval.plan.Plan`.

MSSD, MSPD and ADD(-S) run batched per object in float64 (numpy on CPU, torch on CUDA); VSD runs per
image with depth, rendering each needed instance once, in worker processes on CPU while this
process computes the other errors (forked, so that they share the inputs without pickling them;
spawned instead once this process has initialised CUDA, which a forked child cannot use).
bop_toolkit's shortcuts are kept because they change numbers: MSSD (and ADD / ADI, as bop_toolkit's
'ad' error) is infinite when the two centres are a diameter or more apart, and VSD is 1 when the
projected bounding spheres do not overlap (no rendering then).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from bopnp import parallel
from bopnp.bop.symmetry import symmetry_transforms
from bopnp.device import cuda_possible, resolve_device
from bopnp.errors import BopnpError
from bopnp.eval.inputs import EvalInputs
from bopnp.eval.plan import Plan
from bopnp.eval.scores import VSD_TAUS
from bopnp.eval.vsd import vsd
from bopnp.metrics.pose_errors import centres_within_diameter, sphere_projections_overlap
from bopnp.progress import progress_bar

log = logging.getLogger(__name__)

_R = TypeVar("_R")


@dataclass
class PairErrors:
    """Errors of the P pairs of a plan.

    Attributes:
        mssd_mm: (P,) MSSD, mm (inf when the centres are >= a diameter apart).
        mspd_px: (P,) MSPD in pixels of the image (not yet scaled to a 640-wide image).
        add_s_mm: (P,) ADI for objects with symmetries, ADD otherwise, mm (inf when the centres are
            >= a diameter apart).
        vsd: (P, T) VSD per tau of :data:`~bopnp.eval.scores.VSD_TAUS`; NaN where not computed.
        vsd_available: (P,) bool: the pair's image has a usable depth image.
        vsd_missing: (scene_id, im_id) -> why VSD is unavailable for that image (every target image
            without a usable depth image is listed, also those without estimates).
    """

    mssd_mm: np.ndarray
    mspd_px: np.ndarray
    add_s_mm: np.ndarray
    vsd: np.ndarray
    vsd_available: np.ndarray
    vsd_missing: dict[tuple[int, int], str] = field(default_factory=dict)


def _pair_poses(inputs: EvalInputs, plan: Plan) -> tuple[np.ndarray, ...]:
    ests = inputs.estimates
    R_e = np.array([ests[i].R_m2c for i in plan.pair_est], dtype=np.float64).reshape(-1, 3, 3)
    t_e = np.array([ests[i].t_m2c for i in plan.pair_est], dtype=np.float64).reshape(-1, 3)
    R_g = np.empty((plan.n_pairs, 3, 3))
    t_g = np.empty((plan.n_pairs, 3))
    K = np.empty((plan.n_pairs, 3, 3))
    for p in range(plan.n_pairs):
        g = plan.pair_group[p]
        scene = inputs.scenes[int(plan.group_scene[g])]
        im = int(plan.group_im[g])
        gt = scene.gt[im][int(plan.pair_gt[p])]
        R_g[p], t_g[p] = gt.R_m2c, gt.t_m2c
        K[p] = scene.camera[im].K
    return R_e, t_e, R_g, t_g, K


def geometric_errors(inputs: EvalInputs, plan: Plan, poses, device="cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSSD (mm), MSPD (px) and ADD(-S) (mm) of every pair, batched per object: in numpy on 'cpu'
    (no torch needed), in torch on another device (a torch.device or its name, e.g. 'cuda')."""
    from bopnp.metrics import pose_errors as E

    on_cpu = str(device) == "cpu"
    if on_cpu:
        put = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        get = np.asarray
    else:
        put = lambda a: E.as_tensor(a, device=device)  # noqa: E731
        get = lambda t: t.cpu().numpy()  # noqa: E731
    R_e, t_e, R_g, t_g, K = poses
    P = plan.n_pairs
    mssd = np.full(P, np.inf)
    mspd = np.full(P, np.inf)
    add_s = np.full(P, np.inf)
    pair_obj = plan.group_obj[plan.pair_group] if P else np.zeros(0, np.int64)
    for obj_id in np.unique(pair_obj):
        idx = np.flatnonzero(pair_obj == obj_id)
        info = inputs.models_info[int(obj_id)]
        verts = np.asarray(inputs.mesh(int(obj_id)).vertices_mm, np.float64)
        pts = put(verts)
        hull = put(E.hull_points(verts))  # MSSD's maximum is at a hull vertex (a convex function)
        syms = symmetry_transforms(info)
        sym_R, sym_t = put(syms[:, :3, :3]), put(syms[:, :3, 3])
        near = centres_within_diameter(t_e[idx], t_g[idx], float(info.diameter_mm))  # as bop_toolkit, in float64
        sel = np.flatnonzero(near)
        if len(sel):
            near_idx = idx[sel]
            Re, te, Rg, tg = (put(a[near_idx]) for a in (R_e, t_e, R_g, t_g))
            mssd[near_idx] = get(E.mssd(Re, te, Rg, tg, hull, sym_R, sym_t))
            fn = E.adi if info.is_symmetric else E.add
            add_s[near_idx] = get(fn(Re, te, Rg, tg, pts))
        Re, te, Rg, tg, Ks = (put(a[idx]) for a in (R_e, t_e, R_g, t_g, K))
        mspd[idx] = get(E.mspd(Re, te, Rg, tg, Ks, pts, sym_R, sym_t))
    return mssd, mspd, add_s


@dataclass
class _VsdJob:
    """What the VSD of a set of images needs (inherited by forked workers, pickled for spawned ones)."""

    inputs: EvalInputs
    plan: Plan
    overlap: np.ndarray  # (P,) bool: projected bounding spheres overlap
    image_of_pair: np.ndarray  # (P,) int64 scene << 32 | image


_JOB: _VsdJob | None = None  # set in each worker by _worker_init


def _vsd_images(job: _VsdJob, keys: list[int], renderer=None):
    """VSD of the pairs of the given images (keys ``scene << 32 | im_id``).

    Returns:
        (pair indices, (n, T) errors, {(scene, im): why VSD is unavailable}, renderer).
    """
    inputs, plan = job.inputs, job.plan
    width, height = inputs.image_size
    idx, vals, missing = [], [], {}
    ones = np.ones(len(VSD_TAUS))
    for key in keys:
        scene_id, im_id = int(key >> 32), int(key & 0xFFFFFFFF)
        pairs = np.flatnonzero(job.image_of_pair == key)
        path = inputs.depth_path(scene_id, im_id)
        if not path.is_file():
            missing[(scene_id, im_id)] = "no depth image"
            continue
        if len(pairs) == 0:
            continue  # nothing to compute; the image's targets still count (as misses)
        try:
            depth = inputs.load_depth(scene_id, im_id)
        except BopnpError as exc:
            missing[(scene_id, im_id)] = f"unreadable depth image ({str(exc).splitlines()[0]})"
            log.warning("VSD skipped for scene %d image %d: %s", scene_id, im_id, exc)
            continue
        if depth.shape != (height, width):
            missing[(scene_id, im_id)] = (
                f"depth image is {depth.shape[1]}x{depth.shape[0]}, the dataset's images are {width}x{height}"
            )
            continue
        todo = pairs[job.overlap[pairs]]
        for p in pairs[~job.overlap[pairs]]:  # bop_toolkit's value when the projected spheres do not overlap
            idx.append(int(p))
            vals.append(ones)
        if len(todo) == 0:
            continue
        if renderer is None:
            from bopnp.eval.render import VsdRenderer

            renderer = VsdRenderer(width, height, inputs.mesh)
        # render each estimate and each GT instance of the image once
        est_ids = sorted(set(plan.pair_est[todo].tolist()))
        gt_ids = sorted(set(plan.pair_gt[todo].tolist()))
        gts = inputs.scenes[scene_id].gt[im_id]
        instances = [
            (inputs.estimates[i].obj_id, inputs.estimates[i].R_m2c, inputs.estimates[i].t_m2c) for i in est_ids
        ]
        instances += [(gts[g].obj_id, gts[g].R_m2c, gts[g].t_m2c) for g in gt_ids]
        K_im = inputs.scenes[scene_id].camera[im_id].K
        crops = renderer.render(K_im, instances)
        est_crop = dict(zip(est_ids, crops[: len(est_ids)]))
        gt_crop = dict(zip(gt_ids, crops[len(est_ids) :]))
        for p in todo:
            obj = int(plan.group_obj[plan.pair_group[p]])
            idx.append(int(p))
            vals.append(
                vsd(
                    depth,
                    K_im,
                    est_crop[int(plan.pair_est[p])],
                    gt_crop[int(plan.pair_gt[p])],
                    inputs.vsd_delta_mm,
                    VSD_TAUS,
                    inputs.models_info[obj].diameter_mm,
                )
            )
    return idx, vals, missing, renderer


def _worker_init(job: _VsdJob) -> None:
    global _JOB
    # one process per core already: keep Mesa's software rasterizer to one thread per process
    os.environ.setdefault("LP_NUM_THREADS", "0")
    _JOB = job


def _vsd_worker(keys: list[int]):
    assert _JOB is not None
    idx, vals, missing, _ = _vsd_images(_JOB, keys)
    return idx, vals, missing, len(keys)


def vsd_workers(n_images: int) -> int:
    """Processes for VSD on CPU rendering: one per core (at most 4), and one per 16 images at most."""
    return parallel.default_workers(cap=4, jobs=n_images // 16)


def vsd_errors(
    inputs: EvalInputs,
    plan: Plan,
    poses,
    while_waiting: Callable[[], _R],
    progress: bool = True,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], str], _R]:
    """VSD of every pair whose image has a depth image.

    Args:
        while_waiting: a function run in this process while the workers render.
        workers: processes sharing the images (capped by the images, cores and memory); 1 = this process.
    Returns:
        (P, T) errors (NaN where unavailable), (P,) availability, why each unavailable image is, and
        the result of ``while_waiting``.
    """
    R_e, t_e, R_g, t_g, K = poses
    P, T = plan.n_pairs, len(VSD_TAUS)
    out = np.full((P, T), np.nan)
    available = np.zeros(P, dtype=bool)
    radius = np.array([0.5 * inputs.models_info[int(o)].diameter_mm for o in plan.group_obj[plan.pair_group]])
    overlap = sphere_projections_overlap(t_e, t_g, radius)
    image_of_pair = plan.group_scene[plan.pair_group] * (1 << 32) + plan.group_im[plan.pair_group]
    image_of_group = plan.group_scene * (1 << 32) + plan.group_im
    keys, first = np.unique(image_of_group, return_index=True)
    keys = [int(k) for k in keys[np.argsort(first)]]  # images in plan order
    job = _VsdJob(inputs, plan, overlap, image_of_pair)
    missing: dict[tuple[int, int], str] = {}
    workers = parallel.bounded_workers(workers, len(keys), worker_mb=parallel.RENDER_WORKER_MB)
    if workers > 1:
        n_chunks = min(len(keys), workers * 8)
        chunks = [keys[i::n_chunks] for i in range(n_chunks)]
        method = "fork" if hasattr(os, "fork") and not parallel.cuda_initialized() else "spawn"
        if method == "fork":
            for obj_id in np.unique(plan.group_obj):  # parse the meshes once; the forked workers inherit them
                inputs.mesh(int(obj_id))
        waited: list = []  # while_waiting's result, computed here while the workers render
        results = []
        pool = parallel.run_jobs(
            _vsd_worker,
            chunks,
            workers,
            initializer=_worker_init,
            initargs=(job,),
            method=method,
            worker_mb=parallel.RENDER_WORKER_MB,
            in_flight=8,
            poll=lambda: waited or waited.append(while_waiting()),
        )
        with progress_bar(total=len(keys), desc="VSD", unit="image", enabled=progress, leave=False) as bar:
            for _, res in pool:
                results.append(res)
                bar.update(res[3])
        extra = waited[0]
        for idx, vals, miss, _ in results:
            if idx:
                out[idx] = np.asarray(vals)
                available[idx] = True
            missing.update(miss)
    else:
        renderer = None
        for key in progress_bar(keys, desc="VSD", unit="image", enabled=progress, leave=False):
            idx, vals, miss, renderer = _vsd_images(job, [key], renderer)
            if idx:
                out[idx] = np.asarray(vals)
                available[idx] = True
            missing.update(miss)
        extra = while_waiting()
    return out, available, missing, extra


def compute_errors(
    inputs: EvalInputs,
    plan: Plan,
    device: str = "auto",
    with_vsd: bool = True,
    progress: bool = True,
    workers: int | None = None,
) -> PairErrors:
    """All errors of the plan's pairs.

    On CPU the errors run in numpy (torch is not imported) in this process while the forked VSD
    workers render; with CUDA, MSSD / MSPD / ADD(-S) run in torch on the GPU.

    Args:
        device: 'auto', 'cpu' or 'cuda' for MSSD / MSPD / ADD(-S) and the renders.
        with_vsd: compute VSD where depth images exist (else it is unavailable everywhere).
        workers: processes rendering VSD (None: one per core, at most 4, on CPU; 1 with CUDA).
    """
    poses = _pair_poses(inputs, plan)
    on_cpu = device == "cpu" or (device == "auto" and not cuda_possible())
    dev = "cpu" if on_cpu else resolve_device(device)

    def geometric(single_thread: bool = False):
        if on_cpu or not single_thread:
            return geometric_errors(inputs, plan, poses, dev)
        import torch

        n = torch.get_num_threads()
        torch.set_num_threads(1)  # the VSD workers use the other cores; spinning thread pools would fight them
        try:
            return geometric_errors(inputs, plan, poses, dev)
        finally:
            torch.set_num_threads(n)

    if with_vsd:
        # the renderer picks its EGL device itself (an NVIDIA GPU when present, else Mesa's software one)
        if workers is None:
            n_images = len(set(zip(plan.group_scene.tolist(), plan.group_im.tolist())))
            workers = vsd_workers(n_images) if on_cpu or dev.type != "cuda" else 1
        v, avail, missing, (mssd, mspd, add_s) = vsd_errors(
            inputs,
            plan,
            poses,
            while_waiting=lambda: geometric(single_thread=workers > 1),
            progress=progress,
            workers=workers,
        )
    else:
        mssd, mspd, add_s = geometric()
        v = np.full((plan.n_pairs, len(VSD_TAUS)), np.nan)
        avail = np.zeros(plan.n_pairs, dtype=bool)
        missing = {}
    return PairErrors(mssd_mm=mssd, mspd_px=mspd, add_s_mm=add_s, vsd=v, vsd_available=avail, vsd_missing=missing)


__all__ = [
    "PairErrors",
    "compute_errors",
    "cuda_possible",
    "geometric_errors",
    "vsd_errors",
    "resolve_device",
    "vsd_workers",
]
