r"""Spin-weighted syntheses and real-field analyses on the host, in s2fft's conventions, and
their JAX cotangents: what ``synthesis``, ``synthesis_real`` and ``analysis_real`` compute.

Shapes: full coefficients ``a (..., L, 2L-1)`` or a real field's ``m >= 0`` half
``(..., L, L)``, complex; ducc0 pairs ``(..., 2, L, L)``; maps ``(..., L, 2L-1)`` (complex for
a spin field, real for a real one).

Spin fields (s2fft's ``f = sum_lm a_lm sY_lm``). With ``b_lm = (-1)^m conj(a_{l,-m})``
(``m >= 0``), ducc0's gradient/curl pair ``G = sigma (a + b)/2``, ``C = -i sigma (a - b)/2``
gives, for ``s > 0`` (``sigma = -1``), ``Q + i U`` = the spin-``s`` transform of ``(G, C)``,
and for ``s = 0`` (``sigma = +1``) ``Re f``, ``Im f`` = the spin-0 transforms of ``G`` and
``C``. For ``s < 0``, ``conj(f)`` is the spin-``|s|`` field of ``(-1)^{s+m} conj(a_{l,-m})``,
whose pair is ``(-1)^s (G, -C)``.

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

Analyses stop at the band-limit asked for (``lmax`` below the grid's): their cost falls with
its square.
"""

from __future__ import annotations

import numpy as np

from . import legendre
from .legendre import _alm2leg, _grid, _leg2alm, _leg2map, _map2leg


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



def _analysis_real_start(f, L, cdtype, bandlimit, calls):
    """Real spin-0 analysis: ``(..., L, 2L-1)`` real -> ``(..., B, B)`` half, ``l, m < B =
    bandlimit``, given by ``finish()`` once the ducc0 calls queued on ``calls`` have run."""
    maps, lead = _flat(np.asarray(f, np.finfo(cdtype).dtype))
    leg = _map2leg(maps)
    alm = _leg2alm(leg if L <= legendre.TABLE_MAX else leg[..., :bandlimit], 0, quadrature=True,
                   bandlimit=bandlimit, calls=calls)
    return lambda: alm.reshape(lead + (bandlimit, bandlimit))



def _analysis_real_ct_start(c, L, cdtype, bandlimit, calls):
    """JAX cotangent of :func:`_analysis_real_start`: ``(..., B, B)`` -> ``(..., L, 2L-1)`` real,
    given by ``finish()`` once the ducc0 calls queued on ``calls`` have run."""
    B = bandlimit
    alm, lead = _flat(np.conj(np.asarray(c, cdtype)) * _m_weights(B, 1.0, 0.5).astype(cdtype))
    leg = np.zeros((alm.shape[0], 1, L, L), cdtype)
    _alm2leg(alm, 0, rings=L, out=leg[..., :B], calls=calls)

    def finish():
        leg[..., :B] *= _grid(L)[1][:, None]
        return _leg2map(leg).reshape(lead + (L, 2 * L - 1))

    return finish
