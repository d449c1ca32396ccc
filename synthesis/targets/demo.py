r"""Generated demo targets, so that the default run needs no download. Seeded, deterministic.

Both generators draw on a HEALPix grid of ``nside = 2^ceil(log2 Lg)`` (``Lg`` the generation
band-limit, at least 32) with NumPy's ``default_rng(seed)`` and return the coefficients
``flm (L, 2L-1)`` of the map band-limited to ``l < L`` (healpy ``map2alm``, 3 iterations).

**Lognormal** (large-scale-structure-like). A Gaussian field ``g`` with the angular power
spectrum of a thin shell at comoving distance ``chi`` in the Limber approximation,

    C_ell^g  propto  P((ell + 1/2) / chi),   P(k) = k^{n_s} T(k / Gamma)^2,
    T(q) = ln(1 + 2.34 q) / (2.34 q) [1 + 3.89 q + (16.1 q)^2 + (5.46 q)^3 + (6.71 q)^4]^(-1/4)

(the BBKS transfer function; ``k`` in h/Mpc), scaled to variance ``sigma^2``, is made
positive-skewed by ``delta = exp(g - sigma^2 / 2) - 1``: a density contrast with mean 0 and
``delta > -1``, like galaxy counts in a shell.

**Filaments** (directional structure). ``count`` great-circle arcs with random centres, lengths
drawn from an exponential law of mean ``length``, log-normal amplitudes and a Gaussian
cross-section of width ``width``; each arc makes the angle ``orientation + spread * n``
(``n ~ N(0, 1)``) with the local east direction at its centre, so the field has a preferred
direction in the local frame, which directional scattering statistics see. A faint Gaussian
background with ``C_ell propto (ell + 1)^-2`` at ``background`` times the filaments' rms is added.
"""

from __future__ import annotations

import numpy as np
from s2scat_core import harmonics


def _nside(bandlimit: int) -> int:
    return max(32, 1 << int(np.ceil(np.log2(bandlimit))))


def bbks_cl(L: int, distance: float = 200.0, gamma: float = 0.2, n_s: float = 0.96) -> np.ndarray:
    """Shape of the thin-shell angular power spectrum ``C_ell`` (``ell < L``), ``C_0 = 0``, max 1."""
    ell = np.arange(L, dtype=np.float64)
    k = (ell + 0.5) / distance
    q = k / gamma
    transfer = (np.log1p(2.34 * q) / (2.34 * q)
                * (1 + 3.89 * q + (16.1 * q) ** 2 + (5.46 * q) ** 3 + (6.71 * q) ** 4) ** -0.25)
    cl = k**n_s * transfer**2
    cl[0] = 0.0
    return cl / cl.max()


def gaussian_alm(cl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """healpy-packed alm of a real Gaussian field with power ``cl`` (``lmax = len(cl) - 1``).

    ``a_l0 = sqrt(C_l) n``, ``a_lm = sqrt(C_l / 2) (n1 + i n2)`` for ``m > 0``.
    """
    L = cl.size
    half = (rng.standard_normal((L, L)) + 1j * rng.standard_normal((L, L))) / np.sqrt(2)
    half[:, 0] = rng.standard_normal(L)
    half *= np.sqrt(cl)[:, None]
    half[np.arange(L)[:, None] < np.arange(L)[None, :]] = 0.0
    return harmonics.to_healpy_alm(half)


def _to_flm(m: np.ndarray, L: int) -> np.ndarray:
    return harmonics.from_map(m, L, "healpix")


def lognormal_map(bandlimit: int, *, seed: int = 1, sigma: float = 0.8, distance: float = 200.0,
                  gamma: float = 0.2, n_s: float = 0.96) -> np.ndarray:
    """The lognormal field ``delta`` as a HEALPix map (RING, ``nside`` from ``bandlimit``)."""
    import healpy as hp

    rng = np.random.default_rng(seed)
    cl = bbks_cl(bandlimit, distance, gamma, n_s)
    ell = np.arange(bandlimit)
    cl *= sigma**2 / np.sum((2 * ell + 1) * cl / (4 * np.pi))
    g = hp.alm2map(gaussian_alm(cl, rng), _nside(bandlimit), lmax=bandlimit - 1)
    return np.expm1(g - sigma**2 / 2)


def lognormal(L: int, *, seed: int = 1, bandlimit: int | None = None, sigma: float = 0.8,
              distance: float = 200.0, gamma: float = 0.2, n_s: float = 0.96) -> np.ndarray:
    """Coefficients ``(L, 2L-1)`` of the lognormal demo field (see the module doc).

    Args:
        L: band-limit of the result.
        seed: NumPy seed.
        bandlimit: band-limit ``>= L`` of the Gaussian field (default ``L``).
        sigma: standard deviation of ``g`` (dimensionless): the larger, the more skewed.
        distance: shell distance, Mpc/h; the spectrum peaks near ``ell ~ 0.02 distance``.
        gamma: BBKS shape parameter ``Omega_m h``.
        n_s: primordial spectral index.
    """
    bandlimit = L if bandlimit is None else bandlimit
    return _to_flm(lognormal_map(bandlimit, seed=seed, sigma=sigma, distance=distance,
                                 gamma=gamma, n_s=n_s), L)


def _arc_profile(vec: np.ndarray, centre: np.ndarray, tangent: np.ndarray, half_length: float,
                 width: float) -> np.ndarray:
    """``exp(-d^2 / 2 width^2)``, ``d`` the angular distance of ``vec (n, 3)`` to the arc."""
    normal = np.cross(centre, tangent)
    a, b, c = vec @ centre, vec @ tangent, vec @ normal
    along = np.arctan2(b, a)
    across = np.arcsin(np.clip(np.abs(c), 0.0, 1.0))
    ends = [np.cos(s) * centre + np.sin(s) * tangent for s in (-half_length, half_length)]
    to_end = np.min([np.arccos(np.clip(vec @ e, -1.0, 1.0)) for e in ends], axis=0)
    d = np.where(np.abs(along) <= half_length, across, to_end)
    return np.exp(-0.5 * (d / width) ** 2)


def filaments_map(bandlimit: int, *, seed: int = 1, count: int = 120, length: float = 40.0,
                  width: float = 2.5, orientation: float = 0.0, spread: float = 15.0,
                  background: float = 0.15) -> np.ndarray:
    """The filament field as a HEALPix map (RING, ``nside`` from ``bandlimit``); angles in degrees."""
    import healpy as hp

    rng = np.random.default_rng(seed)
    nside = _nside(bandlimit)
    vec = np.stack(hp.pix2vec(nside, np.arange(hp.nside2npix(nside))), axis=-1)
    out = np.zeros(len(vec))
    w = np.radians(width)
    for _ in range(count):
        z, phi = rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
        s = np.sqrt(1 - z * z)
        centre = np.array([s * np.cos(phi), s * np.sin(phi), z])
        east = np.array([-np.sin(phi), np.cos(phi), 0.0])
        north = np.cross(centre, east)
        angle = (rng.uniform(0, np.pi) if spread >= 180
                 else np.radians(orientation + spread * rng.standard_normal()))
        tangent = np.cos(angle) * east + np.sin(angle) * north
        half = 0.5 * min(np.radians(rng.exponential(length)) + w, np.pi)
        amplitude = rng.lognormal(0.0, 0.5)
        pix = hp.query_disc(nside, centre, min(half + 5 * w, np.pi))
        out[pix] += amplitude * _arc_profile(vec[pix], centre, tangent, half, w)
    if background > 0:
        ell = np.arange(bandlimit)
        cl = (ell + 1.0) ** -2
        cl[0] = 0.0
        noise = hp.alm2map(gaussian_alm(cl, rng), nside, lmax=bandlimit - 1)
        out += background * out.std() * noise / noise.std()
    return out


def filaments(L: int, *, seed: int = 1, bandlimit: int | None = None, count: int = 120,
              length: float = 40.0, width: float = 2.5, orientation: float = 0.0,
              spread: float = 15.0, background: float = 0.15) -> np.ndarray:
    """Coefficients ``(L, 2L-1)`` of the filament demo field (see the module doc)."""
    bandlimit = L if bandlimit is None else bandlimit
    return _to_flm(filaments_map(bandlimit, seed=seed, count=count, length=length, width=width,
                                 orientation=orientation, spread=spread, background=background), L)
