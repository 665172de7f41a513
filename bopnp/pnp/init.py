"""Closed-form, batched initial poses: EPnP (general point sets) and a plane homography (planar point sets).

Both run on every item of the batch; the caller keeps, per item, the candidate with the smallest reprojection error,
so planar, near-planar and general point sets are all handled without branching. Everything is batched torch on the
inputs' device (callers pass float64: the normal equations square the conditioning); small eigen- and singular-value
problems are solved for the whole batch at once. Per-point tensors are points-last, as in :mod:`bopnp.pnp.objective`.

References: Lepetit, Moreno-Noguer, Fua, "EPnP: An Accurate O(n) Solution to the PnP Problem", IJCV 2009 (control
points, kernel of M^T M, distance constraints on the betas, Gauss-Newton on the betas); Zhang, "A flexible new technique
for camera calibration", PAMI 2000 (pose from a plane homography).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bopnp.geometry import nearest_rotation
from bopnp.pnp import objective as obj

#: pairs of control points whose distances constrain the betas
_PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
#: products beta_k beta_l (k <= l) in the columns of the L matrix
_PRODUCTS = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]
_COL = {kl: i for i, kl in enumerate(_PRODUCTS)}
#: (4, 3, 3): how the moments (1, v1, v2, v1^2 + v2^2) of a point enter its 3x3 block of M^T M (:func:`_normal_matrix`)
_MOMENT_MAP = [
    [[1, 0, 0], [0, 1, 0], [0, 0, 0]],
    [[0, 0, -1], [0, 0, 0], [-1, 0, 0]],
    [[0, 0, 0], [0, 0, -1], [0, -1, 0]],
    [[0, 0, 0], [0, 0, 0], [0, 0, 1]],
]
#: usable points (spread over the input order) used to rank the candidates of large problems
SCORE_POINTS = 512


def weighted_pca(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted centroid and principal axes of a point set.

    Args:
        x: (B, 3, N) points, mm. w: (B, N) weights >= 0.
    Returns:
        mean: (B, 3) mm. evals: (B, 3) ascending variances, mm^2. evecs: (B, 3, 3) axes as columns.
    """
    wsum = w.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    mean = (x * w.unsqueeze(1)).sum(-1) / wsum
    xc = x - mean.unsqueeze(-1)
    C = (xc * w.unsqueeze(1)) @ xc.transpose(1, 2) / wsum.unsqueeze(-1)
    evals, evecs = torch.linalg.eigh(torch.nan_to_num(0.5 * (C + C.transpose(1, 2))))
    return mean, evals.clamp_min(0), evecs


def _ridge_solve(M: Tensor, b: Tensor, rel: float = 1e-10) -> Tensor:
    """Least squares ``min ||M z - b||`` through ridge-regularised normal equations. M: (..., m, k), b: (..., m)."""
    MtM = M.transpose(-1, -2) @ M
    k = MtM.shape[-1]
    scale = MtM.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True).clamp_min(torch.finfo(M.dtype).tiny)
    eye = torch.eye(k, dtype=M.dtype, device=M.device)
    z, _ = torch.linalg.solve_ex(MtM + rel * scale.unsqueeze(-1) * eye, (M.transpose(-1, -2) @ b.unsqueeze(-1)))
    return torch.nan_to_num(z.squeeze(-1))


def _normal_matrix(a: Tensor, v: Tensor, w: Tensor) -> Tensor:
    """``M^T W M`` for the DLT-style rows ``[a_j, 0, -v1 a_j]_j`` and ``[0, a_j, -v2 a_j]_j`` of every
    point, built from the (B, k, k, 4) moments ``sum_i w_i a_ij a_ik (1, v1, v2, v1^2 + v2^2)`` (one
    batched product over the points).

    Args:
        a: (B, k, N) per-point coefficients. v: (B, 2, N) image coordinates. w: (B, N).
    Returns:
        (B, 3k, 3k) symmetric, ordered (j, xyz).
    """
    B, k, _ = a.shape
    F = torch.cat([torch.ones_like(v[:, :1]), v, (v * v).sum(1, keepdim=True)], 1) * w.unsqueeze(1)  # (B, 4, N)
    iu, ju = torch.triu_indices(k, k, device=a.device)
    upper = (a[:, iu] * a[:, ju]) @ F.transpose(1, 2)  # (B, k(k+1)/2, 4): only the distinct products
    mom = torch.zeros(B, k, k, 4, dtype=a.dtype, device=a.device)
    mom[:, iu, ju] = upper
    mom[:, ju, iu] = upper
    T = torch.tensor(_MOMENT_MAP, dtype=a.dtype).to(a.device)
    M = torch.einsum("bjkl,lxy->bjxky", mom, T).reshape(B, 3 * k, 3 * k)
    return torch.nan_to_num(0.5 * (M + M.transpose(1, 2)))


def epnp_candidates(x: Tensor, un: Tensor, w: Tensor, evals: Tensor, evecs: Tensor) -> tuple[Tensor, Tensor]:
    """EPnP with three beta approximations.

    Args:
        x: (B, 3, N) centred model points. un: (B, 2, N) normalised image coordinates. w: (B, N).
        evals, evecs: principal variances and axes of ``x``.
    Returns:
        M: (B, 3, 3, 3) matrices whose nearest rotations are the rotations. t: (B, 3, 3) camera coordinates of the
        weighted centroid, mm; one per approximation.
    """
    B, _, N = x.shape
    dt = x.dtype
    floor = 1e-12 * evals[:, 2:].clamp_min(torch.finfo(dt).tiny)
    scale = evals.clamp_min(0).maximum(floor).sqrt()  # (B, 3)
    ctrl = torch.cat([torch.zeros(B, 1, 3, dtype=dt, device=x.device), (evecs * scale.unsqueeze(1)).transpose(1, 2)], 1)
    a123 = (evecs.transpose(1, 2) @ x) / scale.unsqueeze(-1)  # (B, 3, N)
    alpha = torch.cat([1 - a123.sum(1, keepdim=True), a123], 1)  # (B, 4, N)
    MtM = _normal_matrix(alpha, un, w)  # (B, 12, 12)
    _, V = torch.linalg.eigh(MtM)
    v = V[:, :, :4].transpose(1, 2).reshape(B, 4, 4, 3)  # (B, kernel k, control point, xyz)

    ia = torch.tensor([a for a, _ in _PAIRS], device=x.device)
    ib = torch.tensor([b for _, b in _PAIRS], device=x.device)
    dv = v[:, :, ia] - v[:, :, ib]  # (B, 4, 6, 3)
    rho = ((ctrl[:, ia] - ctrl[:, ib]) ** 2).sum(-1)  # (B, 6)
    maps = _product_maps(dt, x.device)
    pk, pl, _ = maps
    L = (dv[:, pk] * dv[:, pl]).sum(-1).transpose(1, 2) * torch.where(pk == pl, 1.0, 2.0).to(dt)  # (B, 6, 10)

    def cols(names):
        return L[..., [_COL[n] for n in names]]

    zeros = torch.zeros(B, dtype=dt, device=x.device)
    # approximation 1: four betas from (b00, b01, b02, b03)
    b = _ridge_solve(cols([(0, 0), (0, 1), (0, 2), (0, 3)]), rho)
    s0 = b[:, 0].abs().sqrt().clamp_min(torch.finfo(dt).tiny)
    sgn = torch.where(b[:, 0] < 0, -1.0, 1.0).to(dt)
    beta1 = torch.stack([s0, sgn * b[:, 1] / s0, sgn * b[:, 2] / s0, sgn * b[:, 3] / s0], -1)

    def two_betas(b):
        neg = b[:, 0] < 0
        s0 = b[:, 0].abs().sqrt()
        s1 = torch.where(neg, (-b[:, 2]).clamp_min(0).sqrt(), b[:, 2].clamp_min(0).sqrt())
        s0 = torch.where(b[:, 1] < 0, -s0, s0)
        return s0, s1

    # approximation 2: two betas from (b00, b01, b11)
    b = _ridge_solve(cols([(0, 0), (0, 1), (1, 1)]), rho)
    s0, s1 = two_betas(b)
    beta2 = torch.stack([s0, s1, zeros, zeros], -1)
    # approximation 3: three betas from (b00, b01, b11, b02, b12)
    b = _ridge_solve(cols([(0, 0), (0, 1), (1, 1), (0, 2), (1, 2)]), rho)
    s0, s1 = two_betas(b)
    s2 = b[:, 3] / torch.where(s0.abs() > torch.finfo(dt).tiny, s0, torch.ones_like(s0))
    beta3 = torch.stack([s0, s1, s2, zeros], -1)

    # Gauss-Newton on the betas; tiny point sets (kernels of dimension up to 4) need more steps
    beta = _refine_betas(torch.stack([beta1, beta2, beta3], 1), L, rho, iters=10 if N < 6 else 5, maps=maps)
    cam_ctrl = torch.einsum("bak,bkci->baci", beta, v)  # (B, 3, 4, 3)
    # Rigid fit of the camera points P_i = sum_j alpha_ij C_j to the model points, without forming P: both sums it
    # needs are linear in the control points, sum_i w P_i x_i^T = sum_j C_j (sum_i w alpha_ij x_i)^T.
    wa = alpha * w.unsqueeze(1)  # (B, 4, N)
    ax = wa @ x.transpose(1, 2)  # (B, 4, 3)
    aw = wa.sum(-1)  # (B, 4)
    wsum = w.sum(-1).clamp_min(torch.finfo(dt).tiny)
    t = (aw[:, None, :, None] * cam_ctrl).sum(2) / wsum[:, None, None]  # (B, 3, 3): weighted mean of P
    Hc = cam_ctrl.transpose(-1, -2) @ ax.unsqueeze(1)  # (B, 3, 3, 3)
    flip = (t[..., 2] < 0)[..., None]  # the kernel's sign is arbitrary: put the points in front of the camera
    return torch.where(flip.unsqueeze(-1), -Hc, Hc), torch.where(flip, -t, t)


def _product_maps(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Index maps of the products ``beta_k beta_l`` (k <= l) and the constant tensor of their derivatives.

    Returns:
        k, l: (10,) long, the factors of each product. G: (4, 10, 4), ``d prod_i / d beta_m = sum_j beta_j G[j, i, m]``.
    """
    k = torch.tensor([a for a, _ in _PRODUCTS], device=device)
    l = torch.tensor([b for _, b in _PRODUCTS], device=device)
    four = torch.arange(4, device=device)
    ok = (k[:, None] == four).to(dtype)  # (10, 4) one-hot of k
    ol = (l[:, None] == four).to(dtype)
    # d(beta_k beta_l)/d beta_m = beta_l [m == k] + beta_k [m == l]
    G = ol.T[:, :, None] * ok[None] + ok.T[:, :, None] * ol[None]
    return k, l, G


def _refine_betas(beta: Tensor, L: Tensor, rho: Tensor, iters: int, maps: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Gauss-Newton on the distance constraints ``L b(beta) = rho``.

    Args:
        beta: (B, A, 4). L: (B, 6, 10). rho: (B, 6). maps: :func:`_product_maps`.
    """
    k, l, G = maps
    L = L.unsqueeze(1)
    rho = rho.unsqueeze(1)
    for _ in range(iters):
        prods = beta[..., k] * beta[..., l]  # (B, A, 10)
        e = (L @ prods.unsqueeze(-1)).squeeze(-1) - rho  # (B, A, 6)
        J = L @ torch.einsum("baj,jim->baim", beta, G)  # (B, A, 6, 4)
        beta = beta - _ridge_solve(J, e, rel=1e-12)
    return beta


def homography_pose(x: Tensor, un: Tensor, w: Tensor, evals: Tensor, evecs: Tensor) -> tuple[Tensor, Tensor]:
    """Pose from the homography between the points' principal plane and the image (normalised DLT).

    Returns:
        M: (B, 3, 3) matrix whose nearest rotation is R (model to camera). t: (B, 3) camera coordinates of the
        weighted centroid, mm.
    """
    B = x.shape[0]
    dt = x.dtype
    tiny = torch.finfo(dt).tiny
    Q = torch.stack([evecs[..., 2], evecs[..., 1], torch.linalg.cross(evecs[..., 2], evecs[..., 1])], -1)
    sig_s = (evals[:, 2] + evals[:, 1]).clamp_min(tiny).sqrt()
    s = (Q[..., :2].transpose(1, 2) @ x) / sig_s[:, None, None]  # (B, 2, N) plane coordinates
    wsum = w.sum(-1).clamp_min(tiny)
    mu = (un * w.unsqueeze(1)).sum(-1) / wsum.unsqueeze(-1)
    d = un - mu.unsqueeze(-1)
    sig_u = (((d * d).sum(1) * w).sum(-1) / wsum).clamp_min(tiny).sqrt()
    v = d / sig_u[:, None, None]
    h = torch.cat([s, torch.ones_like(s[:, :1])], 1)  # (B, 3, N) homogeneous plane coordinates
    _, V = torch.linalg.eigh(_normal_matrix(h, v, w))
    Hn = V[:, :, 0].reshape(B, 3, 3).transpose(1, 2)  # unknowns are ordered (plane coordinate, image row)
    # undo the normalisations: H = T_u^-1 Hn T_s
    one, zero = torch.ones_like(sig_u), torch.zeros_like(sig_u)
    Tu_inv = torch.stack([sig_u, zero, mu[:, 0], zero, sig_u, mu[:, 1], zero, zero, one], -1).view(B, 3, 3)
    Ts = torch.diag_embed(torch.stack([1 / sig_s, 1 / sig_s, torch.ones_like(sig_s)], -1))
    H = Tu_inv @ Hn @ Ts
    h1, h2, h3 = H.unbind(-1)
    lam = 1 / (h1.norm(dim=-1) * h2.norm(dim=-1)).clamp_min(tiny).sqrt()
    lam = torch.where(h3[:, 2] < 0, -lam, lam)
    c1, c2 = lam[:, None] * h1, lam[:, None] * h2
    Mp = torch.stack([c1, c2, torch.linalg.cross(c1, c2)], -1)  # plane-frame rotation (not yet orthonormal)
    return Mp @ Q.transpose(-1, -2), lam[:, None] * h3


def initial_pose(
    x: Tensor,
    u: Tensor,
    A: Tensor,
    c: Tensor,
    w: Tensor,
    *,
    pca: tuple[Tensor, Tensor] | None = None,
    all_candidates: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Best of four closed-form candidates (three EPnP beta approximations and a plane homography) per item.

    Args:
        x: (B, 3, N) model points centred on their weighted centroid, mm.
        u: (B, 2, N) observed pixels. A: (B, 2, 2) ``K[:2, :2]``. c: (B, 2) ``K[:2, 2]``. w: (B, N) >= 0.
        pca: ``(evals, evecs)`` of ``x`` from :func:`weighted_pca`, if already computed.
        all_candidates: return all four candidates, best first, instead of the best one.
    Returns:
        R: (B, 3, 3) (or (B, 4, 3, 3)). t: (B, 3) mm (or (B, 4, 3)), so that ``R x + t`` are the camera-frame
        points. cost: (B,) (or (B, 4)) reprojection cost, px^2 (inf where not finite), summed over at most
        ``SCORE_POINTS`` usable points spread over the input order.
    """
    B, _, N = x.shape
    un = normalised_coords(u, A, c)
    if pca is None:
        _, evals, evecs = weighted_pca(x, w)
    else:
        evals, evecs = pca
    M_e, t_e = epnp_candidates(x, un, w, evals, evecs)
    M_h, t_h = homography_pose(x, un, w, evals, evecs)
    R = nearest_rotation(torch.cat([M_e, M_h.unsqueeze(1)], 1))  # (B, 4, 3, 3)
    t = torch.cat([t_e, t_h.unsqueeze(1)], 1)
    # ranking four candidates needs no more than a few hundred points
    xs, us, ws = (x, u, w) if N <= SCORE_POINTS else spread_subset(x, u, w, SCORE_POINTS)
    err2, z = obj.sq_errors(R, t, xs, A, c, us)
    used = (ws > 0).unsqueeze(1)
    cost = (torch.where(used, err2, torch.zeros_like(err2)) * ws.unsqueeze(1)).sum(-1)
    cost = torch.where(torch.isfinite(cost), cost, torch.full_like(cost, float("inf")))
    # a candidate that puts used points behind the camera ranks after every one that does not
    behind = ((z <= 0) & used).any(-1)
    order = torch.argsort(torch.where(behind, cost + torch.finfo(x.dtype).max / 4, cost), dim=-1)
    R = R.gather(1, order[:, :, None, None].expand(B, -1, 3, 3))
    t = t.gather(1, order[:, :, None].expand(B, -1, 3))
    cost = cost.gather(1, order)
    if all_candidates:
        return R, t, cost
    return R[:, 0], t[:, 0], cost[:, 0]


def initial_pose_any_frame(x: Tensor, u: Tensor, A: Tensor, c: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`initial_pose` of points in any frame: centred on their weighted centroid for the solvers, and the pose
    moved back to ``x``'s frame.

    Args:
        x: (B, 3, N) model points, mm. u: (B, 2, N) px. A: (B, 2, 2). c: (B, 2). w: (B, N) >= 0.
    Returns:
        R: (B, 3, 3). t: (B, 3) mm, so that ``R x + t`` are the camera-frame points.
    """
    mean, evals, evecs = weighted_pca(x, w)
    R, t, _ = initial_pose(x - mean.unsqueeze(-1), u, A, c, w, pca=(evals, evecs))
    return R, t - (R @ mean.unsqueeze(-1)).squeeze(-1)


def spread_subset(x: Tensor, u: Tensor, w: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """``k`` of each item's usable points (w > 0), evenly spread over their order, so that a solver or a score run on
    them sees the whole object at a fraction of the cost (items with fewer than ``k`` usable points repeat some).

    Args:
        x: (B, 3, N) model points, mm. u: (B, 2, N) px. w: (B, N) weights. k: points to keep.
    Returns:
        x: (B, 3, k). u: (B, 2, k). w: (B, k).
    """
    used = w > 0
    order = torch.sort((~used).to(torch.int8), dim=-1, stable=True).indices  # usable points first
    n = used.sum(-1, keepdim=True).clamp_min(1)
    pos = (torch.arange(k, device=w.device, dtype=torch.float64) / k * n).long()
    idx = order.gather(1, pos).unsqueeze(1)
    return x.gather(2, idx.expand(-1, 3, -1)), u.gather(2, idx.expand(-1, 2, -1)), w.gather(1, idx.squeeze(1))


def normalised_coords(u: Tensor, A: Tensor, c: Tensor) -> Tensor:
    """``A^{-1} (u - c)`` (closed-form 2x2 inverse; garbage but finite where ``A`` is singular).

    Args:
        u: (B, 2, N) px. A: (B, 2, 2). c: (B, 2) px.
    Returns:
        (B, 2, N).
    """
    det = A[:, 0, 0] * A[:, 1, 1] - A[:, 0, 1] * A[:, 1, 0]
    det = torch.where(det == 0, torch.ones_like(det), det)
    adj = torch.stack([torch.stack([A[:, 1, 1], -A[:, 0, 1]], -1), torch.stack([-A[:, 1, 0], A[:, 0, 0]], -1)], -2)
    return (adj / det[:, None, None]) @ (u - c.unsqueeze(-1))


__all__ = [
    "initial_pose",
    "initial_pose_any_frame",
    "weighted_pca",
    "normalised_coords",
    "spread_subset",
    "epnp_candidates",
    "homography_pose",
]
