import numpy as np
import pytest

from bopnp.errors import ShapeError
from bopnp.eval.matching import greedy_match, match_groups, top_estimates, valid_gt_mask


def _reference(errors, th, valid):
    """One condition, plain loops: estimates in order take the valid free GT with the smallest error
    strictly below the threshold; the first GT wins a tie."""
    E, N = errors.shape
    out = [-1] * N
    for e in range(E):
        best, best_n = th, -1
        for n in range(N):
            if valid[n] and out[n] == -1 and errors[e, n] < best:
                best, best_n = errors[e, n], n
        if best_n >= 0:
            out[best_n] = e
    return out


def test_greedy_match_equals_reference_on_random_groups_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        G, C, E, N = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 5), rng.integers(1, 5)
        errors = rng.integers(0, 6, size=(G, C, E, N)).astype(np.float64)  # small integers: many ties
        errors[rng.random(errors.shape) < 0.1] = np.inf
        th = rng.integers(1, 7, size=C).astype(np.float64)
        valid = rng.random((G, N)) < 0.7
        got = greedy_match(errors, th, valid)
        for g in range(G):
            for c in range(C):
                assert got[g, c].tolist() == _reference(errors[g, c], th[c], valid[g])


def test_threshold_is_strict_and_nan_never_matches():
    errors = np.array([[[[0.3, np.nan]]]])
    assert greedy_match(errors, np.array([0.3]), np.array([[True, True]])).tolist() == [[[-1, -1]]]
    assert greedy_match(errors, np.array([0.31]), np.array([[True, True]])).tolist() == [[[0, -1]]]


def test_second_estimate_takes_the_remaining_gt():
    # both estimates are closest to GT 0; the higher-scored one (first) takes it
    errors = np.array([[[0.1, 0.2], [0.05, 0.15]]])  # (C=1, E=2, N=2)
    out = match_groups([errors], np.array([0.5]), [np.array([True, True])])
    assert out[0].tolist() == [[0, 1]]
    # GT 0 invalid: estimate 0 goes to GT 1, estimate 1 finds nothing
    out = match_groups([errors], np.array([0.5]), [np.array([False, True])])
    assert out[0].tolist() == [[-1, 0]]


def test_match_groups_mixed_sizes_and_empty():
    rng = np.random.default_rng(1)
    shapes = [(2, 1, 1), (2, 3, 2), (2, 1, 1), (2, 0, 2), (2, 2, 0)]
    errors = [rng.random(s) for s in shapes]
    valid = [np.ones(s[2], bool) for s in shapes]
    out = match_groups(errors, np.array([0.5, 2.0]), valid)
    assert [o.shape for o in out] == [(2, 1), (2, 2), (2, 1), (2, 2), (2, 0)]
    assert np.all(out[3] == -1)
    for o, e, v in zip(out, errors, valid):
        for c, th in enumerate([0.5, 2.0]):
            assert o[c].tolist() == _reference(e[c], th, v)
    with pytest.raises(ValueError, match="group 0"):
        match_groups([np.zeros((3, 1, 1))], np.array([0.5]), [np.ones(1, bool)])


def test_greedy_match_shape_checks():
    with pytest.raises(ShapeError):
        greedy_match(np.zeros((1, 2, 1, 1)), np.zeros(3), np.ones((1, 1), bool))


def test_valid_gt_mask_takes_most_visible_per_target_object():
    obj = np.array([5, 5, 5, 7, 8])
    vis = np.array([0.2, 0.9, 0.2, 0.0, 1.0])
    assert valid_gt_mask(obj, vis, {5: 2, 7: 1}).tolist() == [True, True, False, True, False]
    # ties keep gt_id order; asking for more instances than exist takes them all
    assert valid_gt_mask(obj, np.full(5, 0.5), {5: 1}).tolist() == [True, False, False, False, False]
    assert valid_gt_mask(obj, vis, {5: 9}).tolist() == [True, True, True, False, False]


def test_top_estimates_stable_on_ties():
    s = np.array([0.5, 0.9, 0.5, 0.9, 0.1])
    assert top_estimates(s, None).tolist() == [1, 3, 0, 2, 4]
    assert top_estimates(s, 3).tolist() == [1, 3, 0]
    assert top_estimates(np.zeros(0), 2).tolist() == []
