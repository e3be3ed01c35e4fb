"""Gauss–Legendre nodes and weights in linear time and memory.

``np.polynomial.legendre.leggauss`` builds a dense companion matrix (cubic time, quadratic
memory), and Golub–Welsch on the tridiagonal Jacobi matrix is still quadratic (all
eigenvalues of an n x n tridiagonal matrix). Here every node costs O(1):

* Interior nodes (``(n + 1/2) sin(theta) >= _INTERIOR``): Newton's method in
  ``theta = arccos(x)`` on the Stieltjes expansion of ``P_n(cos theta)`` [1]_ (Szegő,
  *Orthogonal Polynomials*, Thm 8.21.5), a convergent series whose terms fall by about
  ``m / (2 n sin theta)``, so ``_N_TERMS`` terms reach double precision there. The expansion
  gives ``dP_n/dtheta`` too, hence the weights ``w = 2 / (dP_n/dtheta)^2``.
* The ``O(1)`` nodes next to the ends (fewer than ``_INTERIOR / pi`` per end, whatever ``n``):
  Newton on the three-term recurrence (scipy's compiled ``eval_legendre``), O(n) each.

Initial guesses: ``pi (k - 1/4) / (n + 1/2)`` inside, ``j_{0,k} / (n + 1/2)`` (zeros of the
Bessel function J0) near the ends; three Newton steps reach the last bit (checked). Only
half of the nodes are computed; the other half is their mirror image, so the rule is
exactly symmetric. ``n <= _DENSE_MAX`` uses numpy's ``leggauss`` (accurate and cheap there).

Precision cap: near the ends the recurrence is evaluated at ``x = cos(theta)`` rounded to
float64, which costs those few weights a relative error of about ``n**2 * 1e-18`` (checked
against mpmath: 7e-12 at n = 1000, 5e-10 at n = 20000), i.e. 1e-6 at ``MAX_NODES``; past it the
error keeps growing quadratically while a finer rule gains nothing at float64 resolution,
so more nodes are refused (``benchmarks/hardening_probe.py`` prints time and accuracy by n).

References
----------
.. [1] Hale, N. and Townsend, A. (2013). Fast and accurate computation of Gauss–Legendre and
   Gauss–Jacobi quadrature nodes and weights. SIAM J. Sci. Comput. 35(2), A652–A674.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_NODES", "gauss_legendre", "unit_interval"]

#: the largest rule computed (the precision cap in the module docstring)
MAX_NODES = 1_000_000
_DENSE_MAX = 100
_INTERIOR = 40.0  # (n + 1/2) sin(theta) above which the Stieltjes series converges to eps
_N_TERMS = 20
_NEWTON_STEPS = 3


def _stieltjes(n: int, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P_n(cos theta) / C_n`` and its theta-derivative by the Stieltjes series."""
    s2 = 2.0 * np.sin(theta)
    cot = np.cos(theta) / np.sin(theta)
    p = np.zeros_like(theta)
    dp = np.zeros_like(theta)
    h = 1.0  # h_{n,m} = prod_{j<=m} (j - 1/2)^2 / (j (n + j + 1/2))
    scale = 1.0 / np.sqrt(s2)  # (2 sin theta)^-(m + 1/2)
    for m in range(_N_TERMS):
        if m:
            h *= (m - 0.5) ** 2 / (m * (n + m + 0.5))
            scale = scale / s2
        alpha = (n + m + 0.5) * theta - (m + 0.5) * np.pi / 2
        c, s = np.cos(alpha), np.sin(alpha)
        p += h * c * scale
        dp += h * scale * (-(n + m + 0.5) * s - (m + 0.5) * cot * c)
    return p, dp


def _recurrence(n: int, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P_n(cos theta)`` and its theta-derivative by the three-term recurrence (O(n) each)."""
    from scipy.special import eval_legendre

    x = np.cos(theta)
    nn = np.int64(n)
    p = eval_legendre(nn, x)
    p1 = eval_legendre(nn - 1, x)
    # d/dtheta P_n(cos t) = -sin t P_n'(x) = n (x P_n - P_{n-1}) / sin t
    return p, n * (x * p - p1) / np.sin(theta)


def _half_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``theta_k`` (ascending in (0, pi/2]) and weights of the nodes ``cos(theta_k)``, k <= (n+1)/2."""
    from scipy.special import jn_zeros

    nu = n + 0.5
    half = (n + 1) // 2
    k = np.arange(1, half + 1, dtype=np.float64)
    theta = np.pi * (k - 0.25) / nu
    n_edge = min(int(np.searchsorted(nu * np.sin(theta) >= _INTERIOR, True)) + 1, half)
    theta[:n_edge] = jn_zeros(0, n_edge) / nu
    edge, inner = theta[:n_edge], theta[n_edge:]
    for _ in range(_NEWTON_STEPS):
        p, dp = _recurrence(n, edge)
        edge = edge - p / dp
        p, dp = _stieltjes(n, inner)
        inner = inner - p / dp
    if n % 2 and inner.size:
        inner[-1] = np.pi / 2  # the middle node of an odd rule is exactly x = 0
    # Stieltjes' constant C_n = (4/pi) prod_j j / (j + 1/2), summed exactly in log space:
    # scipy's beta / gammaln lose ~1e-12 relative here, which would bias every inner weight.
    c_n = 4.0 / np.pi * math.exp(-math.fsum(np.log1p(0.5 / np.arange(1.0, n + 1.0)).tolist()))
    _, d_edge = _recurrence(n, edge)
    _, d_inner = _stieltjes(n, inner)
    return np.concatenate([edge, inner]), 2.0 / np.concatenate([d_edge, c_n * d_inner]) ** 2


def _mirror(lower: np.ndarray, upper: np.ndarray, odd: bool) -> np.ndarray:
    """``lower`` followed by the reversed ``upper`` (without its last entry for odd rules)."""
    return np.concatenate([lower, upper[-2::-1] if odd else upper[::-1]])


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (ascending, in (-1, 1)) and weights (summing to 2) of the n-point Gauss–Legendre rule."""
    if n <= _DENSE_MAX:
        return np.polynomial.legendre.leggauss(n)
    theta, w = _half_rule(n)
    x = np.cos(theta)
    return _mirror(-x, x, n % 2 == 1), _mirror(w, w, n % 2 == 1)


def unit_interval(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in (0, 1) (ascending) and weights summing to 1 of the n-point Gauss–Legendre rule.

    The nodes are ``sin^2(theta/2)`` and ``cos^2(theta/2)``, so the nodes next to 0 and 1 keep
    full relative precision (no ``1 + cos`` cancellation).
    """
    if n <= _DENSE_MAX:
        x, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (x + 1.0), 0.5 * w
    theta, w = _half_rule(n)
    odd = n % 2 == 1
    return _mirror(np.sin(theta / 2) ** 2, np.cos(theta / 2) ** 2, odd), 0.5 * _mirror(w, w, odd)
