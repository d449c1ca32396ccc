r"""Wigner small-d functions on the Gauss-Legendre colatitudes, by recursion in ``l``.

``table(L, n, thetas)[t, l, L-1+m] = d^l_{m n}(theta_t)`` (Wigner's convention, as in s2fft),
zero where ``l < max(|m|, |n|)``. The recursion starts at ``l0 = max(|m|, |n|)`` from the
closed form (a single term of Wigner's sum) and climbs with the three-term recurrence

    l sqrt(((l+1)^2 - m^2)((l+1)^2 - n^2)) d^{l+1}
        = (2l+1) (l(l+1) cos(theta) - m n) d^l - (l+1) sqrt((l^2 - m^2)(l^2 - n^2)) d^{l-1},

vectorised over ``theta`` and ``m``: ``O(L^3)`` work in NumPy, no compilation.
"""

from __future__ import annotations

import math

import numpy as np

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def gammaln(x: np.ndarray) -> np.ndarray:
    return _lgamma(np.asarray(x, dtype=np.float64))


def table(L: int, n: int, thetas: np.ndarray) -> np.ndarray:
    """Return ``d^l_{m n}(theta_t)``, shape ``(len(thetas), L, 2L-1)`` float64."""
    thetas = np.asarray(thetas, dtype=np.float64)
    m = np.arange(-(L - 1), L)
    l0 = np.maximum(np.abs(m), abs(n))
    out = np.zeros((thetas.size, L, 2 * L - 1))

    # Starting values d^{l0}_{m n}: the one surviving term k = max(0, n - m) of Wigner's sum.
    k = np.maximum(0, n - m)
    log_coef = 0.5 * (gammaln(l0 + m + 1) + gammaln(l0 - m + 1) + gammaln(l0 + n + 1)
                      + gammaln(l0 - n + 1)) - (gammaln(l0 + n - k + 1) + gammaln(k + 1)
                                                + gammaln(m - n + k + 1) + gammaln(l0 - m - k + 1))
    cos_power = 2 * l0 + n - m - 2 * k
    sin_power = m - n + 2 * k
    sign = np.where((m - n + k) % 2, -1.0, 1.0)
    half = thetas[:, None] / 2
    with np.errstate(divide="ignore"):
        log_start = (log_coef + cos_power * np.log(np.cos(half)) + sin_power * np.log(np.sin(half)))
    start = sign * np.exp(log_start)

    cos_theta = np.cos(thetas)[:, None]
    previous = np.zeros((thetas.size, 2 * L - 1))
    current = np.zeros((thetas.size, 2 * L - 1))
    for el in range(L):
        if el == 0:
            new = np.where(l0 == 0, start, 0.0)
        else:
            lm = el - 1  # climb from degree lm to el
            above = el > l0
            with np.errstate(divide="ignore", invalid="ignore"):
                if lm == 0:
                    climbed = cos_theta * current  # d^1_{00} = cos(theta)
                else:
                    a = (2 * lm + 1) * (lm * (lm + 1) * cos_theta - m * n)
                    b = (lm + 1) * np.sqrt(np.maximum((lm**2 - m**2) * (lm**2 - n**2), 0))
                    c = lm * np.sqrt(np.maximum((el**2 - m**2) * (el**2 - n**2), 0))
                    climbed = (a * current - b * previous) / np.where(above, c, 1.0)
            new = np.where(above, climbed, np.where(el == l0, start, 0.0))
        out[:, el] = new
        previous, current = current, new
    return out
