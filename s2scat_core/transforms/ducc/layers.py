r"""Both layers of the statistics at every scale, in three rounds of host work, and their VJP.

Scale ``i`` has band-limit ``Li``, ``K = 2N-1`` directions and ``C`` components
(:mod:`.real_wavelets`). Round 1 (:func:`_modulus_kernel`): its first layer, the maps
``W_k (..., K, Li, 2Li-1)``, and their moduli; round 2: the analyses of ``|W_k|`` to ``Bi``
(below the grid's band-limit: the cost falls with its square), ``M (..., K, Bi, Bi)``; round 3
(:func:`_second_layer_kernel`): for each ``j1``, the wavelets at ``j1`` of its ``A`` partners'
moduli read to ``L_j1``. Each scale's layers stay unmixed, as their weighted components, second
layer then first, in one array of rows ``R (..., A*K*C + C, Li, Li)`` complex, and only their
Gram matrix ``R R^T`` (as real pairs, ``(..., n, n)``, :func:`_gram`) goes to XLA
(:class:`s2scat_core.transforms.base.Mixed`): the statistics are its blocks, mixed. The means
``M[..., :1, :1] (..., K, 1, 1)`` give S1; the signs of the first layer's maps
``(..., K, Li, 2Li-1)`` int8 are kept with the rows for ``|W|``'s VJP.

The VJP (:func:`_two_layers_ct_kernel`) takes the Gram matrices' cotangent ``D`` to the rows'
``(D + D^T) R`` (:func:`_gram_ct`) and runs the rounds backwards: the adjoint second layer
(its cotangents added into those of each partner's moduli), the adjoint analyses, the adjoint
first layer.

Each round runs per scale (:func:`_by_scale`): the large scales' ducc0 calls are launched
first and the small scales' table products run in the calling thread while they are under way
(:meth:`.schedule._Calls.launch`); between rounds the large scales' NumPy work (mixing, FFTs,
moduli, Gram matrices and their cotangents) is shared out, whole scales to each thread (the
worker used to wait while the calling thread did it all: L = 128 gradient in the benchmark,
39.5 ms before, 31.1 ms after).
"""

from __future__ import annotations

import functools

import numpy as np

from . import buffers, host_threads, legendre
from .legendre import _leg2map, _map2leg
from .real_wavelets import (_components, _components_ct_start, _legs_ct_start, _real_field_finish,
                            _ring_factors, _weigh, _weights, _wavelets_real_start)
from .schedule import _lockstep
from .sht import _analysis_real_ct_start, _analysis_real_start, _m_weights


def _modulus_kernel(f, h, N, cdtype, bandlimit, signs, first, calls):
    """First layer of a real field at one scale and the analysis of its moduli (two rounds).

    ``f (..., L, L)`` half -> the weighted components of the maps ``W_k`` (as ``"components"``
    in :func:`.real_wavelets._wavelets_real_start`) written to ``first (..., C, L, L)``
    complex, and returns ``M (..., 2N-1, B, B)``, the analysis of ``|W_k|`` to
    ``B = bandlimit``, and, with ``signs``, ``sign(W_k)`` ``(..., 2N-1, L, 2L-1)`` int8 (for the
    VJP). The maps stay on the host.
    """
    L = f.shape[-1]
    lead = f.shape[:-2]
    real = np.finfo(cdtype).dtype
    finish = _wavelets_real_start(f, h, N, cdtype, "legs", calls)
    yield
    legs, parts = finish()  # (K, n, L, L), (C, n, L, L)
    _weigh(first, L, source=np.moveaxis(parts.reshape(parts.shape[:1] + lead + (L, L)), 0, -3))
    K = legs.shape[0]
    maps = np.empty((legs.shape[1], K, L, 2 * L - 1), real)
    _leg2map(legs, out=maps.swapaxes(0, 1))
    sign = None
    if signs:
        sign = np.empty(maps.shape, np.int8)
        host_threads.by_rows(_sign, sign, maps)
        sign = sign.reshape(lead + (K, L, 2 * L - 1))
    host_threads.by_rows(lambda out: np.abs(out, out=out), maps)
    moduli = _analysis_real_start(maps, L, cdtype, bandlimit, calls)
    yield
    return moduli().reshape(lead + (K, bandlimit, bandlimit)), sign



def _sign(out, x):
    """``out = sign(x)`` as int8 (-1, 0 or 1): two comparisons, faster than ``np.sign`` with a
    cast."""
    np.greater(x, 0, out=out.view(np.bool_))
    out -= np.less(x, 0).view(np.int8)



def _modulus_ct_kernel(h, sign, ct_first, ct_m, N, cdtype, bandlimit, calls):
    """VJP of :func:`_modulus_kernel`: cotangents of the components ``first`` (real pairs
    ``(..., C, L, L, 2)``) and of ``M`` -> that of ``f (..., L, L)`` (two rounds). ``ct_m`` is
    ``(c, parts)``: ``M``'s cotangent is ``c (..., K, 1, 1)`` at ``l = m = 0`` plus the
    ``parts[a] (..., K, La, La)`` added in from ``l, m = 0`` (summed here, each scale its own,
    so that the scales can do it side by side). ``|W|`` passes ``ct`` on as ``sign(W) ct``; the
    maps' cotangent enters through its FFT with ``m > 0`` doubled (as
    :func:`.real_wavelets._wavelets_real_ct_start`) and is unmixed to components, ``first``'s
    is weighted as in :func:`.real_wavelets._components_ct_start`, and both go through one
    adjoint transform."""
    h = _weights(h, h.shape[-2], N)
    L = h.shape[0]
    K = 2 * N - 1
    lead = ct_first.shape[:-4]
    c, parts = ct_m
    ct_m = np.zeros(c.shape[:-2] + (bandlimit, bandlimit), cdtype)
    ct_m[..., :1, :1] = c
    for part in parts:
        ct_m[..., :part.shape[-2], :part.shape[-1]] += part
    finish = _analysis_real_ct_start(ct_m, L, cdtype, bandlimit, calls)
    yield
    g = finish().reshape(-1, K, L, 2 * L - 1)  # cotangent of |W|
    g *= np.asarray(sign).reshape(g.shape)
    legs = np.empty((K, g.shape[0], L, L), cdtype)
    _map2leg(g, out=legs.swapaxes(0, 1))
    legs *= _m_weights(L, 1.0, 2.0)
    C = ct_first.shape[-4]
    fc = np.ascontiguousarray(ct_first).view(cdtype).reshape(-1, C, L, L)
    finish = _real_field_finish(_legs_ct_start(legs, h, N, cdtype, calls, parts_ct=fc.swapaxes(
        0, 1) * _ring_factors(L, cdtype)), lead, L)
    yield
    return finish()



def _by_scale(kernels, bandlimits, work, calls):
    """Run per-scale kernels (generators; ``kernels[i]`` that of scale ``i``, whose transforms
    are at band-limit ``bandlimits[i]``) in lockstep (:func:`.schedule._lockstep`): each round,
    those above ``TABLE_MAX`` (whose transforms are ducc0 calls) advance first, shared out over
    the calling thread and the pool's workers by ``work[i]``, their calls are launched, then the
    others (table products) advance in the calling thread beside them. Their results, in scale
    order."""
    order = sorted(range(len(kernels)), key=lambda i: -bandlimits[i])
    large = sum(1 for L in bandlimits if L > legendre.TABLE_MAX)
    results = yield from _lockstep([kernels[i] for i in order], launch=(large, calls),
                                   sizes=[work[i] for i in order])
    out = [None] * len(order)
    for i, r in zip(order, results):
        out[i] = r
    return out



def _two_layers_kernel(halves, hs, bandlimits, pairs, N, cdtype, signs, calls):
    """Both layers of a real field (``SphericalTransforms.two_layers``), three rounds: the
    first layer of every scale, the analyses of the moduli, the second layer of every ``j1``.
    Returns ``(grams, means, signs, rows)``: ``rows[i]`` scale ``i``'s rows, the second layer's
    components then the first layer's, ``(..., A*K*C + C, Li, Li)`` complex (weighted ring
    Fourier coefficients), and ``grams[i] (..., n, n)`` their Gram matrix as real pairs
    (:class:`..base.Mixed`). Each round's per-scale work is shared out (:func:`_by_scale`)."""
    K = 2 * N - 1
    partners = dict(pairs)
    rows, firsts, seconds = [], [], {}
    for i, x in enumerate(halves):
        L = x.shape[-1]
        C = _components(N, L)[1].shape[1]
        I = K * len(partners.get(i, ()))
        rows.append(buffers.empty(x.shape[:-2] + ((I + 1) * C, L, L), cdtype))
        firsts.append(rows[-1][..., I * C:, :, :])
        seconds[i] = rows[-1][..., :I * C, :, :].reshape(x.shape[:-2] + (-1, K, C, L, L))
    Ls = [x.shape[-1] for x in halves]
    work = [r.shape[-3] * L ** 2 for r, L in zip(rows, Ls)]
    first = yield from _by_scale([_modulus_kernel(x, h, N, cdtype, B, signs, y, calls)
                                  for x, h, B, y in zip(halves, hs, bandlimits, firsts)], Ls,
                                 [L ** 2 for L in Ls], calls)
    moduli, sign = zip(*first)
    grams = yield from _by_scale([_second_layer_kernel([moduli[i2] for i2 in partners.get(i, ())],
                                                       h, N, cdtype, r, seconds[i], calls)
                                  for i, (h, r) in enumerate(zip(hs, rows))], Ls, work, calls)
    return (tuple(grams), tuple(np.ascontiguousarray(m[..., :1, :1]) for m in moduli), sign,
            rows)



def _second_layer_kernel(moduli, h, N, cdtype, rows, second, calls):
    """Second layer of one scale ``j1`` (one round if its transforms are ducc0 calls): the
    weighted components of the wavelet transforms of its partners' moduli ``moduli[a]``
    ``(..., K, B, B)`` (``B >= L1``, read to ``L1``) written to ``second (..., A, K, C, L1, L1)``,
    a view of ``rows``; returns the Gram matrix of ``rows`` (:func:`_gram`)."""
    if moduli:
        L1 = rows.shape[-1]
        stack = np.stack([m[..., :L1, :L1] for m in moduli], axis=-4)
        finish = _wavelets_real_start(stack, h, N, cdtype, "components", calls, out=second)
        if L1 > legendre.TABLE_MAX:
            yield
        finish()
    return _gram(_as_real_rows(rows))



def _as_real_rows(rows):
    """``(..., n, L, L)`` complex -> ``(..., n, 2 L^2)`` real pairs (a view)."""
    return rows.view(np.finfo(rows.dtype).dtype).reshape(rows.shape[:-2] + (-1,))



def _gram(x):
    """``x x^T`` for ``x (..., n, X)``: ``(..., n, n)``, the columns shared out over the host
    workers for large ``x`` where :func:`.host_threads.cores` allows (partial Gram matrices,
    summed)."""
    lead, (n, X) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape((-1, n, X))
    parts = min(host_threads.cores(), max(1, x.nbytes // host_threads.SPLIT_BYTES))
    cuts = [X * i // parts for i in range(parts + 1)]

    def partial_gram(a, b):
        return np.stack([r[:, a:b] @ r[:, a:b].T for r in flat])

    grams = host_threads.run([functools.partial(partial_gram, a, b)
                               for a, b in zip(cuts[:-1], cuts[1:])])
    return functools.reduce(np.add, grams).reshape(lead + (n, n))



def _gram_ct(ct, rows):
    """Cotangent of the rows (real pairs, ``(..., n, L, L, 2)``) of :func:`_gram`'s
    ``G = R R^T`` from that of ``G``: ``(ct + ct^T) R``, the columns shared out over the host
    workers for large ``R``."""
    x = _as_real_rows(rows)
    lead, (n, X) = x.shape[:-2], x.shape[-2:]
    ct = np.asarray(ct, x.dtype).reshape((-1, n, n))
    out = buffers.empty((ct.shape[0], n, X), x.dtype)
    for c, r, o in zip(ct, x.reshape((-1, n, X)), out):
        host_threads.matmul_columns(np.ascontiguousarray(c + c.T), r, o)
    return out.reshape(lead + (n,) + rows.shape[-2:] + (2,))



def _two_layers_ct_kernel(hs, bandlimits, pairs, N, cdtype, signs, rows, ct_grams, ct_means,
                          calls):
    """VJP of :func:`_two_layers_kernel` from the cotangents of its Gram matrices (given the
    ``rows`` and ``signs`` it computed), three rounds: the adjoint second layer (its cotangents
    added into the moduli's by each scale of moduli), the adjoint analyses, the adjoint first
    layer."""
    Ls = [h.shape[-2] for h in hs]
    partners = dict(pairs)
    outs = yield from _by_scale([_second_layer_ct_kernel(c, r, h, N, cdtype,
                                                         len(partners.get(i, ())), calls)
                                 for i, (c, r, h) in enumerate(zip(ct_grams, rows, hs))], Ls,
                                [r.shape[-3] * L ** 2 for r, L in zip(rows, Ls)], calls)
    firsts, ct_seconds = zip(*outs)
    ct_parts = [[] for _ in Ls]  # cotangents of each scale's moduli from its j1 partners
    for i1, i2s in pairs:
        for a, i2 in enumerate(i2s):
            ct_parts[i2].append(ct_seconds[i1][..., a, :, :, :])  # (..., K, L1, L1)
    grads = yield from _by_scale([_modulus_ct_kernel(h, s, ct, (c, parts), N, cdtype, B, calls)
                                  for h, s, ct, c, parts, B in zip(hs, signs, firsts, ct_means,
                                                                   ct_parts, bandlimits)], Ls,
                                 [L ** 2 for L in Ls], calls)
    return tuple(grads)



def _second_layer_ct_kernel(ct_gram, rows, h, N, cdtype, A, calls):
    """VJP of :func:`_second_layer_kernel` (``A`` partners; one round if its transforms are
    ducc0 calls): from the cotangent of the Gram matrix to those of the rows' first-layer part
    (real pairs ``(..., C, L1, L1, 2)``) and of the partners' moduli ``(..., A, K, L1, L1)``
    (None if ``A = 0``)."""
    K = 2 * N - 1
    L1 = rows.shape[-1]
    C = _components(N, L1)[1].shape[1]
    ct = _gram_ct(ct_gram, rows)
    if not A:
        return ct, None
    second = ct[..., :A * K * C, :, :, :]
    gather = _components_ct_start(h, second.reshape(second.shape[:-4] + (A, K, C, L1, L1, 2)), N,
                                  cdtype, calls)
    if L1 > legendre.TABLE_MAX:
        yield
    return ct[..., A * K * C:, :, :, :], gather()
