"""Rotational symmetries of a triangle mesh, found on points sampled from its surface.

A rigid transform ``T`` (rotation ``R`` about an axis through a point ``c``, so ``x -> R (x - c) + c``) is a symmetry
when it maps the surface onto itself: the points sampled uniformly on the surface (by area), transformed, lie on the
surface again. Since ``T`` preserves area, ``T(S)`` inside ``S`` means ``T(S) = S``, so one direction suffices. The
distance of a transformed point to the surface is measured as its nearest distance to a second, denser and
independent sample (a KD-tree); its mean and maximum over the query points, relative to the diameter, decide.

Candidates, all through the area centroid ``c`` (every rotational symmetry fixes it), about the principal axes of
the surface's exact second moments (:func:`surface_moments`; when all three moments are equal, as for a cube, also
about directions spread over a hemisphere):

- continuous: an axis is tested at a few angles that are no multiple of 360/n for n <= 12; passing all makes it a
  continuous symmetry axis (two such axes: a sphere);
- discrete: the largest n (2..12) whose turn by 360/n, and each of its powers, passes; then 180 degree flips about
  the axes perpendicular to the main axis, scanned every 2 degrees (a square or round cross-section leaves the
  in-plane principal axes undetermined);
- a candidate that passes the coarse filter is refined by point-to-point ICP and snapped to an exact turn
  (:func:`snap_rotation`), which absorbs a scan's small misalignment of the principal axes; the accepted rotations
  are closed into a group (products of symmetries are symmetries), identity removed. Beside a continuous axis only
  one flip is kept: with the axis it generates all the others.

Units: mm throughout; transforms are (4, 4) model-to-model matrices ``[[R, t], [0, 1]]`` with ``t`` in mm, as in
BOP's ``models_info.json``.

>>> import numpy as np
>>> v = np.array([[x, y, z] for x in (-30, 30) for y in (-20, 20) for z in (-10, 10)], np.float64)
>>> f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
...               [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
>>> len(find_symmetries(v, f).discrete)  # a box with three distinct sides: three 180 degree turns
3
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bopnp.errors import ConfigError

#: angles (degrees) at which a continuous symmetry is tested: none is a multiple of 360/n for n = 2..12
CONTINUOUS_TEST_DEG = (23.0, 71.0, 137.0, 199.0, 263.0)

#: the largest change of a candidate by ICP: a refinement that goes further found another candidate
MAX_REFINE_DEG = 5.0

#: moments within this ratio count as equal: the principal axes are then no candidates of their own
ISOTROPIC_RATIO = 1.05
#: candidate axes spread over a hemisphere when the moments are all equal
HEMISPHERE_AXES = 150

#: query points that ICP refines on
ICP_POINTS = 1000
#: the coarse filter caps each distance at this multiple of mean_tol (x d), and drops a candidate whose capped
#: mean exceeds COARSE_FACTOR x mean_tol (true symmetries of LM-O's scans: about 1 x)
COARSE_CAP = 5.0
COARSE_FACTOR = 2.5

#: (N,) face indices, (N, 3) barycentric weights -> (N, 3) RGB in [0, 1]: the colour of sampled surface points
AppearanceFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SymmetryConfig:
    """How symmetries are searched and when a candidate is accepted.

    The default tolerances are relative to the diameter ``d`` and were set on real scans, LM-O's models. A
    candidate is accepted when the transformed surface points lie on average within ``mean_tol`` x d of the surface
    (1 %) and everywhere within ``max_tol`` x d (8 %). The symmetries BOP declares for LM-O's eggbox and glue give
    a mean of 0.6 to 0.8 % and a maximum of 5 to 6 % (scan noise, holes and small details that BOP overlooks; the
    sampling itself accounts for 0.2 % and 0.7 %), while the best candidate of each of the six asymmetric objects
    stays at a mean of 1.0 % or more with a maximum of 13 % or more (the watering can's half turn comes
    closest on average, but its spout moves far). The maximum is what separates, so it keeps a margin on both
    sides; clean procedural meshes sit at the sampling floor, far below both.

    Attributes:
        samples: query points on the surface (the transformed ones).
        reference_samples: reference points on the surface (the KD-tree): the spacing sqrt(area / this) bounds
            the distance resolution; it must exceed ``samples``.
        mean_tol: largest accepted mean distance, fraction of the diameter.
        max_tol: largest accepted maximum distance, fraction of the diameter.
        max_order: largest n of the 360/n rotations tried (2 <= n <= max_order).
        flip_step_deg: angular step of the scan for flip axes perpendicular to the main axis.
        icp_iterations: ICP steps that refine a near-miss candidate.
        color_tol: with an appearance function, two colours differ when a channel (RGB in [0, 1]) differs by more
            than this (0.1, about 25 of 255: above interpolation and the shading noise of a scan).
        appearance_tol: the largest accepted fraction of transformed points whose colour differs from that of their
            nearest reference point (3 %: exact symmetries of the procedural objects leave 1 % or less, at sharp
            colour edges, while a decal covering a tenth of one side is caught).
        seed: seed of the surface sampling (same seed, same result).
    """

    samples: int = 3000
    reference_samples: int = 100000
    mean_tol: float = 0.01
    max_tol: float = 0.08
    max_order: int = 12
    flip_step_deg: float = 2.0
    icp_iterations: int = 10
    color_tol: float = 0.1
    appearance_tol: float = 0.03
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field and the range it needs."""
        if not 100 <= self.samples < self.reference_samples:
            raise ConfigError(
                f"samples must be >= 100 and below reference_samples ({self.reference_samples}), got {self.samples}"
            )
        if not 0 < self.mean_tol <= self.max_tol < 1:
            raise ConfigError(f"need 0 < mean_tol <= max_tol < 1, got {self.mean_tol} and {self.max_tol}")
        if not 2 <= self.max_order <= 36:
            raise ConfigError(f"max_order must be in 2..36, got {self.max_order}")
        if not 0.1 <= self.flip_step_deg <= 30:
            raise ConfigError(f"flip_step_deg must be in [0.1, 30], got {self.flip_step_deg}")
        if not 0 <= self.icp_iterations <= 100:
            raise ConfigError(f"icp_iterations must be in 0..100, got {self.icp_iterations}")
        if not (0 < self.appearance_tol <= 1 and 0 < self.color_tol <= 1):
            raise ConfigError(
                f"appearance_tol and color_tol must be in (0, 1], got {self.appearance_tol}, {self.color_tol}"
            )


@dataclass(frozen=True)
class Score:
    """How well one transform maps the surface onto itself.

    Attributes:
        mean_rel: mean distance of the transformed points to the surface, fraction of the diameter.
        max_rel: maximum of those distances, fraction of the diameter.
        color: the fraction of points whose colour differs (see ``SymmetryConfig.color_tol``), or None without
            appearance.
    """

    mean_rel: float
    max_rel: float
    color: float | None = None


@dataclass(frozen=True)
class SymmetryResult:
    """The symmetries of a mesh, in BOP's conventions.

    Attributes:
        discrete: (K, 4, 4) float64 model-to-model transforms (t in mm), identity excluded, closed as a group.
        continuous: BOP dicts ``{"axis": [x, y, z] unit, "offset": [x, y, z] mm}`` (a point of the axis).
        sphere: True when the surface is invariant about every axis tried; BOP's format cannot say that, so one
            continuous axis and a flip are written and the caller should warn.
        scores: a line per accepted candidate (for reports).
        centroid_mm: (3,) the area centroid, mm: the point every symmetry fixes.
    """

    discrete: np.ndarray
    continuous: tuple[dict, ...] = ()
    sphere: bool = False
    scores: tuple[str, ...] = ()
    centroid_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))


# ------------------------------------------------------------------------------------------------ sampling
def sample_surface(
    vertices_mm: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points drawn uniformly (by area) on a triangle mesh.

    Args:
        vertices_mm: (V, 3) vertices, mm.
        faces: (F, 3) vertex indices.
        n: the number of points.
        rng: the source of randomness.
    Returns:
        points (n, 3) mm, face index (n,), barycentric weights (n, 3).

    >>> v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> p, f, b = sample_surface(v, np.array([[0, 1, 2]]), 5, np.random.default_rng(0))
    >>> bool((p[:, 0] + p[:, 1] <= 1 + 1e-12).all() and np.allclose(b.sum(1), 1))
    True
    """
    v = np.asarray(vertices_mm, np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    cdf = np.cumsum(area)
    face = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").clip(0, len(faces) - 1)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    points = bary[:, :1] * a[face] + bary[:, 1:2] * b[face] + bary[:, 2:] * c[face]
    return points, face, bary


def surface_moments(vertices_mm: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The area centroid and the second moments about it of a triangle mesh's surface, exact (no sampling).

    Over a triangle (a, b, c) of area A: the integral of x is A (a + b + c) / 3 and the integral of x x^T is
    A / 12 (a a^T + b b^T + c c^T + s s^T) with s = a + b + c.

    Args:
        vertices_mm: (V, 3) vertices, mm.
        faces: (F, 3) vertex indices.
    Returns:
        centroid (3,) mm, covariance (3, 3) mm^2 (per unit area).

    >>> v = np.array([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]])
    >>> c, C = surface_moments(v, np.array([[0, 1, 2], [0, 2, 3]]))
    >>> np.round(c, 12).tolist(), np.round(np.diag(C), 6).tolist()
    ([0.0, 0.0, 0.0], [0.333333, 0.333333, 0.0])
    """
    v = np.asarray(vertices_mm, np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = area.sum()
    s = a + b + c
    centroid = (area[:, None] * s).sum(0) / (3 * total)
    second = np.einsum("f,fi,fj->ij", area, a, a) + np.einsum("f,fi,fj->ij", area, b, b)
    second += np.einsum("f,fi,fj->ij", area, c, c) + np.einsum("f,fi,fj->ij", area, s, s)
    cov = second / (12 * total) - np.outer(centroid, centroid)
    return centroid, (cov + cov.T) / 2


def vertex_color_appearance(faces: np.ndarray, colors: np.ndarray) -> AppearanceFn:
    """An appearance function that interpolates per-vertex colours (V, 3) (uint8 0..255 or float 0..1)."""
    col = np.asarray(colors, np.float64)[:, :3]
    if np.issubdtype(np.asarray(colors).dtype, np.integer):
        col = col / 255.0

    def fn(face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        tri = faces[face]  # (N, 3)
        return np.einsum("nk,nkc->nc", bary, col[tri])

    return fn


# ---------------------------------------------------------------------------------------------- transforms
def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """(3, 3) right-handed rotation by ``angle_rad`` about ``axis`` (3,) (any nonzero length)."""
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + math.sin(angle_rad) * K + (1.0 - math.cos(angle_rad)) * (K @ K)


def rigid_about(R: np.ndarray, centre_mm: np.ndarray) -> np.ndarray:
    """(4, 4) transform ``x -> R (x - c) + c``: rotation ``R`` (3, 3) about the point ``c`` (3,) mm."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = centre_mm - R @ centre_mm
    return T


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(4, 4) least-squares rigid transform mapping src (N, 3) onto dst (N, 3)."""
    cs, cd = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - cs).T @ (dst - cd))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = cd - R @ cs
    return T


def _angle_between_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    c = (np.trace(R1.T @ R2) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def _axis_of(R: np.ndarray) -> np.ndarray:
    """The unit rotation axis of R (3, 3) (for a 180 degree turn, the eigenvector of eigenvalue 1)."""
    w, V = np.linalg.eig(R)
    k = int(np.argmin(np.abs(w - 1.0)))
    a = np.real(V[:, k])
    return a / np.linalg.norm(a)


# ------------------------------------------------------------------------------------------------- search
class _Surface:
    """The query and reference samples of one mesh and the scoring of transforms on them."""

    def __init__(self, vertices_mm, faces, diameter_mm, appearance, config: SymmetryConfig):
        from scipy.spatial import cKDTree

        rng = np.random.default_rng(config.seed)
        self.config = config
        self.diameter = float(diameter_mm)
        self.P, fp, bp = sample_surface(vertices_mm, faces, config.samples, rng)
        self.Q, fq, bq = sample_surface(vertices_mm, faces, config.reference_samples, rng)
        self.tree = cKDTree(self.Q)
        # the coarse filter: fewer points against a sparser tree (Q is i.i.d., so its head is a uniform sample)
        self.coarse = self.P[: max(100, config.samples // 10)]
        self.coarse_tree = cKDTree(self.Q[: max(config.samples, config.reference_samples // 8)])
        self.color_P = self.color_Q = None
        if appearance is not None:
            self.color_P = np.asarray(appearance(fp, bp), np.float64)
            self.color_Q = np.asarray(appearance(fq, bq), np.float64)
        self.centroid, cov = surface_moments(vertices_mm, faces)
        evals, evecs = np.linalg.eigh(cov)
        self.evals, self.axes = evals, evecs.T  # ascending; axes[i] unit

    def mean_rel(self, T: np.ndarray, points: np.ndarray, cap: float) -> float:
        """Mean distance of ``points`` (N, 3) transformed by T to the coarse reference, each distance capped at ``cap``
        (a fraction of the diameter): a lower bound of the true mean, cheap for a candidate far off (the cost of
        a nearest-neighbour query grows with the distance it has to search)."""
        bound = cap * self.diameter
        d, _ = self.coarse_tree.query(points @ T[:3, :3].T + T[:3, 3], distance_upper_bound=bound)
        return float(np.minimum(d, bound).mean()) / self.diameter

    def score(self, T: np.ndarray) -> Score:
        """Mean and maximum distance of the query points under T; a point further than ``max_tol`` x d from the
        surface (which rejects T) makes the maximum infinite and the mean a lower bound."""
        bound = self.config.max_tol * self.diameter * 1.0001
        d, idx = self.tree.query(self.P @ T[:3, :3].T + T[:3, 3], distance_upper_bound=bound)
        far = ~np.isfinite(d)
        color = None
        if self.color_P is not None and not far.any():
            diff = np.abs(self.color_P - self.color_Q[idx]).max(axis=1)
            color = float((diff > self.config.color_tol).mean())
        mean = float(np.where(far, bound, d).mean()) / self.diameter
        return Score(mean, float(d.max()) / self.diameter, color)

    def accepts(self, s: Score) -> bool:
        c = self.config
        ok = s.mean_rel <= c.mean_tol and s.max_rel <= c.max_tol
        return ok and (s.color is None or s.color <= c.appearance_tol)

    def refine(self, T: np.ndarray) -> np.ndarray:
        """ICP from T on the first query points: the rigid transform that best maps them onto their nearest
        reference points (the farthest tenth and points beyond the coarse cap left out, so that holes and loose
        scan fragments do not pull)."""
        bound = COARSE_CAP * self.config.mean_tol * self.diameter
        pts = self.P[:ICP_POINTS]
        for _ in range(self.config.icp_iterations):
            d, idx = self.tree.query(pts @ T[:3, :3].T + T[:3, 3], distance_upper_bound=bound)
            near = np.isfinite(d)
            if near.sum() < 10:
                return T
            keep = near & (d <= np.quantile(d[near], 0.9))
            T_new = _kabsch(pts[keep], self.Q[idx[keep]])
            if np.abs(T_new - T).max() < 1e-7:
                return T_new
            T = T_new
        return T

    def evaluate(self, T: np.ndarray) -> tuple[np.ndarray, Score] | None:
        """T or its ICP refinement (snapped to an exact rotation, moved less than MAX_REFINE_DEG), whichever fits
        better, when it is a symmetry; else None. A candidate whose coarse mean distance is far beyond the
        tolerance is dropped at once."""
        if self.mean_rel(T, self.coarse, COARSE_CAP * self.config.mean_tol) > COARSE_FACTOR * self.config.mean_tol:
            return None
        s = self.score(T)
        T_ref = snap_rotation(self.refine(T), self.centroid, self.config.max_order)
        if _angle_between_deg(T_ref[:3, :3], T[:3, :3]) <= MAX_REFINE_DEG:
            s_ref = self.score(T_ref)
            if self.accepts(s_ref) and (not self.accepts(s) or s_ref.mean_rel < 0.98 * s.mean_rel):
                T, s = T_ref, s_ref
        return (T, s) if self.accepts(s) else None


def snap_rotation(T: np.ndarray, centre_mm: np.ndarray, max_order: int = 12) -> np.ndarray:
    """The exact finite-order rotation nearest to a rigid transform found by refinement.

    The angle is rounded to the nearest 360 k / n degrees (2 <= n <= max_order), the screw translation along the
    axis is dropped, and the axis passes through the point nearest to ``centre_mm`` that T moves least. Powers and
    products of snapped symmetries then close into a finite group instead of drifting.

    Args:
        T: (4, 4) rigid transform, t in mm.
        centre_mm: (3,) the point the axis should pass near (the centroid), mm.
        max_order: largest n considered.
    Returns:
        (4, 4) rotation about an axis, t in mm.
    """
    R, t = T[:3, :3], T[:3, 3]
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    axis = w / np.linalg.norm(w) if np.linalg.norm(w) > 1e-6 else _axis_of(R)
    angle = math.acos(min(1.0, max(-1.0, (np.trace(R) - 1.0) / 2.0)))
    if np.linalg.norm(w) > 1e-6 and axis @ w < 0:
        angle = -angle
    fractions = {round(2 * math.pi * k / n, 12) for n in range(2, max_order + 1) for k in range(n + 1)}
    turn = angle % (2 * math.pi)
    snapped = min(fractions, key=lambda f: abs(f - turn))
    A = np.eye(3) - R
    p = centre_mm + np.linalg.lstsq(A, t - A @ centre_mm, rcond=1e-6)[0]
    return rigid_about(rotation_about(axis, snapped), p)


def _close_group(
    elements: list[np.ndarray], centre_mm: np.ndarray, max_order: int, limit: int = 60
) -> list[np.ndarray] | None:
    """The group generated by (4, 4) rotations, best first: each generator that is not yet in the group is added
    and the group closed under snapped products (rotations within 3 degrees count as equal), so products of the
    best-fitting generators stand in for the less precise ones. Returns the elements, identity first, or None when
    it passes ``limit`` elements (the generators do not form a finite group of rotations the search can name)."""

    def same(A, B):
        return _angle_between_deg(A[:3, :3], B[:3, :3]) < 3.0

    group = [np.eye(4)]
    for generator in elements:
        frontier = [snap_rotation(generator, centre_mm, max_order)]
        while frontier:
            T = frontier.pop(0)
            if any(same(T, G) for G in group):
                continue
            if len(group) >= limit:
                return None
            group.append(T)
            frontier.extend(snap_rotation(T @ G, centre_mm, max_order) for G in group)
            frontier.extend(snap_rotation(G @ T, centre_mm, max_order) for G in group)
    return group


def find_symmetries(
    vertices_mm: np.ndarray,
    faces: np.ndarray,
    diameter_mm: float | None = None,
    *,
    appearance: AppearanceFn | None = None,
    config: SymmetryConfig | None = None,
) -> SymmetryResult:
    """The rotational symmetries of a triangle mesh (see the module's docstring for the method).

    Args:
        vertices_mm: (V, 3) finite vertices, mm.
        faces: (F, 3) vertex indices, F >= 1, with a nonzero total area.
        diameter_mm: the object's diameter (the tolerances scale with it); None: estimated from the samples.
        appearance: colour of surface points (see :data:`AppearanceFn`, :func:`vertex_color_appearance`): when
            given, a symmetry must also map colours onto equal colours.
        config: the search settings; defaults to :class:`SymmetryConfig`.
    Returns:
        a :class:`SymmetryResult` (discrete transforms closed as a group, identity excluded; continuous axes).
    """
    config = config or SymmetryConfig()
    config.validate()
    vertices_mm = np.asarray(vertices_mm, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if diameter_mm is None:
        from scipy.spatial.distance import pdist

        diameter_mm = float(pdist(vertices_mm[faces.reshape(-1)][:: max(1, faces.size // 2000)]).max())
    surf = _Surface(vertices_mm, faces, diameter_mm, appearance, config)
    c = surf.centroid
    lines: list[str] = []

    # candidate axes: the principal axes; when the three moments are (nearly) equal they say nothing (a cube, a
    # regular polyhedron), so directions spread over a hemisphere are added
    candidates = list(surf.axes)
    if surf.evals[2] <= ISOTROPIC_RATIO * surf.evals[0]:
        candidates += list(_hemisphere(HEMISPHERE_AXES))

    # continuous symmetry about a candidate axis (refined by ICP once when the coarse test passes: a scan's
    # principal axis can be off by a degree, which the larger test angles do not forgive)
    continuous_axes: list[np.ndarray] = []
    points: list[np.ndarray] = []

    def continuous_scores(axis, point) -> list[Score] | None:
        scores = []
        for deg in CONTINUOUS_TEST_DEG:
            s = surf.score(rigid_about(rotation_about(axis, math.radians(deg)), point))
            if not surf.accepts(s):
                return None
            scores.append(s)
        return scores

    for axis in candidates:
        if any(abs(axis @ a) > 0.99 for a in continuous_axes):
            continue
        T0 = rigid_about(rotation_about(axis, math.radians(CONTINUOUS_TEST_DEG[1])), c)
        if surf.mean_rel(T0, surf.coarse, COARSE_CAP * config.mean_tol) > COARSE_FACTOR * config.mean_tol:
            continue
        point = c
        scores = continuous_scores(axis, point)
        if scores is None:
            T = surf.refine(T0)
            refined = _axis_of(T[:3, :3])
            if abs(refined @ axis) > math.cos(math.radians(MAX_REFINE_DEG)):
                axis = refined * np.sign(refined @ axis)
                A = np.eye(3) - T[:3, :3]
                point = c + np.linalg.lstsq(A, T[:3, 3] - A @ c, rcond=1e-6)[0]
                scores = continuous_scores(axis, point)
        if scores is not None:
            continuous_axes.append(axis)
            points.append(point)
            worst = max(scores, key=lambda s: s.mean_rel)
            lines.append(f"continuous about {_fmt(axis)}: mean {worst.mean_rel:.2%} max {worst.max_rel:.2%} of d")
        if len(continuous_axes) >= 2:
            break
    sphere = len(continuous_axes) >= 2  # two continuous axes generate every rotation

    accepted: list[np.ndarray] = []
    quality: list[float] = []  # mean distance of each accepted rotation

    def take(name: str, T: np.ndarray, order: int = 2) -> bool:
        """Accept T when it, and its powers up to ``order - 1``, are symmetries (a turn by 360/7 degrees can pass
        on a hexagonal prism, twice that cannot)."""
        found = surf.evaluate(T)
        if found is None:
            return False
        T, s = found
        P = T
        for _ in range(order - 2):
            P = snap_rotation(P @ T, c, config.max_order)
            if not surf.accepts(surf.score(P)):
                return False
        accepted.append(T)
        quality.append(s.mean_rel)
        extra = "" if s.color is None else f", colour differs on {s.color:.1%}"
        lines.append(f"{name}: mean {s.mean_rel:.2%} max {s.max_rel:.2%} of d{extra}")
        return True

    # discrete turns about the principal axes: the largest n whose 360/n turn is a symmetry
    orders: dict[int, int] = {}
    if not sphere:
        for i, axis in enumerate(candidates):
            if any(abs(axis @ a) > 0.99 for a in continuous_axes):
                continue
            # beyond the principal axes (a cube's, an icosahedron's) only the orders of polyhedral groups
            top = config.max_order if i < 3 else min(5, config.max_order)
            for n in range(top, 1, -1):
                if take(f"{n}-fold about {_fmt(axis)}", rigid_about(rotation_about(axis, 2 * math.pi / n), c), n):
                    orders[i] = n
                    break

    # 180 degree flips about axes perpendicular to the main axis: a continuous one, else the highest order,
    # else the principal axis whose moment is most distinct from the other two
    if continuous_axes:
        main = continuous_axes[0]
    elif orders:
        main = candidates[max(orders, key=lambda i: (orders[i], -i))]
    else:
        gaps = [min(abs(surf.evals[i] - surf.evals[j]) for j in range(3) if j != i) for i in range(3)]
        main = surf.axes[int(np.argmax(gaps))]
    u = np.cross(main, surf.axes[0] if abs(main @ surf.axes[0]) < 0.9 else surf.axes[1])
    u /= np.linalg.norm(u)
    w = np.cross(main, u)
    angles = np.arange(0.0, 180.0, config.flip_step_deg)
    coarse = np.array(
        [
            surf.mean_rel(
                rigid_about(rotation_about(math.cos(t) * u + math.sin(t) * w, math.pi), c),
                surf.coarse,
                COARSE_CAP * config.mean_tol,
            )
            for t in np.radians(angles)
        ]
    )
    # local minima of the (circular) scan, best first
    minima = [
        k for k in range(len(angles)) if coarse[k] <= coarse[k - 1] and coarse[k] <= coarse[(k + 1) % len(angles)]
    ]
    for k in sorted(minima, key=lambda k: coarse[k]):
        t = math.radians(angles[k])
        axis = math.cos(t) * u + math.sin(t) * w
        R = rotation_about(axis, math.pi)
        if any(_angle_between_deg(R, A[:3, :3]) < 2 * config.flip_step_deg for A in accepted):
            continue
        take(f"flip about {_fmt(axis)}", rigid_about(R, c))
        if continuous_axes:
            break  # one flip and the continuous axis give all the others

    if sphere:
        axis = continuous_axes[0]
        continuous_axes, points = [axis], [c]
        if not any(abs(_axis_of(A[:3, :3]) @ axis) < 0.1 for A in accepted):
            flip_axis = np.cross(axis, surf.axes[0] if abs(axis @ surf.axes[0]) < 0.9 else surf.axes[1])
            accepted.append(rigid_about(rotation_about(flip_axis, math.pi), c))
            quality.append(0.0)

    if continuous_axes:
        # only the flips count beside a continuous axis: turns about the axis itself are part of it, and a flip
        # composed with them gives the flips about every perpendicular axis
        a = continuous_axes[0]
        flips = [A for A in accepted if abs(_axis_of(A[:3, :3]) @ a) < 0.1]
        group = [np.eye(4)] + [snap_rotation(T, c, 2) for T in flips[:1]]
    else:
        best_first = [accepted[k] for k in np.argsort(quality, kind="stable")]
        group = _close_group(best_first, c, config.max_order)
        if group is None:  # not a finite group: keep what was verified
            lines.append("the accepted rotations do not close into a finite group: only they are listed")
            group = [np.eye(4)] + [snap_rotation(T, c, config.max_order) for T in accepted]
    discrete = np.stack(group[1:]) if len(group) > 1 else np.zeros((0, 4, 4))
    continuous = tuple({"axis": a.tolist(), "offset": p.tolist()} for a, p in zip(continuous_axes, points))
    return SymmetryResult(discrete, continuous, sphere, tuple(lines), c)


def _hemisphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the upper hemisphere (a Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    z = 1.0 - k / n
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:+.3f}" for x in v) + ")"
