r"""Directional wavelet analysis at one scale, built on any backend's spin-weighted SHTs.

The wavelet coefficients of ``f`` at scale ``j`` and direction ``gamma_k = 2 pi k/(2N-1)``,
``k = 0..2N-2``, are the Wigner synthesis of ``f_lm conj(psi_{j l n}) 8 pi^2/(2l+1)``. It splits
into one spin-weighted synthesis per azimuthal order ``n`` and a Fourier sum over ``n``:

    W_j(theta, phi, gamma_k) = sum_n exp(i n gamma_k) g_n(theta, phi),
    g_n = sum_lm c_{n,lm} {}_{-n}Y_lm,   c_{n,lm} = f_lm h_{j l n},
    h_{j l n} = conj(psi_{j l n}) (-1)^n sqrt(4 pi/(2l+1)),

``n = -(N-1), -(N-3), ..., N-1``. For a real field ``g_{-n} = conj(g_n)``, so only ``n >= 0``
is synthesised and ``W`` is real: that path is the backend's ``wavelets_real``, which by
default composes the spin transforms (:func:`real_from_spins`) and which a backend may fuse.
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


def _spin_syntheses(half, h, N: int, synthesis_real, synthesis):
    """``(i, n, g_n)`` for each ``n >= 0`` below the band-limit: ``synthesis_real`` of
    ``f h_0`` for ``n = 0``, ``synthesis`` at spin ``-n`` of ``f h_n`` (full layout) for ``n > 0``."""
    Lj = h.shape[0]
    full = None
    for i, n in enumerate(wavelets.directions(N)):
        if n < 0 or n >= Lj:  # g_{-n} = conj(g_n); g_n = 0 for n >= Lj
            continue
        if n == 0:
            yield i, 0, synthesis_real(half * h[:, i, None], Lj)
            continue
        if full is None:
            full = expand_half(half)
        yield i, int(n), synthesis(full * h[:, i, None], Lj, -int(n))


def real_from_spins(backend, half, h, N: int):
    """Wavelet maps of a real field from a backend's spin transforms.

    ``W_k = g_0 + sum_{n > 0} 2 Re(exp(i n gamma_k) g_n)``: one real spin-0 synthesis and one
    spin ``-n`` synthesis per ``n > 0`` below the band-limit (``g_n = 0`` for ``n >= Lj``).
    ``half (..., Lj, Lj)``, ``h (Lj, N)`` -> ``(..., 2N-1, Lj, 2Lj-1)`` real.
    """
    Lj = h.shape[0]
    phases = direction_phases(N)
    out = 0.0
    for i, n, g in _spin_syntheses(half, h, N, backend.synthesis_real, backend.synthesis):
        if n == 0:
            out = out + g[..., None, :, :]
        else:
            phase = jnp.asarray(2 * phases[:, i], dtype=g.dtype)[:, None, None]
            out = out + (phase * g[..., None, :, :]).real
    return jnp.broadcast_to(out, half.shape[:-2] + (2 * N - 1, Lj, 2 * Lj - 1))


def real_fourier_from_spins(backend, half, h, N: int):
    """:func:`real_from_spins` as ring Fourier coefficients, direction first, ``(Re, Im)`` pairs.

    With ``G_n[t, m]`` the ring coefficients of ``g_n`` (``|m| < Lj``), the real map
    ``2 Re(e^{i n gamma} g_n)`` has ``e^{i n gamma} G_n[t, m] + e^{-i n gamma} conj(G_n[t, -m])``
    at ``m >= 0``. ``half (*batch, Lj, Lj)`` -> ``(2N-1, *batch, Lj, Lj, 2)``. ``Im F[t, 0]``
    is zero up to rounding; :func:`.base.ring_weights` gives it weight 0.
    """
    Lj = h.shape[0]
    phases = direction_phases(N)
    out = 0.0
    for i, n, G in _spin_syntheses(half, h, N, backend.synthesis_real_fourier,
                                   backend.synthesis_fourier):
        if n == 0:
            out = out + G[None]
        else:
            positive, negative = G[..., Lj - 1:], jnp.conj(G[..., Lj - 1::-1])
            phase = jnp.asarray(phases[:, i], dtype=G.dtype).reshape((-1,) + (1,) * G.ndim)
            out = out + phase * positive[None] + jnp.conj(phase) * negative[None]
    out = jnp.broadcast_to(out, (2 * N - 1,) + half.shape[:-2] + (Lj, Lj))
    return jnp.stack([out.real, out.imag], axis=-1)
