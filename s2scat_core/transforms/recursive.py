r"""Backend ``recursive``: Wigner-d values recomputed on the fly, ``O(L^2)`` memory per transform.

The same three-term recursion in ``l`` as :mod:`.wigner_d`, run inside ``lax.scan``: step
``l`` climbs ``d^l_{m,-s}(theta_t)`` for all ``(t, m)`` from the two previous degrees and
immediately contracts it with the coefficients of degree ``l``, so the ``(T, L, M)`` table is
never stored. Per ``(L, s)`` only ``O(L^2)`` recursion coefficients are kept.

The two contractions are transposes of each other (the kernel is real):

    accumulate: F[t, m] = sum_l D[t, l, m] a[l, m]     (synthesis, before the FFT over m)
    project:    a[l, m] = sum_t D[t, l, m] F[t, m]     (analysis, after the FFT and weights)

and each is the other's reverse-mode derivative (``jax.custom_vjp``), so gradients also run in
``O(L^2)`` memory instead of storing every step of the scan. Slower than ``precompute`` (the
kernel is rebuilt at each call, with element-wise rather than matrix arithmetic), compiled in
seconds, and the mode for band-limits whose kernels do not fit in memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import wigner_d
from .base import SphericalTransforms, gl_thetas, gl_weights, register


def recursion_tables(L: int, n: int, thetas: np.ndarray) -> dict[str, np.ndarray]:
    """Everything the scan needs to climb ``d^l_{m n}(theta_t)``: ``O(L^2)`` numbers.

    ``start (T, M)``, ``P, Q, R (L, M)``, ``cos (T, 1)``, ``l0 (M,)`` (see :mod:`.wigner_d`).
    """
    P, Q, R, l0 = wigner_d.recursion_coefficients(L, n)
    return dict(start=wigner_d.starting_values(L, n, thetas), P=P, Q=Q, R=R,
                cos=np.cos(thetas)[:, None], l0=l0)


def _climb(tables, el, previous, current):
    P, Q, R = tables["P"][el], tables["Q"][el], tables["R"][el]
    climbed = (tables["cos"] * P - Q) * current - R * previous
    fresh = jnp.where(el == tables["l0"], tables["start"], 0.0)
    return jnp.where(el > tables["l0"], climbed, fresh)


def _accumulate_impl(tables, a):
    """``F[..., t, m] = sum_l D[t, l, m] a[..., l, m]`` for real ``a (..., L, M)``."""
    T, M = tables["start"].shape
    zero = jnp.zeros((T, M), a.dtype)

    def step(carry, inputs):
        previous, current, acc = carry
        el, a_l = inputs
        new = _climb(tables, el, previous, current)
        return (current, new, acc + new * a_l[..., None, :]), None

    acc = jnp.zeros(a.shape[:-2] + (T, M), a.dtype)
    els = jnp.arange(a.shape[-2])
    (_, _, acc), _ = jax.lax.scan(step, (zero, zero, acc), (els, jnp.moveaxis(a, -2, 0)))
    return acc


def _project_impl(tables, f):
    """``a[..., l, m] = sum_t D[t, l, m] f[..., t, m]`` for real ``f (..., T, M)``."""
    T, M = tables["start"].shape
    L = tables["P"].shape[0]
    zero = jnp.zeros((T, M), f.dtype)

    def step(carry, el):
        previous, current = carry
        new = _climb(tables, el, previous, current)
        return (current, new), jnp.sum(new * f, axis=-2)

    _, out = jax.lax.scan(step, (zero, zero), jnp.arange(L))
    return jnp.moveaxis(out, 0, -2)


@jax.custom_vjp
def accumulate(tables, a):
    return _accumulate_impl(tables, a)


@jax.custom_vjp
def project(tables, f):
    return _project_impl(tables, f)


def _zeros_like(tables):
    return jax.tree_util.tree_map(jnp.zeros_like, tables)


accumulate.defvjp(lambda tables, a: (_accumulate_impl(tables, a), tables),
                  lambda tables, ct: (_zeros_like(tables), _project_impl(tables, ct)))
project.defvjp(lambda tables, f: (_project_impl(tables, f), tables),
               lambda tables, ct: (_zeros_like(tables), _accumulate_impl(tables, ct)))


def _split(x):
    return jnp.stack([x.real, x.imag])


def _half_tables(tables, L):
    """The ``m >= 0`` columns of spin-0 tables."""
    return {k: v if k == "cos" else v[..., L - 1:] for k, v in tables.items()}


@register
class RecursiveTransforms(SphericalTransforms):
    def __init__(self, bandlimits, spins, dtype=np.float64):
        super().__init__(bandlimits, spins, dtype)
        tables, weights, norms = {}, {}, {}
        for L in self.bandlimits:
            thetas = gl_thetas(L)
            for s in set(self.spins) | {0}:
                t = recursion_tables(L, -s, thetas)
                tables[f"{L}:{s}"] = {k: jnp.asarray(v, dtype=np.int32 if k == "l0" else self.dtype)
                                      for k, v in t.items()}
                norms[f"{L}:{s}"] = jnp.asarray((-1.0) ** s * np.sqrt((2 * np.arange(L) + 1) / (4 * np.pi)),
                                                self.dtype)
            weights[f"{L}"] = jnp.asarray(gl_weights(L), self.dtype)
        self.tables = {"recursion": tables, "norm": norms, "weights": weights}

    def synthesis_fourier(self, alm, L, spin):
        key = f"{L}:{spin}"
        a = _split(alm * self.tables["norm"][key][:, None])
        ftm = accumulate(self.tables["recursion"][key], a)
        return ftm[0] + 1j * ftm[1]

    def synthesis(self, alm, L, spin):
        ftm = self.synthesis_fourier(alm, L, spin)
        return jnp.fft.ifft(jnp.fft.ifftshift(ftm, axes=-1), axis=-1, norm="forward")

    def synthesis_real_fourier(self, alm_half, L):
        key = f"{L}:0"
        a = _split(alm_half * self.tables["norm"][key][:, None])
        ftm = accumulate(_half_tables(self.tables["recursion"][key], L), a)
        return ftm[0] + 1j * ftm[1]

    def synthesis_real(self, alm_half, L):
        ftm = self.synthesis_real_fourier(alm_half, L)
        return jnp.fft.irfft(ftm, n=2 * L - 1, axis=-1, norm="forward")

    def analysis_real(self, f, L, bandlimit=None):
        B = L if bandlimit is None else bandlimit
        key = f"{L}:0"
        ftm = jnp.fft.rfft(f, axis=-1) * self.tables["weights"][f"{L}"][:, None]
        out = project(_half_tables(self.tables["recursion"][key], L), _split(ftm))
        return ((out[0] + 1j * out[1]) * self.tables["norm"][key][:, None])[..., :B, :B]
