r"""The optimisation variables: a real view of the ``m >= 0`` coefficients of real fields.

optax works on real arrays, so a batch of fields is held as ``x (B, 2, L, L)`` float64:
``x[:, 0]`` the real and ``x[:, 1]`` the imaginary parts of the ``m >= 0`` half, and

    f_lm = s_l (x[:, 0, l, m] + i x[:, 1, l, m]) * mask_lm,

with ``mask`` keeping ``m <= l`` and zeroing the imaginary part at ``m = 0`` (a real field's
``f_l0`` is real). Masked entries get exactly zero gradient, so they stay at their initial
value, zero. ``s_l`` is the preconditioner: ``sqrt(C_l^target)`` (floored at ``1e-6`` of its
largest value) when preconditioning, else 1; it makes every variable ~ N(0, 1) under the
target's power, so one learning rate fits all scales.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from s2scat_core import harmonics


def mask(L: int) -> np.ndarray:
    """``(2, L, L)`` 0/1: real parts at ``m <= l``, imaginary parts at ``0 < m <= l``."""
    ell, m = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    return np.stack([m <= ell, (m <= ell) & (m > 0)]).astype(np.float64)


def power_spectrum(flm) -> np.ndarray:
    """``C_l = sum_m |f_lm|^2 / (2l + 1)`` of ``(..., L, 2L-1)`` coefficients, shape ``(..., L)``."""
    flm = np.asarray(flm)
    L = flm.shape[-2]
    return np.sum(np.abs(flm) ** 2, axis=-1) / (2 * np.arange(L) + 1)


def scales(target_flm, precondition: bool) -> np.ndarray:
    """Preconditioner ``s_l``, shape ``(L,)``: ``sqrt(max(C_l, 1e-6 max C))`` or ones."""
    return scales_from_power(power_spectrum(target_flm), precondition)


def scales_from_power(cl, precondition: bool) -> np.ndarray:
    """:func:`scales` from the power spectrum ``C_l (L,)`` itself."""
    cl = np.asarray(cl, dtype=np.float64)
    if not precondition:
        return np.ones(cl.shape[-1])
    return np.sqrt(np.maximum(cl, 1e-6 * cl.max()))


def to_half(x, s):
    """``x (..., 2, L, L)`` real -> ``m >= 0`` half ``(..., L, L)`` complex (mask applied)."""
    L = x.shape[-1]
    xm = x * jnp.asarray(mask(L))
    return (xm[..., 0, :, :] + 1j * xm[..., 1, :, :]) * jnp.asarray(s)[:, None]


def from_half(half, s) -> np.ndarray:
    """Inverse of :func:`to_half`: ``(..., L, L)`` complex -> ``(..., 2, L, L)`` real."""
    half = np.asarray(half)
    L = half.shape[-1]
    x = np.stack([half.real, half.imag], axis=-3) / np.asarray(s)[:, None]
    return x * mask(L)


def initial(key, count: int, L: int, cl, s, kind: str) -> jax.Array:
    """Initial variables ``(count, 2, L, L)`` for the noise ``kind``.

    ``"power"``: Gaussian field with power ``C_l = cl``: ``f_l0 ~ N(0, C_l)``,
    ``Re, Im f_lm ~ N(0, C_l / 2)``. ``"white"``: the same with ``C_l`` replaced by its mean over
    ``1 <= l < L`` weighted by ``2l + 1``, i.e. the same total variance spread evenly. The
    monopole is zero in both (the targets are zero-mean).
    """
    cl = np.asarray(cl, dtype=np.float64).copy()
    if kind == "white":
        ell = np.arange(L)
        cl[1:] = np.sum((2 * ell[1:] + 1) * cl[1:]) / np.sum(2 * ell[1:] + 1)
    elif kind != "power":
        raise ValueError(f"init must be 'power' or 'white', got {kind!r}")
    cl[0] = 0.0
    z = jax.random.normal(key, (count, 2, L, L), dtype=jnp.float64)
    per = np.sqrt(cl)[:, None] * np.where(np.arange(L)[None, :] == 0, 1.0, np.sqrt(0.5))
    return z * jnp.asarray(per / np.asarray(s)[:, None]) * jnp.asarray(mask(L))


def complete(op, half, observed, target_map):
    """Constrained synthesis: the completed field ``c = m t + (1 - m) x`` on the operator's GL
    grid, ``m = observed (L, 2L-1)`` in ``[0, 1]``, ``t = target_map (L, 2L-1)``, ``x`` the
    free field of ``half (L, L)``; returns ``(half of c, c)``, the half by the grid's
    quadrature (``op.from_map``). Where ``m = 1`` the map is the target's exactly; only the
    masked region depends on the variables."""
    c = observed * target_map + (1 - observed) * op.to_map(half)
    return op.from_map(c), c


def start_from(start, x0, scales):
    """``x0 (count, [2 fields,] 2, L, L)`` with its degrees ``l < L'`` replaced by ``start``:
    ``(count, [2,] L', 2L'-1)`` coefficients (``L' <= L``) of the variables' fields (the free
    fields of a constrained run; both fields of a pair), e.g. a coarser stage's result; the
    noise of ``x0`` stays at ``L' <= l < L``."""
    start = np.asarray(start)
    fields = start[:, None] if len(scales) == 1 else start
    count, L = x0.shape[0], x0.shape[-1]
    Ls = fields.shape[-2]
    if fields.shape[:2] != (count, len(scales)) or Ls > L or fields.shape[-1] != 2 * Ls - 1:
        raise ValueError(f"start must have shape ({count}, {'2, ' * (len(scales) > 1)}L', "
                         f"2L'-1) with L' <= {L}, got {start.shape}")
    x = x0 if len(scales) > 1 else x0[:, None]
    out = []
    for k, s in enumerate(scales):
        half = np.zeros((count, L, L), complex)
        half[:, :Ls, :Ls] = harmonics.half_from_full(fields[:, k])
        known = from_half(half, s)
        out.append(jnp.where(jnp.arange(L)[:, None] < Ls, known, x[:, k]))
    x = jnp.stack(out, axis=1)
    return x if len(scales) > 1 else x[:, 0]
