r"""Harmonic-coefficient layouts and conversions.

The layout everywhere is s2fft's 2D array ``flm[l, L-1+m]``, shape ``(L, 2L-1)``, zero for
``|m| > l``. A real field satisfies ``f*_{l,m} = (-1)^m f_{l,-m}`` and may be given by its
``m >= 0`` half ``flm[l, m]``, shape ``(L, L)``.

healpy packs the ``m >= 0`` coefficients of a real field as a 1D array, index
``m (2 lmax + 1 - m) / 2 + l`` with ``lmax = L - 1``.

Maps: MW and GL grids are ``(L, 2L-1)`` arrays (s2fft's samplings); HEALPix maps are 1D
arrays of ``12 nside^2`` pixels in RING order. The transforms are s2fft's (MW, GL) and
healpy's (HEALPix).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._checks import check_choice, check_int

SAMPLINGS = ("mw", "gl", "healpix")


def expand_half(alm_half):
    """``m >= 0`` half ``(..., L, L)`` -> full ``(..., L, 2L-1)`` by ``f_{l,-m} = (-1)^m conj(f_lm)``.

    NumPy in, NumPy out; anything else (JAX arrays, tracers) goes through ``jax.numpy``.
    """
    xp = np if isinstance(alm_half, np.ndarray) else jnp
    L = alm_half.shape[-1]
    signs = np.where(np.arange(1, L) % 2, -1.0, 1.0).astype(alm_half.real.dtype)
    negative = xp.flip(xp.conj(alm_half[..., 1:]) * signs, axis=-1)
    return xp.concatenate([negative, alm_half], axis=-1)


def full_from_half(flm_half):
    """``(..., L, L)`` ``m >= 0`` half -> ``(..., L, 2L-1)`` by Hermitian symmetry (JAX or NumPy input)."""
    return expand_half(flm_half)


def half_from_full(flm):
    """``(..., L, 2L-1)`` -> its ``m >= 0`` half ``(..., L, L)``."""
    L = flm.shape[-2]
    return flm[..., L - 1:]


def is_hermitian(flm, rtol: float = 1e-10) -> bool:
    """Whether ``(L, 2L-1)`` coefficients are those of a real field (to ``rtol`` of the largest)."""
    flm = np.asarray(flm)
    L = flm.shape[-2]
    rebuilt = np.asarray(expand_half(flm[..., L - 1:]))
    scale = max(np.abs(flm).max(), np.finfo(float).tiny)
    return bool(np.abs(rebuilt - flm).max() <= rtol * scale)


def _hp_index(L: int):
    ell, m = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    keep = m <= ell
    index = m * (2 * (L - 1) + 1 - m) // 2 + ell
    return ell[keep], m[keep], index[keep]


def from_healpy_alm(alm, L: int | None = None) -> np.ndarray:
    """healpy packed alm (real field, ``lmax`` inferred) -> ``(L, 2L-1)``, truncated to ``l < L``."""
    alm = np.asarray(alm)
    if alm.ndim != 1:
        raise ValueError(f"alm must be a 1D healpy packed array, got shape {alm.shape}")
    lmax = int(round((np.sqrt(8 * alm.size + 1) - 3) / 2))
    if (lmax + 1) * (lmax + 2) // 2 != alm.size:
        raise ValueError(f"alm has {alm.size} entries, which is not (lmax+1)(lmax+2)/2 for any lmax")
    L0 = lmax + 1
    L = L0 if L is None else check_int("L", L, minimum=1, maximum=L0,
                                       hint=" (the alm's lmax + 1)")
    half = np.zeros((L0, L0), dtype=np.complex128)
    ell, m, index = _hp_index(L0)
    half[ell, m] = alm[index]
    return np.asarray(expand_half(half[:L, :L]))


def to_healpy_alm(flm) -> np.ndarray:
    """``(L, 2L-1)`` (or ``(L, L)`` half) of a real field -> healpy packed alm, ``lmax = L - 1``."""
    flm = np.asarray(flm)
    L = flm.shape[-2]
    half = flm[..., L - 1:] if flm.shape[-1] == 2 * L - 1 else flm
    ell, m, index = _hp_index(L)
    alm = np.zeros(half.shape[:-2] + (L * (L + 1) // 2,), dtype=np.complex128)
    alm[..., index] = half[..., ell, m]
    return alm


def truncate(flm, L: int) -> np.ndarray:
    """Keep ``l < L`` of ``(..., L0, 2L0-1)`` coefficients (``L <= L0``)."""
    L0 = flm.shape[-2]
    L = check_int("L", L, minimum=1, maximum=L0, hint=" (the coefficients' band-limit)")
    return flm[..., :L, L0 - L:L0 - 1 + L]


def from_map(f, L: int, sampling: str, *, iterations: int = 3) -> np.ndarray:
    """Harmonic coefficients ``(L, 2L-1)`` of a real map, band-limited to ``l < L``.

    Args:
        f: ``(L0, 2L0-1)`` for ``"mw"`` or ``"gl"`` (any ``L0 >= L``); ``(12 nside^2,)`` for
            ``"healpix"`` (RING order, ``nside`` inferred).
        L: band-limit of the result.
        sampling: ``"mw"``, ``"gl"`` or ``"healpix"``.
        iterations: Jacobi iterations of healpy's ``map2alm`` (HEALPix only).
    """
    check_choice("sampling", sampling, set(SAMPLINGS))
    f = np.asarray(f, dtype=np.float64)
    if not np.all(np.isfinite(f)):
        raise ValueError("map must be finite (mask or fill NaN / UNSEEN pixels first)")
    if sampling == "healpix":
        import healpy as hp

        if f.ndim != 1 or not hp.isnpixok(f.size):
            raise ValueError(f"a HEALPix map must be 1D with 12 nside^2 pixels, got shape {f.shape}")
        nside = hp.npix2nside(f.size)
        L = check_int("L", L, minimum=1, maximum=3 * nside, hint=f" (3 nside for nside={nside})")
        alm = hp.map2alm(f, lmax=L - 1, iter=iterations)
        return from_healpy_alm(alm)
    import s2fft

    if f.ndim != 2 or f.shape[1] != 2 * f.shape[0] - 1:
        raise ValueError(f"a {sampling.upper()} map must have shape (L0, 2L0-1), got {f.shape}")
    L0 = f.shape[0]
    L = check_int("L", L, minimum=1, maximum=L0, hint=f" (the map's band-limit L0={L0})")
    flm = np.asarray(s2fft.forward(f, L0, sampling=sampling, method="jax", reality=True))
    return truncate(flm, L)


def to_map(flm, sampling: str, *, nside: int | None = None) -> np.ndarray:
    """Real map of ``(L, 2L-1)`` coefficients: ``(L, 2L-1)`` MW/GL grid or ``(12 nside^2,)`` HEALPix."""
    check_choice("sampling", sampling, set(SAMPLINGS))
    flm = np.asarray(flm)
    L = flm.shape[-2]
    if sampling == "healpix":
        import healpy as hp

        nside = check_int("nside", nside, minimum=1)
        return hp.alm2map(to_healpy_alm(flm), nside, lmax=L - 1)
    import s2fft

    return np.real(np.asarray(s2fft.inverse(flm, L, sampling=sampling, method="jax", reality=True)))
