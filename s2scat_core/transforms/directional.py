r"""Directional wavelet analysis at one scale, built on any backend's spin-weighted SHTs.

The wavelet coefficients of ``f`` at scale ``j`` and direction ``gamma_k = 2 pi k/(2N-1)``,
``k = 0..2N-2``, are the Wigner synthesis of ``f_lm conj(psi_{j l n}) 8 pi^2/(2l+1)``. It splits
into one spin-weighted synthesis per azimuthal order ``n`` and a Fourier sum over ``n``:

    W_j(theta, phi, gamma_k) = sum_n exp(i n gamma_k) g_n(theta, phi),
    g_n = sum_lm c_{n,lm} {}_{-n}Y_lm,   c_{n,lm} = f_lm h_{j l n},
    h_{j l n} = conj(psi_{j l n}) (-1)^n sqrt(4 pi/(2l+1)),

``n = -(N-1), -(N-3), ..., N-1``. For a real field ``g_{-n} = conj(g_n)``, so only ``n >= 0``
is synthesised and ``W`` is real.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import wavelets
from .base import expand_half


def harmonic_weights(psi: np.ndarray, j: int, N: int, Lj: int) -> np.ndarray:
    """``h[l, i] = conj(psi[j, l, n_i]) (-1)^n_i sqrt(4 pi/(2l+1))`` for ``l < Lj``, shape ``(Lj, N)``."""
    L = psi.shape[1]
    ns = wavelets.directions(N)
    ell = np.arange(Lj)
    cols = np.conj(psi[j, :Lj, L - 1 + ns]).T if ns.size else np.zeros((Lj, 0))
    return cols * ((-1.0) ** np.abs(ns))[None, :] * np.sqrt(4 * np.pi / (2 * ell + 1))[:, None]


def direction_phases(N: int) -> np.ndarray:
    """``E[k, i] = exp(i n_i gamma_k)``, ``gamma_k = 2 pi k/(2N-1)``, shape ``(2N-1, N)``."""
    ns = wavelets.directions(N)
    gammas = 2 * np.pi * np.arange(2 * N - 1) / (2 * N - 1)
    return np.exp(1j * np.outer(gammas, ns))


def analysis(backend, alm, h, N: int, real: bool):
    """Wavelet coefficients at one scale on that scale's GL grid.

    Args:
        backend: a :class:`~.base.SphericalTransforms` holding band-limit ``Lj``.
        alm: ``(..., La, La)`` ``m >= 0`` half if ``real`` else ``(..., La, 2La-1)``, ``La >= Lj``.
        h: ``(Lj, N)`` harmonic weights of the scale (:func:`harmonic_weights`).
        N: number of directions parameter (``2N-1`` output directions).
        real: whether the field is real (Hermitian coefficients).

    Returns:
        ``(..., 2N-1, Lj, 2Lj-1)``, real if ``real`` else complex.
    """
    Lj = h.shape[0]
    ns = wavelets.directions(N)
    phases = direction_phases(N)
    if real:
        half = alm[..., :Lj, :Lj]
        full = None
        out = 0.0
        for i, n in enumerate(ns):
            if n < 0 or n >= Lj:  # spin |n| >= Lj: no degree l >= |n| below Lj, g_n = 0
                continue
            if n == 0:
                g = backend.synthesis_real(half * h[:, i, None], Lj)
                out = out + g[..., None, :, :]
            else:
                if full is None:
                    full = expand_half(half)
                g = backend.synthesis(full * h[:, i, None], Lj, -int(n))
                phase = jnp.asarray(2 * phases[:, i], dtype=g.dtype)[:, None, None]
                out = out + (phase * g[..., None, :, :]).real
        return jnp.broadcast_to(out, alm.shape[:-2] + (2 * N - 1, Lj, 2 * Lj - 1))
    La = alm.shape[-2]
    full = alm[..., :Lj, La - Lj:La - 1 + Lj]
    live = [i for i, n in enumerate(ns) if abs(n) < Lj]  # the others synthesise to zero
    maps = [backend.synthesis(full * h[:, i, None], Lj, -int(ns[i])) for i in live]
    stacked = jnp.stack(maps, axis=-3)
    return jnp.einsum("ki,...itp->...ktp", jnp.asarray(phases[:, live], dtype=stacked.dtype),
                      stacked)
