r"""Backend ``ducc``: ducc0's CPU SHTs behind ``jax.pure_callback``, differentiable by adjoints.

Every method is a linear map computed in NumPy by ``ducc0.sht`` (``geometry="GL"``,
``ntheta = L``, ``nphi = 2L-1``: s2fft's ``"gl"`` grid), wrapped in ``jax.custom_vjp`` whose
backward pass is the adjoint transform. One callback per call: a batch (leading axes, or a
``vmap``, which arrives as an extra leading axis through ``vmap_method="broadcast_all"``) is
looped over inside NumPy. No tables; memory is ``O(L^2)`` per map.

Coefficients reach ducc0 through its ``mstart``/``lstride`` arguments, reading the
``(L, L)`` half ``x[l, m]`` (``m >= 0``) in place (index ``m + l L``).

Spin ``s > 0`` (s2fft's ``f = sum_lm a_lm sY_lm``): with ``b_lm = (-1)^m conj(a_{l,-m})``,
``m >= 0``, ducc0's gradient/curl pair ``G = sigma (a + b)/2``, ``C = -i sigma (a - b)/2``
(``sigma = -1``) gives ``Q + i U = synthesis_2d([G, C], spin=s)``. For ``s = 0``, ``sigma = +1``
and ``Re f = synthesis(G)``, ``Im f = synthesis(C)`` separately. Inverse of the pair:
``a = sigma (G + i C)``, ``a_{l,-m} = (-1)^m sigma conj(G - i C)``. Spin ``s < 0``:
``conj(f)`` is the spin ``|s|`` field with coefficients ``(-1)^{s+m} conj(a_{l,-m})``, whose
pair is ``(-1)^s (G, -C)`` in terms of the ``s > 0`` pair of ``a``.

Adjoints. ``adjoint_synthesis_2d`` is the adjoint of ``synthesis_2d`` for the inner product
that counts every ``(l, m)`` of the full sphere (``m > 0`` twice on the half). With that:

* ``synthesis`` is C-linear, ``A^H g = unpair(adjoint_synthesis(Re g, Im g))``; JAX's
  cotangent of a C-linear map is the transpose, ``ct_a = A^T ct_f = conj(A^H conj(ct_f))``.
* ``synthesis_real`` (``R``: half -> real map) is R-linear; JAX's cotangent is
  ``conj(R* g)`` with ``R*`` the adjoint for ``Re <u, v>``: ``adjoint_synthesis(g)`` with its
  ``m > 0`` entries doubled (and ``m = 0`` real).
* ``analysis_real`` (``a = analysis_2d(f)``) is R-linear; ``ct_f = adjoint_analysis_2d(b)``
  with ``b = conj(ct_a)``, ``m > 0`` entries halved, ``m = 0`` real.
"""

from __future__ import annotations

import functools
import os

import ducc0
import jax
import jax.numpy as jnp
import numpy as np

from .base import SphericalTransforms, gl_thetas, gl_weights, register

_NTHREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ------------------------------------------------------------------ NumPy kernels (one call)
@functools.lru_cache(maxsize=None)
def _grid(L):
    """ducc0 keywords for the GL rings of band-limit ``L`` and coefficients read in place."""
    m = np.arange(L, dtype=np.uintp)
    return dict(lmax=L - 1, theta=gl_thetas(L), mval=m, mstart=m, lstride=L), gl_weights(L)


def _threads(L):
    return 1 if L < 64 else _NTHREADS


def _alm2leg(alm, spin, ring_weights=False):
    """``(n, ncomp, L, L)`` halves -> Legendre coefficients ``leg[k, c, t, m]``, same shape.

    ``ncomp`` is 2 for ``spin > 0`` (one call per pair), any for ``spin = 0`` (one call each).
    ``ring_weights`` multiplies ring ``t`` by its GL weight.
    """
    L = alm.shape[-1]
    kw, w = _grid(L)
    alm = np.ascontiguousarray(alm)
    leg = np.empty_like(alm)
    step = 2 if spin else 1
    for a, out in zip(alm.reshape(-1, step, L * L), leg.reshape(-1, step, L, L)):
        ducc0.sht.alm2leg(alm=a, spin=spin, leg=out, nthreads=_threads(L), **kw)
    if ring_weights:
        leg *= w[:, None]
    return leg


def _leg2map(leg, out=None):
    """``sum_m leg[..., t, m] e^{i m phi_p}`` (real field, ``m >= 0`` given): ``(..., L, L)`` -> ``(..., L, 2L-1)``."""
    L = leg.shape[-1]
    return ducc0.fft.c2r(leg, axes=(leg.ndim - 1,), lastsize=2 * L - 1, forward=False, inorm=0,
                         nthreads=_threads(L), out=out)


def _map2alm(maps, spin, ring_weights=False):
    """Adjoint of :func:`_alm2leg` + :func:`_leg2map`: ``(n, ncomp, L, 2L-1)`` real -> ``(n, ncomp, L, L)``.

    With ``ring_weights`` this is the GL analysis (quadrature), otherwise the adjoint synthesis.
    """
    L = maps.shape[-2]
    kw, w = _grid(L)
    leg = ducc0.fft.r2c(maps, axes=(maps.ndim - 1,), forward=True, inorm=0, nthreads=_threads(L))
    if ring_weights:
        leg *= w[:, None]
    alm = np.zeros_like(leg)
    step = 2 if spin else 1
    for x, out in zip(leg.reshape(-1, step, L, L), alm.reshape(-1, step, L * L)):
        ducc0.sht.leg2alm(leg=x, spin=spin, alm=out, nthreads=_threads(L), **kw)
    return alm


def _signs(L):
    """``(-1)^m`` for ``m = 0..L-1``."""
    return np.where(np.arange(L) % 2, -1.0, 1.0)


def _factors(spin):
    """``(g, c)``: the pair is ``G = g (a + b)``, ``C = c (a - b)``; its inverse ``a = (G + C'/ ...)``.

    ``g = sigma eta / 2``, ``c = -i sigma kappa eta / 2`` with ``sigma = +1`` for spin 0, ``-1``
    otherwise, and for ``spin < 0``: ``kappa = -1``, ``eta = (-1)^spin`` (else both 1). The
    inverse is ``a = sigma eta (G + i kappa C)``, ``b = sigma eta (G - i kappa C)``.
    """
    sigma = 1.0 if spin == 0 else -1.0
    kappa, eta = (-1.0, (-1.0) ** spin) if spin < 0 else (1.0, 1.0)
    return sigma * eta, kappa


def _pair(a, spin):
    """Full ``(..., L, 2L-1)`` coefficients -> ``(..., 2, L, L)`` ducc0 pair ``(G, C)`` for ``|spin|``."""
    L = a.shape[-2]
    se, kappa = _factors(spin)
    pos = a[..., L - 1:]
    b = np.conj(a[..., L - 1::-1])
    b *= _signs(L)
    out = np.empty(a.shape[:-2] + (2, L, L), a.dtype)
    np.add(pos, b, out=out[..., 0, :, :])
    out[..., 0, :, :] *= se / 2
    np.subtract(pos, b, out=out[..., 1, :, :])
    out[..., 1, :, :] *= -0.5j * se * kappa
    return out


def _unpair(pair, spin):
    """Inverse of :func:`_pair` (on adjoint outputs: the adjoint of the pairing): ``(..., 2, L, L)`` -> ``(..., L, 2L-1)``."""
    L = pair.shape[-1]
    se, kappa = _factors(spin)
    G, C = pair[..., 0, :, :], pair[..., 1, :, :]
    iC = (1j * kappa) * C
    out = np.empty(pair.shape[:-3] + (L, 2 * L - 1), pair.dtype)
    np.add(G, iC, out=out[..., L - 1:])
    out[..., L - 1:] *= se
    b = np.subtract(G, iC, out=iC)
    np.conj(b, out=b)
    b *= se * _signs(L)
    out[..., :L - 1] = b[..., :0:-1]  # a_{l,-m} = (-1)^m conj(b_lm)
    out[..., L - 1] = se * (G[..., 0].real + 1j * kappa * C[..., 0].real)
    return out


def _m_weights(L, m0, rest):
    """``(L,)`` factors over ``m``: ``m0`` at ``m = 0``, ``rest`` for ``m > 0``."""
    w = np.full(L, rest)
    w[0] = m0
    return w


def _flat(x):
    """``(..., a, b)`` -> ``(n, 1, a, b)`` and the leading shape."""
    return x.reshape((-1, 1) + x.shape[-2:]), x.shape[:-2]


def _synthesis(a, L, spin, cdtype):
    """Spin-``spin`` synthesis ``(..., L, 2L-1)`` complex -> complex map (s2fft convention)."""
    a = np.asarray(a, cdtype)
    leg = _alm2leg(_pair(a, spin).reshape(-1, 2, L, L), abs(spin))
    if spin < 0:  # f = conj(Q + i U)
        leg[:, 1] *= -1
    out = np.empty((leg.shape[0], L, 2 * L - 1), cdtype)
    _leg2map(leg[:, 0], out=out.real)
    _leg2map(leg[:, 1], out=out.imag)
    return out.reshape(a.shape)


def _synthesis_ct(ct, L, spin, cdtype):
    """JAX cotangent of :func:`_synthesis`, ``A^T ct = conj(A^H conj(ct))``: ``(..., L, 2L-1)``."""
    ct = np.asarray(ct, cdtype)
    maps = np.empty(ct.shape[:-2] + (2, L, 2 * L - 1), ct.real.dtype)
    maps[..., 0, :, :] = ct.real  # conj(ct) = Re - i Im; spin < 0 conjugates once more
    np.multiply(ct.imag, -1.0 if spin >= 0 else 1.0, out=maps[..., 1, :, :])
    alm = _map2alm(maps.reshape(-1, 2, L, 2 * L - 1), abs(spin))
    out = _unpair(alm, spin)
    return np.conj(out, out=out).reshape(ct.shape)


def _synthesis_real(a, L, cdtype):
    """Real spin-0 synthesis: ``(..., L, L)`` half -> ``(..., L, 2L-1)`` real."""
    alm, lead = _flat(np.asarray(a, cdtype))
    return _leg2map(_alm2leg(alm, 0)).reshape(lead + (L, 2 * L - 1))


def _synthesis_real_ct(g, L, cdtype):
    """JAX cotangent of :func:`_synthesis_real`, ``conj(R* g)``: ``(..., L, 2L-1)`` -> ``(..., L, L)``."""
    maps, lead = _flat(np.asarray(g, np.finfo(cdtype).dtype))
    alm = _map2alm(maps, 0)
    np.conj(alm, out=alm)
    alm *= _m_weights(L, 1.0, 2.0)
    return alm.reshape(lead + (L, L))


def _analysis_real(f, L, cdtype):
    """Real spin-0 analysis: ``(..., L, 2L-1)`` real -> ``(..., L, L)`` half."""
    maps, lead = _flat(np.asarray(f, np.finfo(cdtype).dtype))
    return _map2alm(maps, 0, ring_weights=True).reshape(lead + (L, L))


def _analysis_real_ct(c, L, cdtype):
    """JAX cotangent of :func:`_analysis_real`: ``(..., L, L)`` -> ``(..., L, 2L-1)`` real."""
    alm, lead = _flat(np.conj(np.asarray(c, cdtype)) * _m_weights(L, 1.0, 0.5).astype(cdtype))
    return _leg2map(_alm2leg(alm, 0, ring_weights=True)).reshape(lead + (L, 2 * L - 1))


# ------------------------------------------------------------------ JAX wrappers
def _callback(fn, x, shape, dtype):
    """``fn(x)`` on the host, leading axes of ``x`` kept (a vmap axis arrives as one more)."""
    out = jax.ShapeDtypeStruct(x.shape[:-2] + shape, dtype)
    return jax.pure_callback(fn, out, x, vmap_method="broadcast_all")


_KINDS = {  # kind: (forward, cotangent, core input shape, core output shape, input/output complex?)
    "synthesis": (_synthesis, _synthesis_ct, lambda L: (L, 2 * L - 1), lambda L: (L, 2 * L - 1), True, True),
    "synthesis_real": (_synthesis_real, _synthesis_real_ct, lambda L: (L, L), lambda L: (L, 2 * L - 1), True, False),
    "analysis_real": (_analysis_real, _analysis_real_ct, lambda L: (L, 2 * L - 1), lambda L: (L, L), False, True),
}


@functools.lru_cache(maxsize=None)
def _linear(kind, L, spin, real):
    """The host map ``kind`` at ``(L, spin)`` as a JAX function whose VJP is its cotangent map."""
    forward, cotangent, in_shape, out_shape, in_cplx, out_cplx = _KINDS[kind]
    real = np.dtype(real)
    cdtype = np.result_type(real, np.complex64)
    in_dtype, out_dtype = (cdtype if in_cplx else real), (cdtype if out_cplx else real)
    kw = dict(L=L, cdtype=cdtype, **({"spin": spin} if kind == "synthesis" else {}))

    @jax.custom_vjp
    def f(x):
        return _callback(functools.partial(forward, **kw), x, out_shape(L), out_dtype)

    def f_fwd(x):
        return f(x), None

    def f_bwd(_, ct):
        return (_callback(functools.partial(cotangent, **kw), ct.astype(out_dtype), in_shape(L), in_dtype),)

    f.defvjp(f_fwd, f_bwd)
    return lambda x: f(jnp.asarray(x).astype(in_dtype))


@register
class DuccTransforms(SphericalTransforms):
    """ducc0 SHTs on the host (see the module docstring); no tables."""

    def __init__(self, bandlimits, spins, dtype=np.float64):
        super().__init__(bandlimits, spins, dtype)
        self.tables = {}

    def synthesis(self, alm, L, spin):
        return _linear("synthesis", int(L), int(spin), self.dtype.str)(alm)

    def synthesis_real(self, alm_half, L):
        return _linear("synthesis_real", int(L), 0, self.dtype.str)(alm_half)

    def analysis_real(self, f, L):
        return _linear("analysis_real", int(L), 0, self.dtype.str)(f)
