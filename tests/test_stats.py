"""Distribution distances against independent computations."""

import numpy as np
import pytest
from scipy.stats import entropy

from ml_release.contract.stats import js_distance, linf_distance, psi


def test_psi_matches_the_textbook_formula():
    ref, tgt = np.array([50, 30, 20]), np.array([30, 30, 40])
    p, q = ref / ref.sum(), tgt / tgt.sum()
    assert psi(ref, tgt) == pytest.approx(entropy(q, p) + entropy(p, q))
    assert psi(ref, ref) == 0.0


def test_js_distance_matches_its_definition():
    ref, tgt = np.array([10, 0, 90]), np.array([40, 20, 40])
    p, q = ref / ref.sum(), tgt / tgt.sum()
    m = (p + q) / 2
    expected = np.sqrt((entropy(p, m, base=2) + entropy(q, m, base=2)) / 2)
    assert js_distance(ref, tgt) == pytest.approx(expected)
    assert js_distance(ref, ref) == 0.0
    assert js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)


def test_linf_is_the_largest_share_change():
    assert linf_distance(np.array([50, 50]), np.array([80, 20])) == pytest.approx(0.3)
