import numpy as np
import pytest

from bopnp.eval.scores import MSPD_THRESHOLDS, MSSD_THRESHOLDS, VSD_TAUS, add_auc_thresholds_mm, auc, count_recalls


def test_thresholds_are_bop19s():
    assert len(VSD_TAUS) == len(MSSD_THRESHOLDS) == len(MSPD_THRESHOLDS) == 10
    np.testing.assert_allclose(MSSD_THRESHOLDS, np.linspace(0.05, 0.5, 10))
    np.testing.assert_array_equal(MSPD_THRESHOLDS, np.arange(5.0, 51.0, 5.0))


def test_count_recalls_overall_and_per_object():
    # two conditions; group A (obj 1): 2 targets, 1 matched under c0, 2 under c1; an invalid GT matched
    # under c1 does not count; group B (obj 2): 1 target never matched
    matched = [np.array([[0, -1, -1], [0, 1, 2]]), np.array([[-1], [-1]])]
    valid = [np.array([True, True, False]), np.array([True])]
    r = count_recalls(matched, valid, [1, 2], 2)
    assert r.n_targets == 3
    assert r.tp.tolist() == [1, 2]
    np.testing.assert_allclose(r.recall, [1 / 3, 2 / 3])
    assert r.average_recall == pytest.approx(0.5)
    assert r.object_average_recalls() == {1: pytest.approx(0.75), 2: 0.0}


def test_no_targets_gives_zero_recall():
    r = count_recalls([], [], [], 3)
    assert r.recall.tolist() == [0, 0, 0] and r.average_recall == 0.0


def test_auc():
    th = add_auc_thresholds_mm()
    assert th[0] == 1 and th[-1] == 100 and len(th) == 100
    # errors uniform in [0, 100] mm: recall(t) = t / 100, area = mean = 0.505 on this grid
    assert auc(th / 100.0) == pytest.approx(0.505)
