r"""Directional wavelet analysis at one scale, built on any backend's spin-weighted SHTs.

The wavelet coefficients of ``f`` at scale ``j`` and direction ``gamma_k = 2 pi k/(2N-1)``,
``k = 0..2N-2``, are the Wigner synthesis of ``f_lm conj(psi_{j l n}) 8 pi^2/(2l+1)``. It splits
into one spin-weighted synthesis per azimuthal order ``n`` and a Fourier sum over ``n``:

    W_j(theta, phi, gamma_k) = sum_n exp(i n gamma_k) g_n(theta, phi),
    g_n = sum_lm c_{n,lm} {}_{-n}Y_lm,   c_{n,lm} = f_lm h_{j l n},
    h_{j l n} = conj(psi_{j l n}) (-1)^n sqrt(4 pi/(2l+1)),

``n = -(N-1), -(N-3), ..., N-1``. For a real field ``g_{-n} = conj(g_n)``, so only ``n >= 0``
is synthesised and ``W`` is real: that path is the backend's ``wavelets_real``, which by
default composes the spin transforms (:func:`.from_spins.real_from_spins`) and which a backend
may fuse.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import wavelets
from .from_spins import direction_phases


def harmonic_weights(psi: np.ndarray, j: int, N: int, Lj: int) -> np.ndarray:
    """``h[l, i] = conj(psi[j, l, n_i]) (-1)^n_i sqrt(4 pi/(2l+1))`` for ``l < Lj``, shape ``(Lj, N)``."""
    L = psi.shape[1]
    ns = wavelets.directions(N)
    ell = np.arange(Lj)
    cols = np.conj(psi[j, :Lj, L - 1 + ns]).T if ns.size else np.zeros((Lj, 0))
    return cols * ((-1.0) ** np.abs(ns))[None, :] * np.sqrt(4 * np.pi / (2 * ell + 1))[:, None]


def analysis(backend, alm, h, N: int, real: bool, fourier: bool = False):
    """Wavelet coefficients at one scale on that scale's GL grid.

    Args:
        backend: a :class:`~.base.SphericalTransforms` holding band-limit ``Lj``.
        alm: ``(..., La, La)`` ``m >= 0`` half if ``real`` else ``(..., La, 2La-1)``, ``La >= Lj``.
        h: ``(Lj, N)`` harmonic weights of the scale (:func:`harmonic_weights`).
        N: number of directions parameter (``2N-1`` output directions).
        real: whether the field is real (Hermitian coefficients).
        fourier: (``real`` only) return the weighted ring Fourier coefficients of the maps
            instead: a tuple of ``2N-1`` arrays ``(..., Lj, Lj, 2)``, one a direction (see
            ``SphericalTransforms.wavelets_real_fourier``).

    Returns:
        ``(..., 2N-1, Lj, 2Lj-1)``, real if ``real`` else complex (or the tuple above).
    """
    Lj = h.shape[0]
    if real:
        half = real_half(alm[..., :Lj, :Lj])
        if fourier:
            return backend.wavelets_real_fourier(half, h, N)
        return backend.wavelets_real(half, h, N)
    ns = wavelets.directions(N)
    phases = direction_phases(N)
    La = alm.shape[-2]
    full = alm[..., :Lj, La - Lj:La - 1 + Lj]
    live = [i for i, n in enumerate(ns) if abs(n) < Lj]  # the others synthesise to zero
    maps = [backend.synthesis(full * h[:, i, None], Lj, -int(ns[i])) for i in live]
    stacked = jnp.stack(maps, axis=-3)
    return jnp.einsum("ki,...itp->...ktp", jnp.asarray(phases[:, live], dtype=stacked.dtype),
                      stacked)


def analysis_scales(backend, alms, hs, N: int, real: bool, fourier: bool = False):
    """:func:`analysis` at several scales, ``alms[i]`` with ``hs[i]``: a tuple, one output a
    scale. Real fields go through the backend's ``wavelets_real_scales`` (one call for all)."""
    if not real:
        return tuple(analysis(backend, a, h, N, real, fourier) for a, h in zip(alms, hs))
    halves = tuple(real_half(a[..., :h.shape[0], :h.shape[0]]) for a, h in zip(alms, hs))
    return backend.wavelets_real_scales(halves, tuple(hs), N, fourier=fourier)


def two_layers(backend, alm, hs, N: int, bandlimits, pairs):
    """Both layers of a real field (the backend's ``two_layers``): ``alm (..., La, La)`` half,
    ``hs[i] (Li, N)`` -> ``(layers, means)``."""
    L = max(h.shape[0] for h in hs)
    pairs = tuple((int(i1), tuple(int(i) for i in partners)) for i1, partners in pairs)
    return backend.two_layers(real_half(alm[..., :L, :L]), tuple(hs), N, tuple(bandlimits), pairs)


def real_half(half):
    """The ``m >= 0`` half of a real field: ``f_l0`` is real, so its imaginary part is dropped."""
    return jnp.concatenate([half[..., :1].real.astype(half.dtype), half[..., 1:]], axis=-1)
