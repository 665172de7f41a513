"""Batched minimal solver: the (up to four) poses that map three model points onto three viewing rays.

The depths ``lam_i`` of the three points along their unit rays ``y_i`` satisfy, for each pair,
``lam_i^2 + lam_j^2 - 2 b_ij lam_i lam_j = a_ij`` (``b_ij = y_i . y_j``, ``a_ij = |x_i - x_j|^2``): three conics in
``lam``. Two homogeneous combinations ``lam^T D1 lam = lam^T D2 lam = 0`` span a pencil; a degenerate member
``D0 = D1 + g D2`` (a root of the cubic ``det(D0) = 0`` for which ``D0`` is indefinite) factors into two planes through
the origin, and each plane meets the remaining conic in two rays: up to four solutions, refined by Gauss-Newton on
the three original equations. This is the construction of Persson and Nordberg, "Lambda Twist: an accurate fast robust
perspective three point (P3P) solver", ECCV 2018, written here for whole batches with masks instead of branches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bopnp.geometry import nearest_rotation


def _pair_forms(b12: Tensor, b13: Tensor, b23: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The quadratic forms ``M_ij`` of ``lam_i^2 + lam_j^2 - 2 b_ij lam_i lam_j``: three (M, 3, 3)."""
    M = b12.shape[0]
    z = torch.zeros(M, 3, 3, dtype=b12.dtype, device=b12.device)
    M12, M13, M23 = z.clone(), z.clone(), z.clone()
    M12[:, 0, 0] = M12[:, 1, 1] = 1
    M12[:, 0, 1] = M12[:, 1, 0] = -b12
    M13[:, 0, 0] = M13[:, 2, 2] = 1
    M13[:, 0, 2] = M13[:, 2, 0] = -b13
    M23[:, 1, 1] = M23[:, 2, 2] = 1
    M23[:, 1, 2] = M23[:, 2, 1] = -b23
    return M12, M13, M23


def _adj_trace(A: Tensor, B: Tensor) -> Tensor:
    """``tr(adj(A) B)`` for symmetric (M, 3, 3) matrices: the mixed term of ``det(A + g B)``."""
    a1, a2, a3 = A.unbind(-1)
    b1, b2, b3 = B.unbind(-1)
    return (
        (torch.linalg.cross(a2, a3) * b1).sum(-1)
        + (torch.linalg.cross(a3, a1) * b2).sum(-1)
        + (torch.linalg.cross(a1, a2) * b3).sum(-1)
    )


def cubic_real_roots(c3: Tensor, c2: Tensor, c1: Tensor, c0: Tensor) -> tuple[Tensor, Tensor]:
    """Real roots of ``c3 g^3 + c2 g^2 + c1 g + c0`` (closed form, then two Newton steps).

    Returns:
        roots: (M, 3), ok: (M, 3) bool (False for a complex root, or where ``c3`` vanishes).
    """
    dt = c3.dtype
    tiny = torch.finfo(dt).tiny
    c3s = torch.where(c3.abs() > tiny, c3, torch.ones_like(c3))
    p2, p1, p0 = c2 / c3s, c1 / c3s, c0 / c3s
    P = p1 - p2 * p2 / 3
    Q = 2 * p2**3 / 27 - p2 * p1 / 3 + p0
    disc = (Q / 2) ** 2 + (P / 3) ** 3
    # one real root (disc > 0): Cardano
    sq = disc.clamp_min(0).sqrt()
    u = -Q / 2 + sq
    v = -Q / 2 - sq
    cbrt = lambda x: torch.sign(x) * x.abs().pow(1.0 / 3)  # noqa: E731
    s_one = cbrt(u) + cbrt(v)
    # three real roots (disc <= 0): trigonometric form
    Pn = torch.where(P < 0, P, -torch.ones_like(P))
    r = 2 * (-Pn / 3).sqrt()
    arg = (3 * Q / (2 * Pn) * (-3 / Pn).sqrt()).clamp(-1, 1)
    phi = torch.acos(arg)
    ks = torch.arange(3, dtype=dt, device=c3.device)
    s_three = r.unsqueeze(-1) * torch.cos(phi.unsqueeze(-1) / 3 - 2 * math.pi * ks / 3)
    three = (disc <= 0) & (P < 0)
    s = torch.where(three.unsqueeze(-1), s_three, s_one.unsqueeze(-1).expand_as(s_three))
    g = s - p2.unsqueeze(-1) / 3
    for _ in range(2):
        f = ((g + p2.unsqueeze(-1)) * g + p1.unsqueeze(-1)) * g + p0.unsqueeze(-1)
        df = (3 * g + 2 * p2.unsqueeze(-1)) * g + p1.unsqueeze(-1)
        g = g - torch.where(
            df.abs() > tiny, f / torch.where(df.abs() > tiny, df, torch.ones_like(df)), torch.zeros_like(f)
        )
    ok = torch.stack([torch.ones_like(three), three, three], -1) & (c3.abs() > tiny).unsqueeze(-1)
    return g, ok & torch.isfinite(g)


def _sym2_eig(a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Eigen-decomposition of [[a, b], [b, c]]: (mu1 >= mu2, f1, f2) with unit eigenvectors (M, 2)."""
    half = (a - c) / 2
    rad = (half * half + b * b).sqrt()
    mu1 = (a + c) / 2 + rad
    mu2 = (a + c) / 2 - rad
    # eigenvector of mu1: (b, mu1 - a) or (mu1 - c, b), whichever is longer
    v1 = torch.stack([b, mu1 - a], -1)
    v2 = torch.stack([mu1 - c, b], -1)
    f1 = torch.where((v1.norm(dim=-1) >= v2.norm(dim=-1)).unsqueeze(-1), v1, v2)
    n = f1.norm(dim=-1, keepdim=True)
    e1 = torch.tensor([1.0, 0.0], dtype=a.dtype, device=a.device)
    f1 = torch.where(n > 0, f1 / n.clamp_min(torch.finfo(a.dtype).tiny), e1)
    f2 = torch.stack([-f1[..., 1], f1[..., 0]], -1)
    return mu1, mu2, f1, f2


def p3p(y: Tensor, x: Tensor, refine_iters: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """All poses (up to four) placing three model points on three viewing rays.

    Args:
        y: (M, 3, 3) viewing rays (rows; normalised inside), e.g. ``(u_n, v_n, 1)`` from normalised image coordinates.
        x: (M, 3, 3) model points (rows), mm.
        refine_iters: Gauss-Newton steps on the depths.
    Returns:
        R: (M, 4, 3, 3). t: (M, 4, 3) mm, so that ``R x_i + t`` lies on ray ``i``. ok: (M, 4) bool, False for
        missing solutions (fewer than four real ones, negative depths, degenerate samples).
    """
    M = y.shape[0]
    dt = y.dtype
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dt).tiny)
    b12, b13, b23 = (y[:, 0] * y[:, 1]).sum(-1), (y[:, 0] * y[:, 2]).sum(-1), (y[:, 1] * y[:, 2]).sum(-1)
    a12 = ((x[:, 0] - x[:, 1]) ** 2).sum(-1)
    a13 = ((x[:, 0] - x[:, 2]) ** 2).sum(-1)
    a23 = ((x[:, 1] - x[:, 2]) ** 2).sum(-1)
    M12, M13, M23 = _pair_forms(b12, b13, b23)
    D1 = a23[:, None, None] * M12 - a12[:, None, None] * M23
    D2 = a23[:, None, None] * M13 - a13[:, None, None] * M23
    roots, rok = cubic_real_roots(torch.linalg.det(D2), _adj_trace(D2, D1), _adj_trace(D1, D2), torch.linalg.det(D1))
    # among the real roots, take the one whose degenerate conic is most clearly a pair of real planes:
    # the product of its two nonzero eigenvalues (sum of principal 2x2 minors) most negative, relative to its size
    D0s = D1.unsqueeze(1) + roots[..., None, None] * D2.unsqueeze(1)  # (M, 3, 3, 3)
    minors = (
        D0s[..., 0, 0] * D0s[..., 1, 1]
        - D0s[..., 0, 1] ** 2
        + D0s[..., 0, 0] * D0s[..., 2, 2]
        - D0s[..., 0, 2] ** 2
        + D0s[..., 1, 1] * D0s[..., 2, 2]
        - D0s[..., 1, 2] ** 2
    ) / (D0s * D0s).sum((-1, -2)).clamp_min(torch.finfo(dt).tiny)
    minors = torch.where(rok, minors, torch.full_like(minors, float("inf")))
    best = minors.argmin(-1)
    D0 = D0s.gather(1, best[:, None, None, None].expand(M, 1, 3, 3)).squeeze(1)
    split_ok = minors.gather(1, best[:, None]).squeeze(1) < 0
    usable = split_ok & torch.isfinite(D0).flatten(1).all(-1)
    D0 = torch.where(usable[:, None, None], D0, torch.eye(3, dtype=dt, device=y.device))
    sig, E = torch.linalg.eigh(D0)  # ascending: negative, ~0, positive
    sn, sp = (-sig[:, 0]).clamp_min(0).sqrt(), sig[:, 2].clamp_min(0).sqrt()
    e_neg, e_null, e_pos = E[..., 0], E[..., 1], E[..., 2]
    Rs, ts, oks = [], [], []
    for sign in (1.0, -1.0):
        n = sp.unsqueeze(-1) * e_pos + sign * sn.unsqueeze(-1) * e_neg  # normal of a plane containing the depths
        p = e_null
        q = torch.linalg.cross(n, p)
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dt).tiny)
        Pm = torch.stack([p, q], -1)  # (M, 3, 2)
        Q = a13[:, None, None] * (Pm.transpose(1, 2) @ M23 @ Pm) - a23[:, None, None] * (Pm.transpose(1, 2) @ M13 @ Pm)
        mu1, mu2, f1, f2 = _sym2_eig(Q[:, 0, 0], Q[:, 0, 1], Q[:, 1, 1])
        plane_ok = split_ok & (mu1 >= 0) & (mu2 <= 0)
        for s2 in (1.0, -1.0):
            z = (-mu2).clamp_min(0).sqrt().unsqueeze(-1) * f1 + s2 * mu1.clamp_min(0).sqrt().unsqueeze(-1) * f2
            lam = (Pm @ z.unsqueeze(-1)).squeeze(-1)
            lam = torch.where(lam.sum(-1, keepdim=True) < 0, -lam, lam)
            k2 = a23 / (lam.unsqueeze(-2) @ M23 @ lam.unsqueeze(-1)).squeeze(-1).squeeze(-1)
            lam = lam * k2.clamp_min(0).sqrt().unsqueeze(-1)
            for _ in range(refine_iters):
                F = torch.stack(
                    [
                        (lam.unsqueeze(-2) @ Mi @ lam.unsqueeze(-1)).squeeze(-1).squeeze(-1) - ai
                        for Mi, ai in ((M12, a12), (M13, a13), (M23, a23))
                    ],
                    -1,
                )
                J = 2 * torch.stack([(Mi @ lam.unsqueeze(-1)).squeeze(-1) for Mi in (M12, M13, M23)], -2)
                step, info = torch.linalg.solve_ex(J, F.unsqueeze(-1))
                good = (info == 0) & torch.isfinite(step).all((-1, -2))
                lam = lam - torch.where(good[:, None], step.squeeze(-1), torch.zeros_like(lam))
            ok = plane_ok & (k2 > 0) & (lam > 0).all(-1) & torch.isfinite(lam).all(-1)
            Xc = lam.unsqueeze(-1) * y  # (M, 3, 3) camera-frame points
            dw1, dw2 = x[:, 0] - x[:, 1], x[:, 0] - x[:, 2]
            dc1, dc2 = Xc[:, 0] - Xc[:, 1], Xc[:, 0] - Xc[:, 2]
            W = torch.stack([dw1, dw2, torch.linalg.cross(dw1, dw2)], -1)
            C = torch.stack([dc1, dc2, torch.linalg.cross(dc1, dc2)], -1)
            # R W = C  <=>  W^T R^T = C^T
            Rt, info = torch.linalg.solve_ex(W.transpose(1, 2), C.transpose(1, 2))
            R = nearest_rotation(Rt.transpose(1, 2))
            t = Xc.mean(1) - (R @ x.mean(1).unsqueeze(-1)).squeeze(-1)
            ok = ok & (info == 0) & torch.isfinite(R).flatten(1).all(-1) & torch.isfinite(t).all(-1)
            Rs.append(R)
            ts.append(t)
            oks.append(ok)
    R, t, ok = torch.stack(Rs, 1), torch.stack(ts, 1), torch.stack(oks, 1)
    R = torch.where(ok[..., None, None], R, torch.eye(3, dtype=dt, device=y.device))
    return R, torch.where(ok.unsqueeze(-1), t, torch.zeros_like(t)), ok


__all__ = ["p3p", "cubic_real_roots"]
