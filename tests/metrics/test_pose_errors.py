import math

import cv2
import numpy as np
import pytest
import torch

from bopnp.errors import ShapeError
from bopnp.metrics.pose_errors import add, adi, centres_within_diameter, mspd, mssd, sphere_projections_overlap

K_LMO = np.array([[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]])


def _rot(axis, angle):
    R, _ = cv2.Rodrigues(np.asarray(axis, np.float64) / np.linalg.norm(axis) * angle)
    return R


def _t(x, device="cpu"):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64, device=device)


def _random_poses(rng, n):
    R = np.stack([_rot(rng.normal(size=3), rng.uniform(0, math.pi)) for _ in range(n)])
    t = np.stack([rng.uniform(-100, 100, n), rng.uniform(-100, 100, n), rng.uniform(500, 1500, n)], 1)
    return R, t


def _error_inputs(seed: int, n_points: int, n_pairs: int):
    """Model points (mm), estimated and GT poses of ``n_pairs`` pairs, a 2-fold symmetry and LM-O intrinsics
    (numpy float64): ``pts, R_e, t_e, R_g, t_g, sym_R, sym_t, Ks``."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n_points, 3)) * 25
    R_e, t_e = _random_poses(rng, n_pairs)
    R_g, t_g = _random_poses(rng, n_pairs)
    sym_R = np.stack([np.eye(3), _rot([0, 1, 0], math.pi)])
    sym_t = np.zeros((2, 3))
    Ks = np.broadcast_to(K_LMO, (n_pairs, 3, 3)).copy()
    return pts, R_e, t_e, R_g, t_g, sym_R, sym_t, Ks


def _ident_sym():
    return _t(np.eye(3)[None]), _t(np.zeros((1, 3)))


def _loop_max_dist(R_e, t_e, R_g, t_g, pts, syms, K=None):
    """Definition, one pair and one symmetry at a time (independent of the batched code)."""
    best = np.inf
    x_e = pts @ R_e.T + t_e
    for S_R, S_t in syms:
        x_g = pts @ (R_g @ S_R).T + (R_g @ S_t + t_g)
        if K is None:
            d = np.linalg.norm(x_e - x_g, axis=1).max()
        else:
            uv_e, _ = cv2.projectPoints(x_e, np.zeros(3), np.zeros(3), K, None)
            uv_g, _ = cv2.projectPoints(x_g, np.zeros(3), np.zeros(3), K, None)
            d = np.linalg.norm(uv_e[:, 0] - uv_g[:, 0], axis=1).max()
        best = min(best, d)
    return best


def test_mssd_pure_translation_is_its_length(device):
    I = _t(np.eye(3)[None], device)
    pts = _t(np.random.default_rng(0).normal(size=(50, 3)) * 30, device)
    t_g = _t([[0.0, 0.0, 800.0]], device)
    t_e = t_g + _t([[3.0, 4.0, 12.0]], device)
    e = mssd(I, t_e, I, t_g, pts, I, _t(np.zeros((1, 3)), device))
    assert e.device.type == torch.device(device).type
    assert e.item() == pytest.approx(13.0, abs=1e-9)


def test_mssd_and_mspd_match_loop_definition_with_symmetries():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(200, 3)) * np.array([40.0, 25.0, 10.0])
    # a 2-fold symmetry about z through an offset point, and the identity
    off = np.array([5.0, -3.0, 0.0])
    S_R = _rot([0, 0, 1], math.pi)
    syms = [(np.eye(3), np.zeros(3)), (S_R, off - S_R @ off)]
    R_e, t_e = _random_poses(rng, 6)
    R_g, t_g = _random_poses(rng, 6)
    sym_R, sym_t = _t(np.stack([s[0] for s in syms])), _t(np.stack([s[1] for s in syms]))
    got = mssd(_t(R_e), _t(t_e), _t(R_g), _t(t_g), _t(pts), sym_R, sym_t).numpy()
    want = [_loop_max_dist(R_e[i], t_e[i], R_g[i], t_g[i], pts, syms) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    Ks = _t(np.broadcast_to(K_LMO, (6, 3, 3)).copy())
    got = mspd(_t(R_e), _t(t_e), _t(R_g), _t(t_g), Ks, _t(pts), sym_R, sym_t).numpy()
    want = [_loop_max_dist(R_e[i], t_e[i], R_g[i], t_g[i], pts, syms, K_LMO) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_rotation_about_symmetry_axis_costs_nothing():
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(100, 3)) * 20
    pts = np.concatenate([pts, pts * np.array([-1, -1, 1])])  # exactly 2-fold symmetric about z
    S = _rot([0, 0, 1], math.pi)
    sym_R, sym_t = _t(np.stack([np.eye(3), S])), _t(np.zeros((2, 3)))
    R_g, t_g = _random_poses(rng, 1)
    R_e = R_g @ S  # the symmetric pose
    args = (_t(R_e), _t(t_g), _t(R_g), _t(t_g))
    assert mssd(*args, _t(pts), sym_R, sym_t).item() == pytest.approx(0, abs=1e-9)
    assert mspd(*args[:4], _t(K_LMO[None]), _t(pts), sym_R, sym_t).item() == pytest.approx(0, abs=1e-7)
    assert adi(*args, _t(pts)).item() == pytest.approx(0, abs=1e-9)
    assert add(*args, _t(pts)).item() > 1.0  # ADD does not know the symmetry
    I, Z = _ident_sym()
    assert mssd(*args, _t(pts), I, Z).item() > 1.0


def test_mspd_of_an_image_shift_is_the_shift():
    # moving the object by dx at constant depth Z shifts every projection by fx * dx / Z pixels
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(80, 3)) * 30
    R_g, t_g = _random_poses(rng, 1)
    Z = 900.0
    t_g[0, 2] = Z
    dx = 5.0 * Z / K_LMO[0, 0]  # a 5 px shift
    t_e = t_g + np.array([[dx, 0.0, 0.0]])
    I, Zs = _ident_sym()
    # the depth of each point changes nothing in x: u = fx (X + dx) / z_i + cx with z_i = point depth,
    # so the shift is exactly 5 px only for points at depth Z; use a flat object (all at depth Z)
    pts_flat = pts.copy()
    pts_flat[:, 2] = 0
    R_id = np.eye(3)[None]
    e = mspd(_t(R_id), _t(t_e), _t(R_id), _t(t_g), _t(K_LMO[None]), _t(pts_flat), I, Zs).item()
    assert e == pytest.approx(5.0, abs=1e-9)


def test_add_and_adi():
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(300, 3)) * 25
    R_g, t_g = _random_poses(rng, 3)
    d = np.array([[1.0, 2.0, 2.0]] * 3)
    got = add(_t(R_g), _t(t_g + d), _t(R_g), _t(t_g), _t(pts)).numpy()
    np.testing.assert_allclose(got, 3.0)
    R_e, t_e = _random_poses(rng, 3)
    a = add(_t(R_e), _t(t_e), _t(R_g), _t(t_g), _t(pts)).numpy()
    s = adi(_t(R_e), _t(t_e), _t(R_g), _t(t_g), _t(pts)).numpy()
    assert np.all(s <= a + 1e-9)
    # brute force nearest neighbours
    for i in range(3):
        x_e = pts @ R_e[i].T + t_e[i]
        x_g = pts @ R_g[i].T + t_g[i]
        want = np.linalg.norm(x_g[:, None] - x_e[None], axis=2).min(axis=1).mean()
        assert s[i] == pytest.approx(want, rel=1e-12)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    pts, R_e, t_e, R_g, t_g, sym_R, sym_t, Ks = _error_inputs(seed=5, n_points=500, n_pairs=40)
    for fn, extra in ((mssd, (sym_R, sym_t)), (add, ()), (adi, ())):
        a = fn(*(_t(x) for x in (R_e, t_e, R_g, t_g, pts) + extra)).numpy()
        b = fn(*(_t(x, "cuda") for x in (R_e, t_e, R_g, t_g, pts) + extra)).cpu().numpy()
        np.testing.assert_allclose(a, b, rtol=1e-9)
    a = mspd(*(_t(x) for x in (R_e, t_e, R_g, t_g, Ks, pts, sym_R, sym_t))).numpy()
    b = mspd(*(_t(x, "cuda") for x in (R_e, t_e, R_g, t_g, Ks, pts, sym_R, sym_t))).cpu().numpy()
    np.testing.assert_allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("n", [0, 1, 7])
def test_batch_sizes(n):
    rng = np.random.default_rng(6)
    R, t = _random_poses(rng, max(n, 1))
    R, t = R[:n], t[:n]
    pts = _t(rng.normal(size=(20, 3)))
    I, Z = _ident_sym()
    assert mssd(_t(R), _t(t), _t(R), _t(t), pts, I, Z).shape == (n,)
    assert add(_t(R), _t(t), _t(R), _t(t), pts).shape == (n,)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_chunking_gives_the_same_answer(monkeypatch, kind):
    import bopnp.metrics.pose_errors as errors

    rng = np.random.default_rng(7)
    pts = rng.normal(size=(100, 3)) * 30
    R_e, t_e = _random_poses(rng, 9)
    R_g, t_g = _random_poses(rng, 9)
    conv = np.asarray if kind == "numpy" else _t
    args = [conv(x) for x in (R_e, t_e, R_g, t_g, pts, np.eye(3)[None], np.zeros((1, 3)))]
    full = np.asarray(mssd(*args))
    # both budgets small: 150 elements hold one pair of 100 points, so each of the 9 pairs is a chunk
    monkeypatch.setattr(errors, "_CHUNK_ELEMS", 150)
    monkeypatch.setattr(errors, "_CHUNK_ELEMS_TORCH", 150)
    ran = []
    chunks = errors._chunks
    monkeypatch.setattr(errors, "_chunks", lambda *a: [ran.append(sl) or sl for sl in chunks(*a)])
    chunked = np.asarray(mssd(*args))
    assert len(ran) == 9
    # torch's CPU kernels may vectorise a reduction differently for another batch size, which moves the
    # last bit (395.70183239272063 vs 395.7018323927206 seen): equal up to a few ULP of the mm values
    np.testing.assert_allclose(chunked, full, rtol=1e-13, atol=0)


def test_bad_shapes_raise_shape_error():
    I, Z = _ident_sym()
    with pytest.raises(ShapeError, match="t_est"):
        mssd(I, _t(np.zeros((2, 3))), I, _t(np.zeros((1, 3))), _t(np.zeros((4, 3))), I, Z)
    with pytest.raises(ShapeError, match="pts_mm"):
        add(I, _t(np.zeros((1, 3))), I, _t(np.zeros((1, 3))), _t(np.zeros((4, 2))))


def test_prechecks():
    t_g = _t([[0.0, 0.0, 1000.0]] * 3)
    t_e = _t([[99.0, 0.0, 1000.0], [101.0, 0.0, 1000.0], [0.0, 0.0, 0.0]])
    assert centres_within_diameter(t_e, t_g, _t([100.0] * 3)).tolist() == [True, False, False]
    # projections on z = 1: 0.099 apart; threshold r (1/1000 + 1/1000) = 0.1 for r = 50
    assert sphere_projections_overlap(t_e, t_g, _t([50.0] * 3)).tolist() == [True, False, False]
    assert sphere_projections_overlap(t_e, t_g, _t([49.0] * 3)).tolist() == [False, False, False]


def test_numpy_inputs_give_the_torch_numbers():
    pts, R_e, t_e, R_g, t_g, sym_R, sym_t, Ks = _error_inputs(seed=8, n_points=300, n_pairs=12)
    cases = [
        (mssd, (R_e, t_e, R_g, t_g, pts, sym_R, sym_t)),
        (mspd, (R_e, t_e, R_g, t_g, Ks, pts, sym_R, sym_t)),
        (add, (R_e, t_e, R_g, t_g, pts)),
        (adi, (R_e, t_e, R_g, t_g, pts)),
    ]
    for fn, args in cases:
        got = fn(*args)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_allclose(got, fn(*(_t(a) for a in args)).numpy(), rtol=1e-12)
    r = np.array([50.0] * 3)
    t_a = np.array([[99.0, 0.0, 1000.0], [101.0, 0.0, 1000.0], [0.0, 0.0, 0.0]])
    t_b = np.array([[0.0, 0.0, 1000.0]] * 3)
    assert sphere_projections_overlap(t_a, t_b, r).tolist() == [True, False, False]
    assert centres_within_diameter(t_a, t_b, 2 * r).tolist() == [True, False, False]


def test_cpu_evaluation_does_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
    code = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "from bopnp.eval.pipeline import EvalConfig, evaluate\n"
        f"evaluate(EvalConfig(Path({str(fixture / 'results' / 'fixture-a_tudl-test.csv')!r}), "
        f"bop_path=Path({str(fixture / 'bop')!r}),"
        " out_dir=Path(tempfile.mkdtemp()), device='cpu', plots=False, progress=False))\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "TORCH False" in out


def test_mssd_over_hull_points_equals_mssd_over_all_points():
    from bopnp.metrics.pose_errors import hull_points

    rng = np.random.default_rng(9)
    pts = rng.normal(size=(2000, 3)) * [40, 25, 10]
    hull = hull_points(pts)
    assert len(hull) < len(pts) / 5
    R_e, t_e = _random_poses(rng, 30)
    R_g, t_g = _random_poses(rng, 30)
    sym_R = np.stack([np.eye(3), _rot([0, 0, 1], math.pi)])
    sym_t = np.array([[0.0, 0, 0], [3.0, -2.0, 0]])
    np.testing.assert_array_equal(
        mssd(R_e, t_e, R_g, t_g, hull, sym_R, sym_t), mssd(R_e, t_e, R_g, t_g, pts, sym_R, sym_t)
    )
