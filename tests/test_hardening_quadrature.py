"""Gauss-Legendre nodes and weights: accuracy, exactness, linear memory, and the cap."""

import tracemalloc

import numpy as np
import pytest

from scrutiny.attribution import quadrature
from scrutiny.attribution._gauss_legendre import MAX_NODES, gauss_legendre
from scrutiny.exceptions import InvalidParameterError


@pytest.mark.parametrize("n", [101, 102, 150, 201])
def test_matches_numpy_leggauss_where_numpy_is_accurate(n):
    x, w = gauss_legendre(n)
    xr, wr = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(x, xr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w, wr, rtol=1e-10, atol=0)


@pytest.mark.parametrize("n", [1001, 100_000])
def test_large_rules_are_exact_on_polynomials(n):
    a, w = quadrature("gausslegendre", n)
    assert a.shape == w.shape == (n,)
    assert np.all(np.diff(a) > 0) and 0 < a[0] and a[-1] < 1
    np.testing.assert_allclose(a + a[::-1], 1.0, atol=2e-16)  # symmetric rule
    for j in (0, 1, 2, 9, 40):  # int_0^1 a^j da = 1 / (j + 1), exact for j < 2n
        assert abs(np.dot(w, a**j) - 1.0 / (j + 1)) < 1e-14
    # a smooth non-polynomial integrand: int_0^1 cos(3a) da = sin(3)/3
    assert abs(np.dot(w, np.cos(3 * a)) - np.sin(3.0) / 3) < 1e-14


def test_memory_is_linear_in_n_steps():
    # leggauss' companion matrix would need 8 * n**2 = 80 GB here; the rule needs O(n)
    n = 100_000
    tracemalloc.start()
    quadrature("gausslegendre", n - 1)  # n - 1: not served from the cache
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * n


def test_cap_where_precision_runs_out():
    with pytest.raises(InvalidParameterError, match=r"n_steps=1000001 exceeds 1000000.*n_steps <= 1000"):
        quadrature("gausslegendre", MAX_NODES + 1)
    with pytest.raises(InvalidParameterError, match="n_steps must be a positive int"):
        quadrature("gausslegendre", 0)
