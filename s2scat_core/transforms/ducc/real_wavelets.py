r"""One scale's directional wavelets of a real field, fused into one set of ducc0 calls, and
their VJPs.

``f (..., L, L)`` half, ``h (L, N)`` the scale's harmonic weights
(:func:`s2scat_core.transforms.directional.harmonic_weights`). The map of direction
``gamma_k = 2 pi k/(2N-1)`` is ``W_k = g_0 + sum_{n > 0} 2 Re(e^{i n gamma_k} g_n)``, ``g_n``
the spin ``-n`` synthesis of ``f h_n``; as Legendre sums,

    leg_k = leg_0 + sum_{n > 0} (2 cos(n gamma_k) legQ_n + 2 sin(n gamma_k) legU_n),

``leg_0`` that of ``f h_0`` (spin 0), ``(legQ_n, legU_n)`` that of the spin-``n`` pair of
``f h_n`` (``g_n = conj(Q_n + i U_n)``). The pair of ``f h_n`` is ``G = se Re(h_n) f``,
``C = -se Im(h_n) f`` (``se = -(-1)^n``), so with real weights (odd ``N``) or imaginary ones
(even ``N``) a single component is transformed (ducc0's ``GRAD_ONLY``). ducc0 writes the ``C``
components (``C = N`` of them against ``2N-1`` directions, :func:`_components`) straight into
one component-first buffer ``(C, n, L, L)``; the directions are their mixtures, one matrix
product ``mixing (2N-1, C)`` on the Legendre sums (:func:`_mix`). Then either one FFT per
direction gives the maps ``(..., 2N-1, L, 2L-1)``, or the sums themselves are returned,
weighted by :func:`s2scat_core.transforms.base.ring_weights` (their dot products are sphere
integrals: no maps needed), or the components unmixed and weighted so.

The VJPs run the same path backwards: a map's cotangent enters through its FFT with ``m > 0``
doubled, is unmixed by ``mixing^T`` and goes through the adjoint Legendre sums; ``f_l0`` is
real, so imaginary parts at ``m = 0`` are dropped.

Every ``*_start`` function queues its ducc0 calls on ``calls`` (:mod:`.schedule`) and returns
``finish()``, which gives the result once they have run.
"""

from __future__ import annotations

import functools

import numpy as np

from ... import wavelets
from ..base import ring_weights
from . import buffers, host_threads
from .legendre import _alm2leg, _grid, _leg2alm, _leg2map, _map2leg
from .sht import _m_weights


def _direction_factors(N):
    """``2 cos(n gamma_k)``, ``2 sin(n gamma_k)`` for ``gamma_k = 2 pi k/(2N-1)``: ``(N, 2N-1)`` each."""
    ns = wavelets.directions(N)
    angles = np.outer(ns, 2 * np.pi * np.arange(2 * N - 1) / (2 * N - 1))
    return 2 * np.cos(angles), 2 * np.sin(angles)



def _spin_parts(hn):
    """How the pair of spin ``-n`` reads ``f h_n``: ``G = se Re(h_n) f``, ``C = -se Im(h_n) f``.

    Returns ``"grad"`` (``C = 0``: ducc0's ``GRAD_ONLY``), ``"curl"`` (``G = 0``: ``GRAD_ONLY``
    on ``C``, then ``Q + iU`` is ``i`` times the gradient-only map) or ``"both"``. Odd ``N`` gives
    real weights, even ``N`` imaginary ones.
    """
    if not np.any(hn.imag):
        return "grad"
    if not np.any(hn.real):
        return "curl"
    return "both"



def _weights(h, L, N):
    """The scale's ``h (L, N)`` from a callback operand (a ``vmap`` adds unit axes, or copies of
    the same weights with ``broadcast_all``)."""
    return np.asarray(h).reshape(-1, L, N)[0]



def _mix(coefficients, x):
    """``y[k] = sum_c coefficients[k, c] x[c]`` for real ``coefficients (K, C)`` and complex
    ``x (C, ...)``, one real matrix product on the interleaved parts (split across the host
    workers): ``(K, ...)``."""
    real = np.finfo(x.dtype).dtype
    b = np.ascontiguousarray(x).view(real).reshape(x.shape[0], -1)
    y = np.empty((coefficients.shape[0], b.shape[1]), real)
    host_threads.matmul_columns(coefficients.astype(real), b, y)
    return y.view(x.dtype).reshape((-1,) + x.shape[1:])



@functools.lru_cache(maxsize=None)
def _components(N, L):
    """The Legendre components a scale carries and how directions mix them.

    Returns ``(terms, mixing)``: ``terms`` lists ``n`` (0 once, each live ``n > 0`` once for its
    ``legQ_n`` and once for its ``legU_n``), ``mixing (2N-1, len(terms))`` is 1 on ``leg_0``,
    ``2 cos(n gamma_k)`` on ``legQ_n`` and ``2 sin(n gamma_k)`` on ``legU_n``.
    """
    cos, sin = _direction_factors(N)
    terms, columns = [], []
    for i, n in enumerate(wavelets.directions(N)):
        if n < 0 or n >= L:
            continue
        if n == 0:
            terms.append((i, 0))
            columns.append(np.ones(2 * N - 1))
        else:
            terms.append((i, int(n)))
            columns += [cos[i], sin[i]]
    return terms, np.stack(columns, axis=1)



def _wavelets_real_start(f, h, N, cdtype, output, calls, out=None):
    """Real-field wavelet maps at one scale: ``(..., L, L)`` half, ``h`` -> ``(..., 2N-1, L, 2L-1)``.

    ``leg_k = leg_0 + sum_{n > 0} (2 cos(n gamma_k) legQ_n + 2 sin(n gamma_k) legU_n)``, where
    ``leg_0`` is the spin-0 Legendre sum of ``f h_0`` and ``(legQ_n, legU_n)`` that of the spin-``n``
    pair of ``f h_n`` (``g_n = conj(Q_n + i U_n)``), then one real FFT per direction. ducc0
    writes each component straight into one component-first buffer, and :func:`_mix` turns it
    into directions with one matrix product.

    ``output``: ``"maps"``; ``"fourier"``, the ``leg_k`` themselves weighted by
    :func:`..base.ring_weights`, a tuple of ``2N-1`` arrays ``(..., L, L, 2)`` real pairs;
    ``"components"``, the components unmixed and weighted so, written to ``out (..., C, L, L)``
    complex (may be strided; to be mixed by :func:`_components`' matrix: :class:`..base.Mixed`);
    or ``"legs"``, the ``leg_k`` as they are, ``(2N-1, n, L, L)`` complex (batch flattened), and
    the components, ``(C, n, L, L)``. ducc0's calls are queued on ``calls``; the result is
    ``finish()`` once they have run.
    """
    f = np.array(f, cdtype)
    L = f.shape[-1]
    lead = f.shape[:-2]
    f = f.reshape(-1, L, L)
    f[..., 0] = f[..., 0].real  # a real field's f_l0 is real
    h = _weights(h, L, N)
    terms, mixing = _components(N, L)
    C = mixing.shape[1]
    if output == "components":  # written where the caller wants them, component axis first
        parts = np.moveaxis(out, -3, 0)
    else:
        parts = np.empty((C,) + f.shape, cdtype)
    after = []
    c = 0
    for i, n in terms:
        if n == 0:
            _alm2leg((f * h[:, i, None])[:, None], 0, out=parts[c, ..., None, :, :], calls=calls)
            c += 1
        else:
            after += _spin_legs(f, h[:, i], n, out=np.moveaxis(parts[c:c + 2], 0, -3), calls=calls)
            c += 2

    def finish():
        for fix in after:
            fix()
        if output == "components":
            _weigh(out, L)
            return None
        legs = _mix(mixing, parts)  # (2N-1, n, L, L)
        if output == "legs":
            return legs, parts
        if output == "fourier":
            _weigh(legs, L)
            real = np.finfo(cdtype).dtype
            return tuple(x.view(real).reshape(lead + (L, L, 2)) for x in legs)
        maps = np.empty((f.shape[0], 2 * N - 1, L, 2 * L - 1), np.finfo(cdtype).dtype)
        _leg2map(legs, out=maps.swapaxes(0, 1))
        return maps.reshape(lead + (2 * N - 1, L, 2 * L - 1))

    return finish



def _weigh(legs, L, source=None):
    """``legs (..., L, L) = source * _ring_factors(L)`` (``source`` default ``legs``: in place),
    split across the host workers, with ``Im F[t, 0]`` set to 0 (a real map's ``F[t, 0]`` is real;
    :func:`..base.ring_weights` gives it weight 0)."""
    factors = _ring_factors(L, legs.dtype)

    def weigh(out, x):
        if out.ndim <= 3 or out.flags.c_contiguous:
            np.multiply(x, factors, out=out)
            return
        # by blocks of the leading axis: NumPy copies a whole operand of more axes that
        # overlaps ``out`` and is not contiguous (the second layer's rows in place: 126 MB a
        # call at L = 128, 16 samples), and a copy that large is fresh memory every call
        for o, xi in zip(out, x):
            weigh(o, xi)

    host_threads.by_rows(weigh, legs, legs if source is None else source)
    legs[..., 0].imag = 0.0
    return legs



@functools.lru_cache(maxsize=None)
def _ring_factors(L, dtype=np.float64):
    """``(L, L)`` factors of complex ``F[t, m]`` equal to :func:`..base.ring_weights` on its
    real part (its imaginary part is zero at ``m = 0``, where that weight is 0), of ``dtype``
    (a complex one: NumPy multiplies complex arrays by complex ones faster than by real ones,
    0.30 against 0.43 ms for 3.9 MB)."""
    _, w = _grid(L)
    return ring_weights(w)[..., 0].astype(dtype)



def _spin_legs(f, hn, n, out, calls):
    """``legQ, legU`` of the spin-``n`` pair of ``f h_n`` (spin ``-n`` field) written to
    ``out (..., 2, L, L)`` (may be strided; its leading axes hold the ``B`` maps of
    ``f (B, L, L)``), once ``calls`` have run (:func:`.schedule._run`) and then the returned
    fixes (a list of callables)."""
    se = -((-1.0) ** n)
    kind = _spin_parts(hn)
    if kind == "both":
        pair = np.stack([se * hn.real[:, None] * f, -se * hn.imag[:, None] * f], axis=1)
        _alm2leg(pair, n, out=out, calls=calls)
    elif kind == "grad":
        _alm2leg((se * hn.real[:, None] * f)[:, None], n, grad_only=True, out=out, calls=calls)
    else:  # Q + iU = i (Q' + iU'): (Q', U') written swapped, then Q = -U'
        _alm2leg((-se * hn.imag[:, None] * f)[:, None], n, grad_only=True,
                 out=out[..., ::-1, :, :], calls=calls)
        q = out[..., 0, :, :]
        return [functools.partial(np.negative, q, out=q)]
    return []



def _wavelets_real_ct_start(ct, h, N, cdtype, calls):
    """JAX cotangent of :func:`_wavelets_real_start` (maps): ``(..., 2N-1, L, 2L-1)`` real ->
    ``(..., L, L)``.

    The cotangent of maps enters as its FFT ``sum_p ct_p e^{-i m phi_p}``, and the half's
    ``m > 0`` entries are doubled at the end (the maps count ``m`` and ``-m``). ducc0's calls
    are queued on ``calls``; the result is ``finish()``.
    """
    real = np.finfo(cdtype).dtype
    h = _weights(h, h.shape[-2], N)
    L = h.shape[0]
    lead = ct.shape[:-3]
    ct = np.asarray(ct, real).reshape((-1, 2 * N - 1, L, 2 * L - 1))
    legs = np.empty((2 * N - 1, ct.shape[0], L, L), cdtype)
    _map2leg(ct, out=legs.swapaxes(0, 1))
    gather = _legs_ct_start(legs, h, N, cdtype, calls)

    def finish():
        out = gather()
        out *= _m_weights(L, 1.0, 2.0)
        out[..., 0] = out[..., 0].real
        return out.reshape(lead + (L, L))

    return finish



def _wavelets_real_fourier_ct_start(h, ct, N, cdtype, calls):
    """JAX cotangent of :func:`_wavelets_real_start` with ``fourier``: ``2N-1`` arrays ``ct``
    ``(*vmap, *batch, L, L, 2)`` -> ``(*vmap, *batch, L, L)``; ``finish()`` gives it.

    Each, read as ``ct_Re + i ct_Im``, is weighted as the output was; it is then the FFT of
    a map's cotangent with its ``m > 0`` entries doubled, so no doubling follows.
    """
    real = np.finfo(cdtype).dtype
    h = _weights(h, h.shape[-2], N)
    L = h.shape[0]
    lead = ct[0].shape[:-3]
    legs = np.stack(ct, out=np.empty((2 * N - 1,) + lead + (L, L, 2), real))
    legs = legs.view(cdtype)[..., 0].reshape(2 * N - 1, -1, L, L)
    _weigh(legs, L)
    return _real_field_finish(_legs_ct_start(legs, h, N, cdtype, calls), lead, L)



def _real_field_finish(gather, lead, L):
    """``finish()`` for a real field's cotangent ``gather()`` ``(n, L, L)``: ``Im f_l0`` dropped,
    the batch axes ``lead`` restored."""
    def finish():
        out = gather()
        out[..., 0] = out[..., 0].real
        return out.reshape(lead + (L, L))

    return finish



def _components_ct_start(h, ct, N, cdtype, calls):
    """JAX cotangent of :func:`_wavelets_real_start` with ``"components"``: ``ct (..., C, L, L, 2)``
    -> ``(..., L, L)``; ``finish()`` gives it.

    Read as ``ct_Re + i ct_Im`` and weighted as the output was, each component's cotangent is
    the FFT of a map's cotangent with its ``m > 0`` entries doubled, so no doubling follows.
    """
    h = _weights(h, h.shape[-2], N)
    L = h.shape[0]
    lead = ct.shape[:-4]
    C = ct.shape[-4]
    ct = buffers.contiguous(ct).view(cdtype).reshape(-1, C, L, L)
    parts = _weigh(ct, L).swapaxes(0, 1)  # in place: a copy, or a part of the caller's no one reads
    return _real_field_finish(_parts_ct_start(parts, h, N, cdtype, calls), lead, L)



def _legs_ct_start(legs, h, N, cdtype, calls, parts_ct=None):
    """Cotangent on ``f`` from that of the direction Legendre sums ``legs (2N-1, n, L, L)``
    (``leg_k`` of :func:`_wavelets_real_start`), plus ``parts_ct (C, n, L, L)`` on the
    components if given, before any ``m > 0`` doubling: ``(n, L, L)``, given by the returned
    callable once the calls queued on ``calls`` have run."""
    _, mixing = _components(N, h.shape[0])
    parts = _mix(mixing.T, legs)  # component first
    if parts_ct is not None:
        parts += parts_ct
    parts[..., 0].imag = 0.0  # f_l0 is real: the imaginary parts at m = 0 carry nothing
    return _parts_ct_start(parts, h, N, cdtype, calls)



def _parts_ct_start(parts, h, N, cdtype, calls):
    """:func:`_legs_ct_start` from the cotangent of the components ``parts (C, n, L, L)`` (may be
    strided), the directions' already mixed back."""
    L = h.shape[0]
    terms, _ = _components(N, L)
    combine = []
    c = 0
    for i, n in terms:
        if n == 0:
            u = _leg2alm(parts[c, :, None], 0, calls=calls)
            combine.append(functools.partial(lambda u, hn: hn[:, None] * np.conj(u[:, 0]), u,
                                             h[:, i]))
            c += 1
        else:
            combine.append(_spin_legs_ct(parts[c:c + 2].swapaxes(0, 1), h[:, i], n, calls))
            c += 2

    def gather():
        out = np.zeros(parts.shape[1:], cdtype)
        for term in combine:
            out += term()
        return out

    return gather



def _spin_legs_ct(ct, hn, n, calls):
    """Cotangent on ``f`` of :func:`_spin_legs` (before the ``m > 0`` doubling); ``ct (B, 2, L, L)``
    holds ``(ctQ, ctU)`` and may be strided. ducc0's calls are appended to ``calls``; the
    returned callable gives the cotangent once they have run."""
    se = -((-1.0) ** n)
    kind = _spin_parts(hn)
    if kind == "both":
        u = _leg2alm(ct, n, calls=calls)
        return lambda: se * (hn.real[:, None] * np.conj(u[:, 0])
                             - hn.imag[:, None] * np.conj(u[:, 1]))
    if kind == "grad":
        u = _leg2alm(ct, n, grad_only=True, calls=calls)
        return lambda: se * hn.real[:, None] * np.conj(u[:, 0])
    u = _leg2alm(np.stack([ct[:, 1], -ct[:, 0]], axis=1), n, grad_only=True, calls=calls)
    return lambda: -se * hn.imag[:, None] * np.conj(u[:, 0])
