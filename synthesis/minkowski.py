r"""Minkowski functionals of excursion sets of a band-limited field on the sphere.

For a field ``u`` (in units of the target's standard deviation) and a threshold ``nu``, with
``A = 4 pi`` the area of the sphere (Schmalzing & Gorski 1998, MNRAS 297, 355):

    V0(nu) = (1/A) int_{u > nu} dA                          (area fraction, dimensionless)
    V1(nu) = (1/4A) int delta(u - nu) |grad u| dA           (boundary length, rad^-1)
    V2(nu) = (1/2 pi A) int delta(u - nu) kappa |grad u| dA (integrated geodesic curvature, rad^-2)

with ``kappa |grad u|^3 = 2 u_t u_p u_tp - u_t^2 u_pp - u_p^2 u_tt``: first and covariant second
derivatives in the orthonormal frame ``(e_theta, e_phi)``.

**Estimator.** Derivatives are exact in harmonic space: healpy's ``alm2map_der1`` gives
``u_t = d_theta u`` and ``u_p = d_phi u / sin theta``; the Laplacian ``T = u_tt + u_pp`` is
the synthesis of ``-l(l+1) a_lm``; the traceless part ``Q + iU = (u_tt - u_pp) + 2i u_tp`` is
the spin-2 field ``eth^2 u``, the spin-2 synthesis of ``E_lm = sqrt((l-1)l(l+1)(l+2)) a_lm``
(healpy's sign convention gives ``-(Q + iU)``). Integrals over the sphere are means over the
equal-area HEALPix pixels times ``4 pi``, and ``delta(u - nu)`` is the binned delta
``1[|u - nu| < Delta/2] / Delta`` with ``Delta`` the threshold spacing. On a cap ``u = cos theta``,
``V2(cos theta_0) = cos theta_0 / (4 pi)`` and ``V1 = sin theta_0 / 8`` (checked in the tests).
"""

from __future__ import annotations

import numpy as np
from s2scat_core import harmonics


def _derivatives(flm, nside: int):
    import healpy as hp

    flm = np.asarray(flm)
    L = flm.shape[-2]
    alm = harmonics.to_healpy_alm(flm)
    ell = np.arange(L, dtype=np.float64)
    u, ut, up = hp.alm2map_der1(alm, nside, lmax=L - 1)
    lap = hp.alm2map(hp.almxfl(alm, -ell * (ell + 1)), nside, lmax=L - 1)
    e = hp.almxfl(alm, np.sqrt(np.maximum((ell - 1) * ell * (ell + 1) * (ell + 2), 0)))
    q, v = hp.alm2map_spin([e, np.zeros_like(e)], nside, 2, L - 1)
    return u, ut, up, lap, -q, -v


def functionals(flm, thresholds, *, nside: int, mean: float = 0.0, std: float = 1.0,
                where=None) -> np.ndarray:
    """``(3, len(thresholds))``: ``V0, V1, V2`` of ``u = (f - mean) / std`` at each threshold.

    Args:
        flm: ``(L, 2L-1)`` coefficients of a real field.
        thresholds: evenly spaced ``nu`` values (units of ``std``).
        nside: HEALPix resolution of the maps (``>= L/2``; ``>= L`` is safer).
        mean, std: the field is standardised with these (use the target's for every map).
        where: ``None`` (the sphere), or a boolean HEALPix map (RING, ``nside``): the region
            over which the integrals are taken, per unit area (``A`` = its area), for a cut
            sky.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size < 2:
        raise ValueError("thresholds must be a 1D array of at least 2 values")
    delta = float(np.mean(np.diff(thresholds)))
    u, ut, up, lap, q, v = _derivatives(flm, nside)
    u = (u - mean) / std
    ut, up, lap, q, v = (a / std for a in (ut, up, lap, q, v))
    grad2 = ut**2 + up**2
    a, b, c = (lap + q) / 2, (lap - q) / 2, v / 2  # u_tt, u_pp, u_tp
    numer = 2 * ut * up * c - ut**2 * b - up**2 * a
    curvature = np.divide(numer, grad2, out=np.zeros_like(numer), where=grad2 > 0)
    gradient = np.sqrt(grad2)
    if where is not None:
        where = np.asarray(where, bool)
        if not where.any():
            raise ValueError("where selects no pixel")
        u, gradient, curvature = u[where], gradient[where], curvature[where]
    out = np.empty((3, thresholds.size))
    for i, nu in enumerate(thresholds):
        band = np.abs(u - nu) < delta / 2
        out[0, i] = np.mean(u > nu)
        out[1, i] = np.mean(band * gradient) / (4 * delta)
        out[2, i] = np.mean(band * curvature) / (2 * np.pi * delta)
    return out
