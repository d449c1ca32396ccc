r"""Backend ``ducc``: ducc0's CPU SHTs behind ``jax.pure_callback``, differentiable by adjoints.

Every method is a linear map computed in NumPy with ``ducc0`` on s2fft's ``"gl"`` grid (equal
to ducc0's ``geometry="GL"``, ``ntheta = L``, ``nphi = 2L-1``), wrapped in ``jax.custom_vjp``
whose backward pass is the adjoint map. One host callback per call: a batch (leading axes,
or a ``vmap`` axis, which arrives as one more leading axis through
``vmap_method="broadcast_all"``) is looped over in NumPy. No tables: memory ``O(L^2)`` a map.

Synthesis is ``ducc0.sht.alm2leg`` (Legendre sums ``leg[t, m]`` on the GL colatitudes) then one
real FFT of length ``2L-1`` over ``phi`` for the whole batch (``ducc0.fft.c2r``); analysis and
adjoint synthesis are ``ducc0.fft.r2c`` then ``ducc0.sht.leg2alm`` (with the GL ring weights for
analysis). This is what ``synthesis_2d``/``analysis_2d`` do, but with the FFT batched: ducc0's
2D functions plan the ring FFT at every call, which is slow for lengths ``2L-1`` with large
prime factors (``L = 64``: 0.85 ms against 0.2 ms for a spin-2 map). Coefficients are read in
place from the ``(L, L)`` half ``x[l, m]`` (``m >= 0``) through ``mstart[m] = m``, ``lstride = L``.

Spin fields (s2fft's ``f = sum_lm a_lm sY_lm``, full ``(L, 2L-1)`` layout). With
``b_lm = (-1)^m conj(a_{l,-m})`` (``m >= 0``), ducc0's gradient/curl pair
``G = sigma (a + b)/2``, ``C = -i sigma (a - b)/2`` gives, for ``s > 0`` (``sigma = -1``),
``Q + i U`` = the spin-``s`` transform of ``(G, C)``, and for ``s = 0`` (``sigma = +1``)
``Re f``, ``Im f`` = the spin-0 transforms of ``G`` and ``C``. For ``s < 0``, ``conj(f)`` is the
spin-``|s|`` field of ``(-1)^{s+m} conj(a_{l,-m})``, whose pair is ``(-1)^s (G, -C)``.

Adjoints and JAX's cotangents. ``r2c`` then ``leg2alm`` without weights is the adjoint of
``alm2leg`` then ``c2r`` for the inner product that counts every ``(l, m)`` of the full sphere
(``m > 0`` twice on the half), and for these inner products the adjoint of the pairing is
its inverse, ``unpair``: ``a = sigma (G + i C)``, ``a_{l,-m} = (-1)^m sigma conj(G - i C)``.
JAX pairs a cotangent ``c`` with a tangent ``t`` as ``Re sum c t`` (no conjugate), so:

* ``synthesis`` (C-linear ``A``): ``ct_a = A^T ct_f = conj(A^H conj(ct_f))``,
  ``A^H g = unpair(adjoint(Re g, Im g))``.
* ``synthesis_real`` (R-linear ``R``: half -> real map): ``ct_a = conj(R* g)``, ``R*`` the
  adjoint for ``Re <u, v>``: the adjoint synthesis with its ``m > 0`` entries doubled.
* ``analysis_real``: ``ct_f = w_t * synthesis(conj(ct_a) with m > 0 halved)`` (ring weights
  ``w_t``); imaginary parts at ``m = 0`` are ignored by every real-field path.

Threads: ducc0 runs with all cores this process may use for ``L >= 128`` and one thread
below (where thread start-up costs more than it saves); XLA may run independent callbacks
concurrently on top.
"""

from __future__ import annotations

import functools
import os

import ducc0
import jax
import jax.numpy as jnp
import numpy as np

from .base import SphericalTransforms, register

_NTHREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ------------------------------------------------------------------ NumPy kernels (one call)
@functools.lru_cache(maxsize=None)
def _grid(L):
    """ducc0 keywords for the GL rings of band-limit ``L`` (coefficients read in place), and
    the ring weights ``(L,)`` (``2 pi/(2L-1)`` included). ducc0's nodes and weights equal
    :func:`.base.gl_thetas` and :func:`.base.gl_weights` to ~1e-15 and take microseconds
    where those take seconds at ``L = 1024``."""
    m = np.arange(L, dtype=np.uintp)
    theta = np.asarray(ducc0.misc.GL_thetas(L), np.float64)
    return (dict(lmax=L - 1, theta=theta, mval=m, mstart=m, lstride=L),
            np.asarray(ducc0.misc.GL_weights(L, 2 * L - 1), np.float64))


def _threads(L):
    return 1 if L < 128 else _NTHREADS


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
    """``sum_m leg[..., t, m] e^{i m phi_p}`` (real field, ``m >= 0`` given).

    ``(..., L, L)`` -> ``(..., L, 2L-1)``."""
    L = leg.shape[-1]
    return ducc0.fft.c2r(leg, axes=(leg.ndim - 1,), lastsize=2 * L - 1, forward=False, inorm=0,
                         nthreads=_threads(L), out=out)


def _leg2alm(leg, spin, ring_weights=False):
    """Adjoint of :func:`_alm2leg`: ``(n, ncomp, L, L)`` -> ``(n, ncomp, L, L)`` halves.

    After :func:`_map2leg` and with ``ring_weights`` (applied to ``leg`` in place) this is the
    GL analysis (quadrature); without, the adjoint synthesis.
    """
    L = leg.shape[-2]
    kw, w = _grid(L)
    if ring_weights:
        leg *= w[:, None]
    alm = np.zeros_like(leg)
    step = 2 if spin else 1
    for x, out in zip(leg.reshape(-1, step, L, L), alm.reshape(-1, step, L * L)):
        ducc0.sht.leg2alm(leg=x, spin=spin, alm=out, nthreads=_threads(L), **kw)
    return alm


def _map2leg(maps, out=None):
    """``sum_p maps[..., t, p] e^{-i m phi_p}``, ``m = 0..L-1`` (adjoint of :func:`_leg2map`).

    ``(..., L, 2L-1)`` -> ``(..., L, L)``."""
    L = maps.shape[-2]
    return ducc0.fft.r2c(maps, axes=(maps.ndim - 1,), forward=True, inorm=0,
                         nthreads=_threads(L), out=out)


def _signs(L):
    """``(-1)^m`` for ``m = 0..L-1``."""
    return np.where(np.arange(L) % 2, -1.0, 1.0)


def _factors(spin):
    """``(sigma eta, kappa)``: the pair of ``|spin|`` is ``G = sigma eta (a + b)/2``,
    ``C = -i sigma eta kappa (a - b)/2``, its inverse ``a = sigma eta (G + i kappa C)``,
    ``b = sigma eta (G - i kappa C)``; ``sigma = +1`` for spin 0, ``-1`` otherwise;
    ``kappa = -1``, ``eta = (-1)^spin`` for ``spin < 0``, both ``1`` otherwise.
    """
    sigma = 1.0 if spin == 0 else -1.0
    kappa, eta = (-1.0, (-1.0) ** spin) if spin < 0 else (1.0, 1.0)
    return sigma * eta, kappa


def _pair(a, spin):
    """Full ``(..., L, 2L-1)`` coefficients -> ducc0 pair ``(G, C)`` of ``|spin|``, ``(..., 2, L, L)``."""
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
    """Inverse of :func:`_pair`, also its adjoint: ``(..., 2, L, L)`` -> ``(..., L, 2L-1)``."""
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
    flat = ct.reshape(-1, L, 2 * L - 1)
    leg = np.empty((flat.shape[0], 2, L, L), cdtype)
    _map2leg(flat.real, out=leg[:, 0])
    _map2leg(flat.imag, out=leg[:, 1])
    if spin >= 0:  # conj(ct) = Re - i Im; spin < 0 conjugates once more
        leg[:, 1] *= -1
    out = _unpair(_leg2alm(leg, abs(spin)), spin)
    return np.conj(out, out=out).reshape(ct.shape)


def _synthesis_real(a, L, cdtype):
    """Real spin-0 synthesis: ``(..., L, L)`` half -> ``(..., L, 2L-1)`` real."""
    alm, lead = _flat(np.asarray(a, cdtype))
    return _leg2map(_alm2leg(alm, 0)).reshape(lead + (L, 2 * L - 1))


def _synthesis_real_ct(g, L, cdtype):
    """JAX cotangent of :func:`_synthesis_real`, ``conj(R* g)``: ``(..., L, 2L-1)`` -> ``(..., L, L)``."""
    maps, lead = _flat(np.asarray(g, np.finfo(cdtype).dtype))
    alm = _leg2alm(_map2leg(maps), 0)
    np.conj(alm, out=alm)
    alm *= _m_weights(L, 1.0, 2.0)
    return alm.reshape(lead + (L, L))


def _analysis_real(f, L, cdtype):
    """Real spin-0 analysis: ``(..., L, 2L-1)`` real -> ``(..., L, L)`` half."""
    maps, lead = _flat(np.asarray(f, np.finfo(cdtype).dtype))
    return _leg2alm(_map2leg(maps), 0, ring_weights=True).reshape(lead + (L, L))


def _analysis_real_ct(c, L, cdtype):
    """JAX cotangent of :func:`_analysis_real`: ``(..., L, L)`` -> ``(..., L, 2L-1)`` real."""
    alm, lead = _flat(np.conj(np.asarray(c, cdtype)) * _m_weights(L, 1.0, 0.5).astype(cdtype))
    return _leg2map(_alm2leg(alm, 0, ring_weights=True)).reshape(lead + (L, 2 * L - 1))


# ------------------------------------------------------------------ JAX wrappers
def _callback(fn, x, shape, dtype):
    """``fn(x)`` on the host, leading axes of ``x`` kept (a vmap axis arrives as one more)."""
    out = jax.ShapeDtypeStruct(x.shape[:-2] + shape, dtype)
    return jax.pure_callback(fn, out, x, vmap_method="broadcast_all")


def _half(L):
    return (L, L)


def _grid_shape(L):
    return (L, 2 * L - 1)


_KINDS = {  # kind: (forward, cotangent, core input shape, core output shape, in/out complex)
    "synthesis": (_synthesis, _synthesis_ct, _grid_shape, _grid_shape, True, True),
    "synthesis_real": (_synthesis_real, _synthesis_real_ct, _half, _grid_shape, True, False),
    "analysis_real": (_analysis_real, _analysis_real_ct, _grid_shape, _half, False, True),
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
        ct = ct.astype(out_dtype)
        return (_callback(functools.partial(cotangent, **kw), ct, in_shape(L), in_dtype),)

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
