r"""Directional scale-discretised wavelets on the sphere (McEwen et al. 2018), lambda = 2.

The same formulas and normalisation as s2wav 1.0.4 (``samples`` and
``filters.filters_directional_vectorised``), written here in NumPy without torch.

Scales are dyadic: wavelet ``j`` lives on the harmonic band ``2^(j-1) < l < 2^(j+1)``.
``j`` runs from ``J_min`` to ``J = j_max(L) = ceil(log2 L)``. With multiresolution,
scale ``j`` is sampled at its own band-limit ``L_j = min(2^(max(j,1)+1), L)``.

Harmonic filters (shapes):

* ``psi``: ``(J+1, L, 2L-1)`` complex, ``psi[j, l, L-1+n] = kappa_j(l) * sqrt((2l+1)/8) / pi * s_ln``,
  where ``kappa_j(l) = sqrt(k_lam(2^-(j+1) l) - k_lam(2^-j l))`` tiles the harmonic line and
  ``s_ln`` is the directional component (non-zero for ``|n| < N``, ``n = N-1 mod 2``).
* ``phi``: ``(L,)`` real, ``phi[l] = sqrt(k_lam(2^-J_min l)) * sqrt((2l+1)/(4 pi))``.

Admissibility (McEwen et al. 2018, eq. 13): for every ``l``,
``4 pi/(2l+1) |phi_l|^2 + 8 pi^2/(2l+1) sum_j sum_n |psi_{j l n}|^2 = 1``.
"""

from __future__ import annotations

import math

import numpy as np

LAMBDA = 2.0
_QUAD_ITERS = 300


def j_max(L: int) -> int:
    """Largest wavelet scale ``J = ceil(log2 L)`` needed to tile ``0 <= l < L``."""
    return int(np.ceil(np.log(L) / np.log(LAMBDA)))


def scale_bandlimit(L: int, j: int) -> int:
    """Band-limit ``L_j = min(2^(j+1), L)`` of scale ``j`` (scale 0 is treated as scale 1)."""
    j = max(j, 1)
    return min(math.ceil(LAMBDA ** (j + 1)), L)


def scale_lower(j: int) -> int:
    """Lowest degree ``ceil(2^(j-1))`` a wavelet of scale ``j`` may touch (scale 0 as 1)."""
    j = max(j, 1)
    return math.ceil(LAMBDA ** (j - 1))


def scale_directions(L: int, j: int, N: int) -> int:
    """Azimuthal band-limit ``N_j`` at scale ``j``: ``N`` unless ``L_j`` is smaller (s2wav ``LN_j``)."""
    Nj = min(N, scale_bandlimit(L, j))
    return Nj + (Nj + N) % 2


def directions(N: int) -> np.ndarray:
    """Azimuthal orders ``n = -(N-1), -(N-3), ..., N-1`` carried by the directional wavelets."""
    return np.arange(-(N - 1), N, 2)


def _tiling_integrand(t: np.ndarray) -> np.ndarray:
    s = (t - 1.0 / LAMBDA) * (2.0 * LAMBDA / (LAMBDA - 1.0)) - 1.0
    gap = 1.0 - s**2
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        value = np.exp(-2.0 / gap) / t
    return np.where(gap > 0, value, 0.0)


def _part_scaling(a: np.ndarray) -> np.ndarray:
    """Trapezium integral of the tiling integrand from ``a`` to 1 (300 steps), elementwise."""
    a = np.asarray(a, dtype=np.float64)
    h = (1.0 - a) / _QUAD_ITERS
    t = a[..., None] + np.arange(_QUAD_ITERS + 1) * h[..., None]
    f = _tiling_integrand(t)
    return np.sum((f[..., :-1] + f[..., 1:]) * h[..., None] / 2, axis=-1)


def k_lambda(L: int) -> np.ndarray:
    r"""The smooth decreasing function ``k_lam`` sampled as ``k[j, l]``, shape ``(J+2, L)``.

    ``k[j, l] = 1`` for ``l < 2^(j-1)``, ``0`` for ``l > 2^j``, and in between
    ``int_{l/2^j}^1 s^2(t) dt/t / int_{1/2}^1 s^2(t) dt/t`` (trapezium rule, 300 steps).
    """
    J = j_max(L)
    normalisation = _part_scaling(np.array(1.0 / LAMBDA))
    ell = np.arange(L, dtype=np.float64)
    k = np.zeros((J + 2, L))
    for j in range(J + 2):
        low = ell < LAMBDA ** (j - 1)
        high = ell > LAMBDA**j
        mid = ~(low | high)
        k[j, low] = 1.0
        k[j, mid] = _part_scaling(ell[mid] / LAMBDA**j) / normalisation
    return k


def tiling_axisymmetric(L: int, J_min: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Axisymmetric generating functions ``kappa (J+1, L)`` and ``kappa0 (L,)``."""
    k = k_lambda(L)
    diff = (np.roll(k, -1, axis=0) - k)[:-1]
    diff[diff < 0] = 0
    return np.sqrt(diff), np.sqrt(k[J_min])


def tiling_direction(L: int, N: int) -> np.ndarray:
    r"""Directional component ``s_{l m}``, shape ``(L, 2L-1)`` complex.

    ``s_{lm} = nu sqrt(C(gamma, (gamma-m)/2) / 2^gamma)`` for ``|m| < N`` with ``N + m`` odd,
    zero otherwise; ``nu = 1`` for odd ``N``, ``i`` for even ``N``; ``gamma = min(N-1, l)`` or
    ``min(N-1, l-1)`` so that ``gamma = N - 1 mod 2``. Normalised: ``sum_m |s_lm|^2 = 1``.
    """
    nu = 1.0 if N % 2 else 1j
    s = np.zeros((L, 2 * L - 1), dtype=np.complex128)
    for el in range(1, L):
        gamma = min(N - 1, el) if (N + el) % 2 else min(N - 1, el - 1)
        for m in range(-min(el, N - 1), min(el, N - 1) + 1):
            if (N + m) % 2:
                s[el, L - 1 + m] = nu * np.sqrt(math.comb(gamma, (gamma - m) // 2) / 2.0**gamma)
    return s


def filters(L: int, N: int, J_min: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic wavelet filters ``psi (J+1, L, 2L-1)`` and scaling filter ``phi (L,)``.

    Identical to ``s2wav.filters.filters_directional_vectorised(L, N, J_min)``.
    """
    kappa, kappa0 = tiling_axisymmetric(L, J_min)
    ell = np.arange(L)
    phi = kappa0 * np.sqrt((2 * ell + 1) / (4.0 * np.pi))
    kappa = kappa * np.sqrt((2 * ell + 1) / 8.0) / np.pi
    psi = kappa[:, :, None] * tiling_direction(L, N)[None]
    return psi, phi
