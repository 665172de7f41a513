"""Pose errors of every (estimate, GT instance) pair of a :class:`~bopnp.eval.plan.Plan`.

MSSD, MSPD and ADD(-S) run batched per object on ``device`` (float64); VSD runs per image with
depth, rendering each needed instance once. bop_toolkit's shortcuts are kept because they change
numbers: MSSD (and ADD / ADI, as bop_toolkit's 'ad' error) is infinite when the two centres are a
diameter or more apart, and VSD is 1 when the projected bounding spheres do not overlap (no
rendering then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from bopnp.bop.symmetry import symmetry_transforms
from bopnp.eval import errors as E
from bopnp.eval.inputs import EvalInputs
from bopnp.eval.plan import Plan
from bopnp.eval.scores import VSD_TAUS
from bopnp.eval.vsd import vsd
from bopnp.errors import BopnpError

log = logging.getLogger(__name__)


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


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def geometric_errors(inputs: EvalInputs, plan: Plan, poses, device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSSD (mm), MSPD (px) and ADD(-S) (mm) of every pair, batched per object."""
    R_e, t_e, R_g, t_g, K = poses
    P = plan.n_pairs
    mssd = np.full(P, np.inf)
    mspd = np.full(P, np.inf)
    add_s = np.full(P, np.inf)
    pair_obj = plan.group_obj[plan.pair_group] if P else np.zeros(0, np.int64)
    for obj_id in np.unique(pair_obj):
        idx = np.flatnonzero(pair_obj == obj_id)
        info = inputs.models_info[int(obj_id)]
        pts = E.as_tensor(inputs.mesh(int(obj_id)).vertices_mm, device=device)
        syms = symmetry_transforms(info)
        sym_R = E.as_tensor(syms[:, :3, :3], device=device)
        sym_t = E.as_tensor(syms[:, :3, 3], device=device)
        Re, te, Rg, tg, Ks = (E.as_tensor(a[idx], device=device) for a in (R_e, t_e, R_g, t_g, K))
        near = E.centres_within_diameter(te, tg, torch.full((len(idx),), float(info.diameter_mm), dtype=torch.float64, device=device))
        sel = torch.nonzero(near).flatten()
        if len(sel):
            near_idx = idx[sel.cpu().numpy()]
            mssd[near_idx] = E.mssd(Re[sel], te[sel], Rg[sel], tg[sel], pts, sym_R, sym_t).cpu().numpy()
            fn = E.adi if info.is_symmetric else E.add
            add_s[near_idx] = fn(Re[sel], te[sel], Rg[sel], tg[sel], pts).cpu().numpy()
        mspd[idx] = E.mspd(Re, te, Rg, tg, Ks, pts, sym_R, sym_t).cpu().numpy()
    return mssd, mspd, add_s


def vsd_errors(
    inputs: EvalInputs,
    plan: Plan,
    poses,
    render_device: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], str]]:
    """VSD of every pair whose image has a depth image.

    Returns:
        (P, T) errors (NaN where unavailable), (P,) availability, and why each unavailable image is.
    """
    from tqdm import tqdm

    R_e, t_e, R_g, t_g, K = poses
    P, T = plan.n_pairs, len(VSD_TAUS)
    out = np.full((P, T), np.nan)
    available = np.zeros(P, dtype=bool)
    missing: dict[tuple[int, int], str] = {}
    radius = np.array([0.5 * inputs.models_info[int(o)].diameter_mm for o in plan.group_obj[plan.pair_group]])
    overlap = E.sphere_projections_overlap(E.as_tensor(t_e), E.as_tensor(t_g), E.as_tensor(radius)).numpy().astype(bool)

    image_of_pair = plan.group_scene[plan.pair_group] * (1 << 32) + plan.group_im[plan.pair_group]
    image_of_group = plan.group_scene * (1 << 32) + plan.group_im
    keys, first = np.unique(image_of_group, return_index=True)
    order = np.argsort(first)  # images in plan order
    renderer = None
    width, height = inputs.image_size
    for key in tqdm(keys[order], desc="VSD", unit="image", disable=not progress, leave=False):
        scene_id, im_id = int(key >> 32), int(key & 0xFFFFFFFF)
        pairs = np.flatnonzero(image_of_pair == key)
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
            missing[(scene_id, im_id)] = f"depth image is {depth.shape[1]}x{depth.shape[0]}, the dataset's images are {width}x{height}"
            continue
        available[pairs] = True
        out[pairs] = 1.0  # bop_toolkit's value where the bounding spheres' projections do not overlap
        todo = pairs[overlap[pairs]]
        if len(todo) == 0:
            continue
        if renderer is None:
            from bopnp.eval.render import VsdRenderer

            renderer = VsdRenderer(width, height, inputs.mesh, device=render_device)
        # render each estimate and each GT instance of the image once
        est_ids = sorted(set(plan.pair_est[todo].tolist()))
        gt_ids = sorted(set(plan.pair_gt[todo].tolist()))
        gts = inputs.scenes[scene_id].gt[im_id]
        instances = [(inputs.estimates[i].obj_id, inputs.estimates[i].R_m2c, inputs.estimates[i].t_m2c) for i in est_ids]
        instances += [(gts[g].obj_id, gts[g].R_m2c, gts[g].t_m2c) for g in gt_ids]
        crops = renderer.render(inputs.scenes[scene_id].camera[im_id].K, instances)
        est_crop = dict(zip(est_ids, crops[: len(est_ids)]))
        gt_crop = dict(zip(gt_ids, crops[len(est_ids) :]))
        K_im = inputs.scenes[scene_id].camera[im_id].K
        delta = inputs.vsd_delta_mm
        for p in todo:
            obj = int(plan.group_obj[plan.pair_group[p]])
            out[p] = vsd(depth, K_im, est_crop[int(plan.pair_est[p])], gt_crop[int(plan.pair_gt[p])], delta, VSD_TAUS, inputs.models_info[obj].diameter_mm)
    return out, available, missing


def compute_errors(inputs: EvalInputs, plan: Plan, device: str = "auto", with_vsd: bool = True, progress: bool = True) -> PairErrors:
    """All errors of the plan's pairs.

    Args:
        device: 'auto', 'cpu' or 'cuda' for MSSD / MSPD / ADD(-S).
        with_vsd: compute VSD where depth images exist (else it is unavailable everywhere).
    """
    dev = resolve_device(device)
    poses = _pair_poses(inputs, plan)
    mssd, mspd, add_s = geometric_errors(inputs, plan, poses, dev)
    if with_vsd:
        render_device = dev.index if dev.type == "cuda" else None
        v, avail, missing = vsd_errors(inputs, plan, poses, render_device=render_device, progress=progress)
    else:
        v = np.full((plan.n_pairs, len(VSD_TAUS)), np.nan)
        avail = np.zeros(plan.n_pairs, dtype=bool)
        missing = {}
    return PairErrors(mssd_mm=mssd, mspd_px=mspd, add_s_mm=add_s, vsd=v, vsd_available=avail, vsd_missing=missing)


__all__ = ["PairErrors", "compute_errors", "geometric_errors", "vsd_errors", "resolve_device"]
