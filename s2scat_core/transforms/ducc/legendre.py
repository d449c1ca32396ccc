r"""The ducc0 steps of every transform: Legendre sums on the GL rings, and FFTs along them.

Grid (:func:`_grid`): ``T`` GL colatitudes ``theta_t`` (s2fft's ``"gl"`` order, equal to
ducc0's ``geometry="GL"``) by ``2T-1`` longitudes ``phi_p = 2 pi p/(2T-1)``, ring weights
``w_t`` (``2 pi/(2T-1)`` included). Coefficients ``l, m < B`` are read in place from the
``(B, B)`` half ``x[l, m]`` (``m >= 0``) through ``mstart[m] = m``, ``lstride = B``.

Synthesis is :func:`_alm2leg`, ``leg[t, m] = sum_l alm[l, m] sLambda_lm(theta_t)`` (ducc0's
``alm2leg``; a spin pair ``(G, C)`` gives ``(Q, U)``), then :func:`_leg2map`,
``f[t, p] = sum_m leg[t, m] e^{i m phi_p}`` (one real FFT of length ``2T-1`` for the whole
batch, ``ducc0.fft.c2r``). Analysis and adjoint synthesis are :func:`_map2leg` (``r2c``) then
:func:`_leg2alm` (``leg2alm``; with ``w_t`` for analysis). This is what
``synthesis_2d``/``analysis_2d`` do, but with the FFT batched: ducc0's 2D functions plan the
ring FFT at every call, which is slow for lengths ``2L-1`` with large prime factors
(``L = 64``: 0.85 ms against 0.2 ms for a spin-2 map).

Shapes: ``alm (n, ncomp, B, B)`` <-> ``leg (n, 2 or 1, T, B)`` complex; ``leg (..., T, T)``
<-> maps ``(..., T, 2T-1)`` real.

Up to ``TABLE_MAX`` rings the Legendre step of a whole batch is one matrix product per ``m``
with ducc0's own Legendre functions tabulated (:func:`_legendre_table`, read off ducc0;
``O(L^3)``, 0.5 MB a spin at ``L = 32``), where a call per map would cost more than its work.
Above, one ducc0 call per map, run at once or queued on a round's ``calls``
(:mod:`.schedule`), and from ``SPLIT_FROM`` rings cut into ``m`` blocks of equal work, one a
worker (:func:`_blocks`). The other modules read ``legendre.TABLE_MAX`` as an attribute, so
that one setting governs them all.
"""

from __future__ import annotations

import functools

import ducc0
import numpy as np

from .host_threads import THREADS as _NTHREADS
from .schedule import _run, _threads


@functools.lru_cache(maxsize=None)
def _grid(L, bandlimit=None):
    """ducc0 keywords for the GL rings of band-limit ``L`` and coefficients ``l, m < bandlimit``
    (default ``L``) read in place from ``x[l, m]``, and the ring weights ``(L,)``
    (``2 pi/(2L-1)`` included). ducc0's nodes and weights equal :func:`..base.gl_thetas` and
    :func:`..base.gl_weights` to ~1e-15 and take microseconds where those take seconds at
    ``L = 1024``."""
    B = L if bandlimit is None else bandlimit
    m = np.arange(B, dtype=np.uintp)
    theta = np.asarray(ducc0.misc.GL_thetas(L), np.float64)
    return (dict(lmax=B - 1, theta=theta, mval=m, mstart=m, lstride=B),
            np.asarray(ducc0.misc.GL_weights(L, 2 * L - 1), np.float64))



#: From this many rings on, each map's transform is split into ``m`` blocks of equal work, one
#: a worker (:func:`_blocks`): one spin-2 map at L = 512 takes 9.2 ms on two workers, 11.4 ms
#: with ducc0's two threads, 15.7 ms on one. Below, the split costs more than it saves.
SPLIT_FROM = 256



@functools.lru_cache(maxsize=None)
def _blocks(T, B):
    """``(m slice, ducc0 keywords)`` pairs covering ``m < B`` on ``T`` rings: one block below
    ``SPLIT_FROM`` rings, else one per thread, contiguous, of about equal work (``B - m``
    values of ``l`` at each ``m``; neighbouring ``m`` in different threads would share cache
    lines)."""
    kw, _ = _grid(T, B)
    if T < SPLIT_FROM or _NTHREADS == 1:
        return ((slice(0, B), kw),)
    work = np.cumsum(B - np.arange(B))
    cuts = np.searchsorted(work, work[-1] * np.arange(1, _NTHREADS) / _NTHREADS)
    edges = [0] + [int(c) for c in cuts] + [B]
    return tuple((slice(a, b), dict(kw, mval=kw["mval"][a:b], mstart=kw["mstart"][a:b]))
                 for a, b in zip(edges[:-1], edges[1:]) if b > a)



#: Band-limits up to this one use ducc0's Legendre functions as tables (one matrix product for
#: a whole batch); above, one ducc0 call per map. At small L a call costs more than its work.
TABLE_MAX = 32



@functools.lru_cache(maxsize=None)
def _legendre_table(L, spin, grad_only):
    """ducc0's ``alm2leg`` at band-limit ``L`` as real matrices, one per ``m``.

    ``K[m, a*L + t, b*L + l]`` with ``leg[a, t, m] = sum_{b, l} K[m, a*L + t, b*L + l] alm[b, l, m]``
    (``a``: output component, ``b``: input component), read off ducc0 by transforming unit
    coefficients (one ``l`` at every ``m`` at once); ``leg2alm`` is its conjugate transpose.
    Real for spin 0; spin pairs mix with factors ``i``.
    """
    kw, _ = _grid(L)
    n_in = 1 if spin == 0 or grad_only else 2
    n_out = 1 if spin == 0 else 2
    table = np.zeros((L, n_out, L, n_in, L), np.float64 if spin == 0 else np.complex128)
    for b in range(n_in):
        for l in range(L):
            unit = np.zeros((n_in, L, L), np.complex128)
            unit[b, l, :] = 1.0
            leg = ducc0.sht.alm2leg(alm=unit.reshape(n_in, L * L), spin=spin, nthreads=1,
                                    mode="GRAD_ONLY" if grad_only else "STANDARD", **kw)
            table[:, :, :, b, l] = np.moveaxis(leg if spin else leg.real, 2, 0)
    return table.reshape(L, n_out * L, n_in * L)



@functools.lru_cache(maxsize=None)
def _legendre_table_adjoint(L, spin, grad_only):
    """``leg2alm`` as tables: the conjugate transpose of :func:`_legendre_table`, per ``m``."""
    return np.ascontiguousarray(np.conj(np.swapaxes(_legendre_table(L, spin, grad_only), 1, 2)))



@functools.lru_cache(maxsize=None)
def _table(L, spin, grad_only, adjoint):
    """:func:`_legendre_table` (``adjoint``: :func:`_legendre_table_adjoint`) as ``_by_table``
    applies it: ``(R, i_in, i_out)`` with ``R`` real and the input (output) components flagged
    in ``i_in`` (``i_out``) multiplied by ``i``. A spin table whose ``(a, b)`` blocks are each
    real or imaginary (gradient only: ``G -> (Q, iU)``) so takes one real product, half the
    work of a complex one; others stay complex (``i_in = i_out = None``)."""
    table = _legendre_table_adjoint(L, spin, grad_only) if adjoint else _legendre_table(L, spin,
                                                                                        grad_only)
    if not np.iscomplexobj(table):
        return table, None, None
    n_out, n_in = table.shape[1] // L, table.shape[2] // L
    blocks = table.reshape(L, n_out, L, n_in, L)
    re = np.array([[np.any(blocks[:, a, :, b].real) for b in range(n_in)] for a in range(n_out)])
    im = np.array([[np.any(blocks[:, a, :, b].imag) for b in range(n_in)] for a in range(n_out)])
    if np.any(re & im):
        return table, None, None
    if np.all(im == im[:, :1]):  # by output component
        i_in, i_out = np.zeros(n_in, bool), im[:, 0]
    elif np.all(im == im[:1]):  # by input component
        i_in, i_out = im[0], np.zeros(n_out, bool)
    else:
        return table, None, None
    return np.ascontiguousarray(table.real + table.imag), i_in, i_out



def _by_table(table, x, n_in, n_out):
    """``y[k, a, t, m] = sum_{b, l} table[m, a*L + t, b*L + l] x[k, b, l, m]``: ``(n, n_in, L, L)``
    complex -> ``(n, n_out, L, L)``, one matrix product per ``m`` (a real one on interleaved
    parts for a real table, or for one given as ``(R, i_in, i_out)`` by :func:`_table`)."""
    table, i_in, i_out = table
    n, L = x.shape[0], x.shape[-1]
    if i_in is not None and i_in.any():
        x = np.array(x)
        x[:, i_in] *= 1j
    cols = np.ascontiguousarray(np.moveaxis(x, -1, 0).reshape(L, n, n_in * L).transpose(0, 2, 1))
    if np.iscomplexobj(table):
        out = np.matmul(table.astype(x.dtype, copy=False), cols)  # (L, n_out*L, n)
    else:
        cols = cols.view(np.finfo(x.dtype).dtype)  # (L, n_in*L, 2n): parts interleaved
        out = np.matmul(table.astype(cols.dtype, copy=False), cols).view(x.dtype)
    out = np.ascontiguousarray(np.moveaxis(out.reshape(L, n_out, L, n), (3, 1, 2, 0), (0, 1, 2, 3)))
    if i_out is not None and i_out.any():
        out[:, i_out] *= 1j
    return out



def _alm2leg(alm, spin, quadrature=False, grad_only=False, rings=None, out=None, calls=None):
    """``(n, ncomp, B, B)`` halves -> Legendre coefficients ``leg[k, c, t, m]``, ``(n, 2 or 1, T, B)``.

    ``ncomp`` is 2 for ``spin > 0`` (one call per pair; 1 with ``grad_only``, the curl part
    being zero, and the output still has 2 components), any for ``spin = 0`` (one call each).
    ``T = rings`` (default ``B``) GL rings: coefficients of a lower band-limit on a finer grid.
    ``quadrature`` multiplies ring ``t`` by its GL weight. ``out`` may be a strided view
    (ducc0 writes in place), with any leading axes that hold ``n`` maps (``(*lead, 2 or 1, T,
    B)``, in C order); it is returned as given.
    """
    B = alm.shape[-1]
    T = B if rings is None else rings
    _, w = _grid(T, B)
    n_in = 1 if grad_only or not spin else 2
    n_out = 2 if spin else 1
    ins = np.ascontiguousarray(alm).reshape(-1, n_in, B, B)
    given = out is not None
    if out is None:
        out = np.empty((ins.shape[0], n_out, T, B), alm.dtype)
    elif out.shape[-3:] != (n_out, T, B) or int(np.prod(out.shape[:-3])) != ins.shape[0]:
        raise ValueError(f"ducc: leg output of shape {out.shape}, expected {(ins.shape[0], n_out, T, B)}")
    if T <= TABLE_MAX:
        full = ins
        if B < T:
            full = np.zeros(ins.shape[:2] + (T, T), ins.dtype)
            full[..., :B, :B] = ins
        out[...] = _by_table(_table(T, spin, grad_only, False), full, n_in, n_out)[..., :B].reshape(
            out.shape)
    else:
        mode = "GRAD_ONLY" if grad_only else "STANDARD"
        outs = out if out.ndim == 4 else [out[i] for i in np.ndindex(out.shape[:-3])]
        todo = [] if calls is None else calls
        todo += [functools.partial(ducc0.sht.alm2leg, alm=a, spin=spin, leg=o[..., m], mode=mode,
                                   **block)
                 for a, o in zip(ins.reshape(-1, n_in, B * B), outs) for m, block in _blocks(T, B)]
        if calls is None:
            _run(todo)
    if quadrature:
        out *= w[:, None]
    return out if given else out.reshape((alm.shape[0], -1, T, B))



def _leg2map(leg, out=None):
    """``sum_m leg[..., t, m] e^{i m phi_p}`` (real field, ``m >= 0`` given).

    ``(..., L, L)`` -> ``(..., L, 2L-1)``."""
    L = leg.shape[-1]
    return ducc0.fft.c2r(leg, axes=(leg.ndim - 1,), lastsize=2 * L - 1, forward=False, inorm=0,
                         nthreads=_threads(L), out=out)



def _leg2alm(leg, spin, quadrature=False, grad_only=False, bandlimit=None, calls=None):
    """Adjoint of :func:`_alm2leg`: ``(n, ncomp, T, M)`` -> ``(n, ncomp, B, B)`` halves
    (``(n, 1, B, B)``, the gradient part, with ``grad_only``), ``B = bandlimit`` (default ``T``,
    at most ``M``; columns ``m >= B`` of ``leg`` are not read). ``leg`` may be a strided view.

    After :func:`_map2leg` and with ``quadrature`` (the GL weights, applied to ``leg`` in place)
    this is the GL analysis; without, the adjoint synthesis. ``calls``: as for :func:`_alm2leg`.
    """
    T = leg.shape[-2]
    B = T if bandlimit is None else bandlimit
    _, w = _grid(T, B)
    if quadrature:
        leg *= w[:, None]
    n_out = 2 if spin else 1
    n_in = 1 if grad_only or not spin else 2
    ins = leg.reshape(-1, n_out, T, leg.shape[-1])
    if T <= TABLE_MAX:
        alm = _by_table(_table(T, spin, grad_only, True), ins[..., :T], n_out, n_in)
        alm = np.ascontiguousarray(alm[..., :B, :B])
    else:
        alm = np.zeros((ins.shape[0], n_in, B, B), leg.dtype)
        mode = "GRAD_ONLY" if grad_only else "STANDARD"
        todo = [] if calls is None else calls
        todo += [functools.partial(ducc0.sht.leg2alm, leg=x[..., m], spin=spin, alm=out,
                                   mode=mode, **block)
                 for x, out in zip(ins, alm.reshape(-1, n_in, B * B)) for m, block in _blocks(T, B)]
        if calls is None:
            _run(todo)
    return alm.reshape((leg.shape[0], -1, B, B))



def _map2leg(maps, out=None):
    """``sum_p maps[..., t, p] e^{-i m phi_p}``, ``m = 0..L-1`` (adjoint of :func:`_leg2map`).

    ``(..., L, 2L-1)`` -> ``(..., L, L)``."""
    L = maps.shape[-2]
    return ducc0.fft.r2c(maps, axes=(maps.ndim - 1,), forward=True, inorm=0,
                         nthreads=_threads(L), out=out)
