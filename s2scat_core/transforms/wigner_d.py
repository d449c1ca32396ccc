r"""Wigner small-d functions on the Gauss-Legendre colatitudes, by recursion in ``l``.

``table(L, n, thetas)[t, l, L-1+m] = d^l_{m n}(theta_t)`` (Wigner's convention, as in s2fft),
zero where ``l < l0 = max(|m|, |n|)``. The recursion starts at ``l0`` from the closed form (a
single term of Wigner's sum) and climbs with the three-term recurrence

    l sqrt(((l+1)^2 - m^2)((l+1)^2 - n^2)) d^{l+1}
        = (2l+1) (l(l+1) cos(theta) - m n) d^l - (l+1) sqrt((l^2 - m^2)(l^2 - n^2)) d^{l-1},

written as ``d^l = (cos(theta) P_l - Q_l) d^{l-1} - R_l d^{l-2}`` (:func:`recursion_coefficients`)
and vectorised over ``theta`` and ``m``: ``O(L^3)`` work in NumPy, no compilation. The
``recursive`` backend runs the same coefficients inside ``lax.scan``.
"""

from __future__ import annotations

import math

import numpy as np

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def starting_values(L: int, n: int, thetas: np.ndarray) -> np.ndarray:
    """``d^{l0}_{m n}(theta_t)`` at ``l0 = max(|m|, |n|)``, shape ``(T, 2L-1)``.

    The one surviving term ``k = max(0, n - m)`` of Wigner's sum, evaluated in logarithms so
    that high powers of ``cos(theta/2)``, ``sin(theta/2)`` underflow quietly to zero.
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    m = np.arange(-(L - 1), L)
    l0 = np.maximum(np.abs(m), abs(n))
    k = np.maximum(0, n - m)
    log_coef = 0.5 * (_lgamma(l0 + m + 1.0) + _lgamma(l0 - m + 1.0) + _lgamma(l0 + n + 1.0)
                      + _lgamma(l0 - n + 1.0)) - (_lgamma(l0 + n - k + 1.0) + _lgamma(k + 1.0)
                                                  + _lgamma(m - n + k + 1.0) + _lgamma(l0 - m - k + 1.0))
    cos_power = 2 * l0 + n - m - 2 * k
    sin_power = m - n + 2 * k
    sign = np.where((m - n + k) % 2, -1.0, 1.0)
    half = thetas[:, None] / 2
    with np.errstate(divide="ignore"):
        log_start = log_coef + cos_power * np.log(np.cos(half)) + sin_power * np.log(np.sin(half))
    return sign * np.exp(log_start)


def recursion_coefficients(L: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``P, Q, R (L, 2L-1)`` and ``l0 (2L-1,)`` of the climb ``d^{l-1}, d^{l-2} -> d^l``.

    Zero where ``l <= l0`` (there the value is the starting value or zero); ``P_1 = 1`` for
    ``m = n = 0`` (``d^1_00 = cos(theta)``).
    """
    m = np.arange(-(L - 1), L).astype(np.float64)
    l0 = np.maximum(np.abs(m), abs(n))
    P, Q, R = (np.zeros((L, m.size)) for _ in range(3))
    for el in range(1, L):
        lm = el - 1
        above = el > l0
        if lm == 0:
            P[el] = np.where(above, 1.0, 0.0)
            continue
        c = np.where(above, lm * np.sqrt(np.maximum((el**2 - m**2) * (el**2 - n**2), 0)), 1.0)
        b = (lm + 1) * np.sqrt(np.maximum((lm**2 - m**2) * (lm**2 - n**2), 0))
        P[el] = np.where(above, (2 * lm + 1) * lm * (lm + 1) / c, 0.0)
        Q[el] = np.where(above, (2 * lm + 1) * m * n / c, 0.0)
        R[el] = np.where(above, b / c, 0.0)
    return P, Q, R, l0.astype(np.int64)


def table(L: int, n: int, thetas: np.ndarray) -> np.ndarray:
    """Return ``d^l_{m n}(theta_t)``, shape ``(len(thetas), L, 2L-1)`` float64."""
    thetas = np.asarray(thetas, dtype=np.float64)
    start = starting_values(L, n, thetas)
    P, Q, R, l0 = recursion_coefficients(L, n)
    cos_theta = np.cos(thetas)[:, None]
    out = np.zeros((thetas.size, L, 2 * L - 1))
    previous = current = np.zeros((thetas.size, 2 * L - 1))
    for el in range(L):
        climbed = (cos_theta * P[el] - Q[el]) * current - R[el] * previous
        new = np.where(el > l0, climbed, np.where(el == l0, start, 0.0))
        out[:, el] = new
        previous, current = current, new
    return out
