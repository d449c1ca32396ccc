r"""Directional wavelet maps of a real field composed from a backend's spin-weighted SHTs: the
default :meth:`.base.SphericalTransforms.wavelets_real` and ``wavelets_real_fourier``.

At scale ``j`` the maps are ``W_k = sum_n exp(i n gamma_k) g_n``, ``gamma_k = 2 pi k/(2N-1)``,
``g_n = sum_lm f_lm h_{j l n} {}_{-n}Y_lm`` (:mod:`.directional`). For a real field
``g_{-n} = conj(g_n)``, so ``W_k = g_0 + sum_{n > 0} 2 Re(exp(i n gamma_k) g_n)``: one real
spin-0 synthesis and one spin ``-n`` synthesis per ``n > 0`` below the band-limit.
``half (..., Lj, Lj)`` (``m >= 0``), ``h (Lj, N)`` -> ``(..., 2N-1, Lj, 2Lj-1)`` real maps, or
their ring Fourier coefficients.

Below :mod:`.base` (whose defaults call it) and :mod:`.directional` (which reads
:func:`direction_phases`): imports go one way.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import wavelets
from ..harmonics import expand_half


def direction_phases(N: int) -> np.ndarray:
    """``E[k, i] = exp(i n_i gamma_k)``, ``gamma_k = 2 pi k/(2N-1)``, shape ``(2N-1, N)``."""
    ns = wavelets.directions(N)
    gammas = 2 * np.pi * np.arange(2 * N - 1) / (2 * N - 1)
    return np.exp(1j * np.outer(gammas, ns))


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
