r"""Backend ``ducc``: ducc0's CPU SHTs behind ``jax.pure_callback``, differentiable by adjoints.

Every method is computed in NumPy with ``ducc0`` on s2fft's ``"gl"`` grid (equal to ducc0's
``geometry="GL"``, ``ntheta = L``, ``nphi = 2L-1``), wrapped in ``jax.custom_vjp`` whose
backward pass is the adjoint map. A batch (leading axes, or a ``vmap`` axis, which arrives as
one more leading axis) is looped over in NumPy, or for ``L <= TABLE_MAX`` transformed at once
by ducc0's own Legendre functions tabulated per ``m`` (read off ducc0; ``O(L^3)``, 0.5 MB a
spin at ``L = 32``), where a call per map would cost more than its work. Memory ``O(L^2)`` a
map above that.

Real-field wavelets: the pair of ``f h_n`` is ``G = se Re(h_n) f``, ``C = -se Im(h_n) f``
(``se = -(-1)^n``), so with real weights (odd ``N``) or imaginary ones (even ``N``) a single
component is transformed (ducc0's ``GRAD_ONLY``), written by ducc0 straight into one
component-first buffer; the directions are mixed as Legendre coefficients (one matrix
product), and either one FFT per direction gives the maps or the coefficients themselves are
returned, weighted, one array a direction (whose products are sphere integrals: no maps
needed).

One host callback computes both layers of the statistics at every scale (``two_layers``, in
three rounds: first layers, analyses of their moduli, second layers), and one more its VJP.
Each scale's layers stay unmixed, as their ``C`` weighted components (``C = N`` of them
against ``2N-1`` directions), second layer then first layer, in one array of rows, and only
the Gram matrix of these rows goes to XLA (:class:`.base.Mixed`): the statistics are its
blocks, mixed. The maps, moduli and rows never leave the host: the rows and the signs of the
first layer's maps (for ``|W|``) are kept for the VJP (:class:`_Kept`), which takes the
cotangent of the Gram matrices, ``(C + C^T) R``. At L = 128 that is 8 MB that no longer
cross into XLA and back in a gradient (about 4 ms of copies). Each round's ducc0 calls, of
every scale, are shared out over a pool of one-thread workers (:mod:`._host_threads`), and
maps at ``L >= SPLIT_FROM`` are cut into ``m`` blocks of equal work: on this 2-core machine
that beats ducc0's own threads (two maps at a time take 0.52x the serial time at L = 512,
ducc0's two threads 0.75x), and crossing into Python once per layer instead of once per scale
saves the XLA round trips that dominated at L = 128. The large scales' calls are launched
first; the small scales' table products (below) run in the calling thread while they are
under way (:meth:`_Calls.launch`). Between rounds, the large scales' NumPy work (mixing,
FFTs, moduli, Gram matrices and their cotangents) is shared out too, whole scales to each
thread (:func:`_by_scale`): the worker used to wait while the calling thread did it all
(L = 128 gradient in the benchmark: 39.5 ms before, 31.1 ms after). Analyses of moduli stop
at the band-limit asked for (``lmax`` below the grid's): their cost falls with its square.

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

Threads: a call on its own (a lone map below ``SPLIT_FROM``, the FFTs) uses ducc0's threads,
all cores for ``L >= 128`` and one below (where thread start-up costs more than it saves).
"""

from __future__ import annotations

import collections
import functools
import inspect
import itertools
import threading

import ducc0
import jax
import jax.numpy as jnp
import numpy as np

from .. import wavelets
from . import _host_threads
from ._host_threads import THREADS as _NTHREADS
from .base import Mixed, SphericalTransforms, register, ring_weights


# ------------------------------------------------------------------ NumPy kernels (one call)
@functools.lru_cache(maxsize=None)
def _grid(L, bandlimit=None):
    """ducc0 keywords for the GL rings of band-limit ``L`` and coefficients ``l, m < bandlimit``
    (default ``L``) read in place from ``x[l, m]``, and the ring weights ``(L,)``
    (``2 pi/(2L-1)`` included). ducc0's nodes and weights equal :func:`.base.gl_thetas` and
    :func:`.base.gl_weights` to ~1e-15 and take microseconds where those take seconds at
    ``L = 1024``."""
    B = L if bandlimit is None else bandlimit
    m = np.arange(B, dtype=np.uintp)
    theta = np.asarray(ducc0.misc.GL_thetas(L), np.float64)
    return (dict(lmax=B - 1, theta=theta, mval=m, mstart=m, lstride=B),
            np.asarray(ducc0.misc.GL_weights(L, 2 * L - 1), np.float64))


def _threads(L):
    return 1 if L < 128 else _host_threads.cores()


def _run(calls):
    """Run ducc0 calls (``functools.partial`` of ``alm2leg``/``leg2alm`` taking ``nthreads``):
    one call alone with ducc0's own threads; several from one queue, largest first, drained by
    the calling thread and the host pool's one-thread workers together (:class:`_Calls`), so
    that no thread waits while work is left."""
    if len(calls) == 1:
        calls[0](nthreads=_threads(len(calls[0].keywords["theta"])))
        return
    batch = _Calls()
    batch += calls
    batch.run()


class _Calls(list):
    """The ducc0 calls a round queues (a list of them). :meth:`launch` moves those queued so
    far to the queue, largest first, and starts the host pool's workers on it, so that the
    calling thread can go on with work that does not wait for them (the small scales' table
    products); :meth:`run`, at the end of the round, launches the rest, drains the queue with
    the calling thread too, and waits for the workers (raising their errors). On one core, or
    from a worker, the calling thread alone drains it."""

    def __init__(self):
        super().__init__()
        self._queue = collections.deque()
        self._workers = []

    def launch(self):
        if not self:
            return
        self._queue.extend(sorted(self, key=_work, reverse=True))
        self.clear()
        if _host_threads.cores() == 1:
            return
        alive = []
        for worker in self._workers:  # a finished worker's error is raised here
            if worker.done():
                worker.result()
            else:
                alive.append(worker)
        self._workers = alive
        pool = _host_threads.pool()
        self._workers += [pool.submit(self._drain)
                          for _ in range(_host_threads.THREADS - 1 - len(self._workers))]

    def _drain(self):
        while True:
            try:
                call = self._queue.popleft()
            except IndexError:
                return
            call(nthreads=1)

    def run(self):
        if len(self) == 1 and not self._queue and not self._workers:
            _run(list(self))  # a lone call: on ducc0's own threads
            self.clear()
            return
        self.launch()
        self._drain()
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.result()


def _work(call):
    """Rough cost of a call: rings times the ``(l, m)`` it covers, twice for a spin pair (in
    Python integers: sorting a round's calls by it should cost nothing)."""
    kw = call.keywords
    m0, m1, lmax = int(kw["mval"][0]), int(kw["mval"][-1]), kw["lmax"]
    return len(kw["theta"]) * (m1 - m0 + 1) * (2 * lmax + 2 - m0 - m1) * (2 if kw["spin"] else 1)


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
    alm = _leg2alm(leg if L <= TABLE_MAX else leg[..., :bandlimit], 0, quadrature=True,
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


def _together(kernels):
    """Run kernels side by side, all their ducc0 calls on the pool at once; their results in
    order. A kernel is a callable of ``calls`` that queues ducc0 calls on it and returns either
    ``finish()`` (one round of calls) or a generator that yields after each round it queues
    and returns its result (several rounds: transforms that feed transforms)."""
    calls = _Calls()
    rounds = _lockstep([_rounds(kernel, calls) for kernel in kernels])
    with _host_threads.one_blas_thread():
        while True:
            try:
                next(rounds)
            except StopIteration as stop:
                return tuple(stop.value)
            calls.run()


def _lockstep(generators, launch=None, sizes=None):
    """A generator that advances ``generators`` one round each, yields (their calls to run),
    and so on; it returns the list of their results. ``launch``: ``(k, calls)``: in each round,
    the calls queued by the first ``k`` generators are launched (:meth:`_Calls.launch`) before
    the others advance, side by side with them. ``sizes``: the work of each of the first ``k``
    generators (all of them without ``launch``); given, they are shared out over the calling
    thread and the host pool's workers (:func:`_share`), each advancing its own in turn."""
    results = [None] * len(generators)
    k = len(generators) if launch is None else launch[0]
    pending = list(range(len(generators)))

    def advance(indices):
        still = []
        for i in indices:
            try:
                next(generators[i])
                still.append(i)
            except StopIteration as stop:
                results[i] = stop.value
        return still

    while pending:
        first = [i for i in pending if i < k]
        if sizes is None:
            still = advance(first)
        else:
            still = sum(_host_threads.run([functools.partial(advance, part)
                                           for part in _share(first, sizes)]), [])
        if launch is not None:
            launch[1].launch()
        still += advance([i for i in pending if i >= k])
        if still:
            yield
        pending = sorted(still)
    return results


def _share(indices, sizes):
    """``indices`` in at most ``_host_threads.THREADS`` groups of about equal total
    ``sizes[i]`` (largest first, each to the lightest group)."""
    groups = [[] for _ in range(min(_host_threads.THREADS, len(indices)))]
    loads = [0] * len(groups)
    for i in sorted(indices, key=lambda i: -sizes[i]):
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += sizes[i]
    return [g for g in groups if g]


def _rounds(kernel, calls):
    out = kernel(calls=calls)
    if inspect.isgenerator(out):
        return (yield from out)
    yield
    return out()


# ------------------------------------------------------------------ fused real-field wavelets
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
    _host_threads.matmul_columns(coefficients.astype(real), b, y)
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
    :func:`.base.ring_weights`, a tuple of ``2N-1`` arrays ``(..., L, L, 2)`` real pairs;
    ``"components"``, the components unmixed and weighted so, written to ``out (..., C, L, L)``
    complex (may be strided; to be mixed by :func:`_components`' matrix: :class:`.base.Mixed`);
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
    :func:`.base.ring_weights` gives it weight 0)."""
    factors = _ring_factors(L, legs.dtype)
    _host_threads.by_rows(lambda out, x: np.multiply(x, factors, out=out), legs,
                          legs if source is None else source)
    legs[..., 0].imag = 0.0
    return legs


@functools.lru_cache(maxsize=None)
def _ring_factors(L, dtype=np.float64):
    """``(L, L)`` factors of complex ``F[t, m]`` equal to :func:`.base.ring_weights` on its
    real part (its imaginary part is zero at ``m = 0``, where that weight is 0), of ``dtype``
    (a complex one: NumPy multiplies complex arrays by complex ones faster than by real ones,
    0.30 against 0.43 ms for 3.9 MB)."""
    _, w = _grid(L)
    return ring_weights(w)[..., 0].astype(dtype)


def _spin_legs(f, hn, n, out, calls):
    """``legQ, legU`` of the spin-``n`` pair of ``f h_n`` (spin ``-n`` field) written to
    ``out (..., 2, L, L)`` (may be strided; its leading axes hold the ``B`` maps of
    ``f (B, L, L)``), once ``calls`` have run (:func:`_run`) and then the returned fixes (a list
    of callables)."""
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
    ct = np.ascontiguousarray(ct).view(cdtype).reshape(-1, C, L, L)
    parts = _weigh(np.empty(ct.shape, cdtype), L, source=ct).swapaxes(0, 1)
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


# ------------------------------------------------------------------ first layer and moduli
def _modulus_kernel(f, h, N, cdtype, bandlimit, signs, first, calls):
    """First layer of a real field at one scale and the analysis of its moduli (two rounds).

    ``f (..., L, L)`` half -> the weighted components of the maps ``W_k`` (as ``"components"``
    in :func:`_wavelets_real_start`) written to ``first (..., C, L, L)`` complex, and returns
    ``M (..., 2N-1, B, B)``, the analysis of ``|W_k|`` to ``B = bandlimit``, and, with
    ``signs``, ``sign(W_k)`` ``(..., 2N-1, L, 2L-1)`` int8 (for the VJP). The maps stay on the
    host.
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
        _host_threads.by_rows(_sign, sign, maps)
        sign = sign.reshape(lead + (K, L, 2 * L - 1))
    _host_threads.by_rows(lambda out: np.abs(out, out=out), maps)
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
    :func:`_wavelets_real_ct_start`) and is unmixed to components, ``first``'s is weighted as in
    :func:`_components_ct_start`, and both go through one adjoint transform."""
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
    are at band-limit ``bandlimits[i]``) in lockstep (:func:`_lockstep`): each round, those
    above ``TABLE_MAX`` (whose transforms are ducc0 calls) advance first, shared out over the
    calling thread and the pool's workers by ``work[i]``, their calls are launched, then the
    others (table products) advance in the calling thread beside them. Their results, in scale
    order."""
    order = sorted(range(len(kernels)), key=lambda i: -bandlimits[i])
    large = sum(1 for L in bandlimits if L > TABLE_MAX)
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
    (:class:`.base.Mixed`). Each round's per-scale work is shared out (:func:`_by_scale`)."""
    K = 2 * N - 1
    partners = dict(pairs)
    rows, firsts, seconds = [], [], {}
    for i, x in enumerate(halves):
        L = x.shape[-1]
        C = _components(N, L)[1].shape[1]
        I = K * len(partners.get(i, ()))
        rows.append(np.empty(x.shape[:-2] + ((I + 1) * C, L, L), cdtype))
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
        if L1 > TABLE_MAX:
            yield
        finish()
    return _gram(_as_real_rows(rows))


def _as_real_rows(rows):
    """``(..., n, L, L)`` complex -> ``(..., n, 2 L^2)`` real pairs (a view)."""
    return rows.view(np.finfo(rows.dtype).dtype).reshape(rows.shape[:-2] + (-1,))


def _gram(x):
    """``x x^T`` for ``x (..., n, X)``: ``(..., n, n)``, the columns shared out over the host
    workers for large ``x`` where :func:`._host_threads.cores` allows (partial Gram matrices,
    summed)."""
    lead, (n, X) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape((-1, n, X))
    parts = min(_host_threads.cores(), max(1, x.nbytes // _host_threads.SPLIT_BYTES))
    cuts = [X * i // parts for i in range(parts + 1)]

    def partial_gram(a, b):
        return np.stack([r[:, a:b] @ r[:, a:b].T for r in flat])

    grams = _host_threads.run([functools.partial(partial_gram, a, b)
                               for a, b in zip(cuts[:-1], cuts[1:])])
    return functools.reduce(np.add, grams).reshape(lead + (n, n))


def _gram_ct(ct, rows):
    """Cotangent of the rows (real pairs, ``(..., n, L, L, 2)``) of :func:`_gram`'s
    ``G = R R^T`` from that of ``G``: ``(ct + ct^T) R``, the columns shared out over the host
    workers for large ``R``."""
    x = _as_real_rows(rows)
    lead, (n, X) = x.shape[:-2], x.shape[-2:]
    ct = np.asarray(ct, x.dtype).reshape((-1, n, n))
    out = np.empty((ct.shape[0], n, X), x.dtype)
    for c, r, o in zip(ct, x.reshape((-1, n, X)), out):
        _host_threads.matmul_columns(np.ascontiguousarray(c + c.T), r, o)
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
    if L1 > TABLE_MAX:
        yield
    return ct[..., A * K * C:, :, :, :], gather()


class _Kept:
    """What a forward pass of :func:`_two_layers_op` leaves on the host for its VJP (its rows,
    ``O(N L^2)`` each, and the signs of the first layer's maps), under a ticket that goes
    through JAX as the residual, so that neither the rows nor their cotangents cross into
    XLA. The last ``KEEP`` forward passes are kept, within ``KEEP_BYTES`` (the newest always);
    a VJP takes its entry out, or, if it is gone (more forward passes than that before their
    VJPs, or a VJP run twice), computes the forward pass again from the residual inputs: the
    results are the same either way."""

    KEEP = 4
    KEEP_BYTES = 1 << 30

    def __init__(self):
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)

    def put(self, rows, signs):
        size = sum(r.nbytes for r in rows) + sum(s.nbytes for s in signs)
        with self._lock:
            ticket = next(self._tickets)
            self._entries[ticket] = (rows, signs, size)
            while len(self._entries) > 1 and (
                    len(self._entries) > self.KEEP
                    or sum(e[2] for e in self._entries.values()) > self.KEEP_BYTES):
                self._entries.popitem(last=False)
        return ticket

    def take(self, ticket):
        """``(rows, signs)`` of the forward pass ``ticket``, or None if gone."""
        with self._lock:
            entry = self._entries.pop(ticket, None)
        return None if entry is None else entry[:2]


_KEPT = _Kept()


def _pack(arrays, lead, real):
    """Arrays with leading axes ``lead`` (complex ones as real pairs) -> one real array
    ``(*lead, total)``: a host callback takes or gives one array instead of many (each costs
    about 20 us to hand over)."""
    xp = np if all(isinstance(a, np.ndarray) for a in arrays) else jnp
    flat = []
    for a in arrays:
        if xp.iscomplexobj(a):
            a = xp.stack([a.real, a.imag], axis=-1) if xp is jnp else a.view(real)
        flat.append(xp.reshape(a.astype(real), lead + (-1,)))
    return xp.concatenate(flat, axis=-1)


def _unpack(flat, specs, lead):
    """Inverse of :func:`_pack`: ``specs`` the ``(shape, dtype)`` of each array (core axes)."""
    xp = np if isinstance(flat, np.ndarray) else jnp
    out, start = [], 0
    for shape, dtype in specs:
        cplx = np.issubdtype(dtype, np.complexfloating)
        size = int(np.prod(shape)) * (2 if cplx else 1)
        part = xp.reshape(flat[..., start:start + size],
                          lead + tuple(shape) + ((2,) if cplx else ()))
        if cplx:
            part = (part.view(dtype)[..., 0] if xp is np
                    else jax.lax.complex(part[..., 0], part[..., 1]))
        out.append(part)
        start += size
    return out


@functools.lru_cache(maxsize=None)
def _two_layers_op(N, real, bandlimits, pairs):
    """:func:`_two_layers_kernel` as a JAX function of ``(half, hs)`` (the field's half, read
    by each scale to its band-limit on the host) returning ``(grams, means)``: one host
    callback, its VJP one more, each handed few arrays (:func:`_pack`). The rows and the signs
    of the first layer's maps stay on the host for the VJP (:class:`_Kept`); the residual is
    their ticket (with the inputs, should they be gone)."""
    real = np.dtype(real)
    cdtype = np.result_type(real, np.complex64)
    K = 2 * N - 1
    partners = dict(pairs)

    def specs(Ls):
        grams = [(((K * len(partners.get(i, ())) + 1) * _components(N, L)[1].shape[1],) * 2, real)
                 for i, L in enumerate(Ls)]
        return grams + [((K, 1, 1), cdtype)] * len(Ls)

    def weights(hs_flat, Ls):
        return _unpack(np.asarray(hs_flat), [((L, N), cdtype) for L in Ls], hs_flat.shape[:-1])

    def run(half, hs, signs):
        half = np.asarray(half)
        halves = tuple(half[..., :h.shape[-2], :h.shape[-2]] for h in hs)
        return _together([functools.partial(_two_layers_kernel, halves, hs, bandlimits, pairs, N,
                                            cdtype, signs)])[0]

    def forward(half, hs_flat, Ls, keep):
        hs = weights(hs_flat, Ls)
        grams, means, signs, rows = run(half, hs, keep)
        out = _pack(list(grams) + list(means), half.shape[:-2], real)
        if not keep:
            return out
        return out, np.full(half.shape[:-2], _KEPT.put(rows, signs), np.int64)

    def backward(half, hs_flat, ticket, cts, Ls):
        hs = weights(hs_flat, Ls)
        cts = _unpack(np.asarray(cts), specs(Ls), cts.shape[:-1])
        kept = _KEPT.take(int(np.asarray(ticket).flat[0]))
        if kept is None:
            _, _, signs, rows = run(half, hs, True)
        else:
            rows, signs = kept
        grads = _together([functools.partial(_two_layers_ct_kernel, hs, bandlimits, pairs, N,
                                             cdtype, signs, rows, cts[:len(Ls)], cts[len(Ls):])])[0]
        out = np.zeros(np.shape(half), cdtype)
        for g in grads:
            out[..., :g.shape[-2], :g.shape[-1]] += g
        return out

    def call(half, hs_flat, Ls, keep):
        batch = half.shape[:-2]
        size = sum(int(np.prod(shape)) * (2 if dtype == cdtype else 1)
                   for shape, dtype in specs(Ls))
        shapes = jax.ShapeDtypeStruct(batch + (size,), real)
        if keep:
            shapes = (shapes, jax.ShapeDtypeStruct(batch, np.int64))
        out = jax.pure_callback(functools.partial(forward, Ls=Ls, keep=keep), shapes, half,
                                hs_flat, vmap_method="expand_dims")
        flat, ticket = out if keep else (out, None)
        stats = _unpack(flat, specs(Ls), batch)
        return (tuple(stats[:len(Ls)]), tuple(stats[len(Ls):])), ticket

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def f(half, hs_flat, Ls):
        return call(half, hs_flat, Ls, False)[0]

    def f_fwd(half, hs_flat, Ls):
        out, ticket = call(half, hs_flat, Ls, True)
        return out, (half, hs_flat, ticket)

    def f_bwd(Ls, res, cts):
        half, hs_flat, ticket = res
        ct_grams, ct_means = cts
        cts = _pack([c.astype(real) for c in ct_grams] + [c.astype(cdtype) for c in ct_means],
                    half.shape[:-2], real)
        grad = jax.pure_callback(functools.partial(backward, Ls=Ls),
                                 jax.ShapeDtypeStruct(half.shape, cdtype), half, hs_flat, ticket,
                                 cts, vmap_method="broadcast_all")
        return grad, jnp.zeros_like(hs_flat)

    f.defvjp(f_fwd, f_bwd)

    def op(half, hs):
        hs = [jnp.asarray(h).astype(cdtype) for h in hs]
        return f(jnp.asarray(half).astype(cdtype), _pack(hs, (), real),
                 tuple(int(h.shape[0]) for h in hs))

    return op


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


@functools.lru_cache(maxsize=None)
def _wavelets_op(N, real, fourier):
    """:func:`_wavelets_real_start` at several scales in one host callback, as a JAX function of
    ``(halves, hs)`` (tuples, one entry a scale, ``halves[i] (..., Li, Li)``,
    ``hs[i] (Li, N)``), differentiable in ``halves``. All the scales' ducc0 calls share the
    pool (:func:`_together`); the VJP is one callback too."""
    real = np.dtype(real)
    cdtype = np.result_type(real, np.complex64)
    K = 2 * N - 1

    def out_shape(half):
        batch, L = half.shape[:-2], half.shape[-1]
        if fourier:
            return (jax.ShapeDtypeStruct(batch + (L, L, 2), real),) * K
        return jax.ShapeDtypeStruct(batch + (K, L, 2 * L - 1), real)

    def forward(halves, hs):
        output = "fourier" if fourier else "maps"
        return _together([functools.partial(_wavelets_real_start, x, h, N, cdtype, output)
                          for x, h in zip(halves, hs)])

    def backward(hs, cts):
        start = _wavelets_real_fourier_ct_start if fourier else _wavelets_real_ct_start
        if fourier:
            return _together([functools.partial(start, h, ct, N, cdtype) for h, ct in zip(hs, cts)])
        return _together([functools.partial(start, ct, h, N, cdtype) for h, ct in zip(hs, cts)])

    @jax.custom_vjp
    def f(halves, hs):
        shapes = tuple(out_shape(x) for x in halves)
        return jax.pure_callback(forward, shapes, halves, hs, vmap_method="expand_dims")

    def f_fwd(halves, hs):
        return f(halves, hs), hs

    def f_bwd(hs, cts):
        cts = jax.tree_util.tree_map(lambda c: c.astype(real), cts)
        shapes = tuple(jax.ShapeDtypeStruct((ct[0] if fourier else ct).shape[:-3]
                                            + (h.shape[0],) * 2, cdtype) for h, ct in zip(hs, cts))
        grads = jax.pure_callback(backward, shapes, hs, cts, vmap_method="expand_dims")
        return grads, tuple(jnp.zeros_like(h) for h in hs)

    f.defvjp(f_fwd, f_bwd)
    return lambda halves, hs: f(tuple(jnp.asarray(x).astype(cdtype) for x in halves),
                                tuple(jnp.asarray(h).astype(cdtype) for h in hs))


@functools.lru_cache(maxsize=None)
def _analysis_op(bandlimits, real):
    """:func:`_analysis_real_start` of several maps (one entry a scale, ``maps[i]``
    ``(..., Li, 2Li-1)``, to ``bandlimits[i]``) in one host callback, as a JAX function; the VJP
    is one callback."""
    real = np.dtype(real)
    cdtype = np.result_type(real, np.complex64)

    def forward(maps):
        return _together([functools.partial(_analysis_real_start, f, f.shape[-2], cdtype, B)
                          for f, B in zip(maps, bandlimits)])

    def backward(shapes, cts):
        return _together([functools.partial(_analysis_real_ct_start, c, L, cdtype, B)
                          for c, L, B in zip(cts, shapes, bandlimits)])

    @jax.custom_vjp
    def f(maps):
        shapes = tuple(jax.ShapeDtypeStruct(x.shape[:-2] + (B, B), cdtype)
                       for x, B in zip(maps, bandlimits))
        return jax.pure_callback(forward, shapes, maps, vmap_method="expand_dims")

    def f_fwd(maps):
        return f(maps), tuple(x.shape[-2] for x in maps)

    def f_bwd(rings, cts):
        cts = tuple(c.astype(cdtype) for c in cts)
        shapes = tuple(jax.ShapeDtypeStruct(c.shape[:-2] + (L, 2 * L - 1), real)
                       for c, L in zip(cts, rings))
        return (jax.pure_callback(functools.partial(backward, rings), shapes, cts,
                                  vmap_method="expand_dims"),)

    f.defvjp(f_fwd, f_bwd)
    return lambda maps: f(tuple(jnp.asarray(x).astype(real) for x in maps))


@register
class DuccTransforms(SphericalTransforms):
    """ducc0 SHTs on the host (see the module docstring); no tables in the JAX program."""

    def __init__(self, bandlimits, spins, dtype=np.float64):
        super().__init__(bandlimits, spins, dtype)
        self.tables = {}

    def synthesis(self, alm, L, spin):
        return _linear("synthesis", int(L), int(spin), self.dtype.str)(alm)

    def synthesis_real(self, alm_half, L):
        return _linear("synthesis_real", int(L), 0, self.dtype.str)(alm_half)

    def analysis_real(self, f, L, bandlimit=None):
        return self.analysis_real_scales((f,), (L if bandlimit is None else bandlimit,))[0]

    def analysis_real_scales(self, maps, bandlimits):
        return _analysis_op(tuple(int(B) for B in bandlimits), self.dtype.str)(tuple(maps))

    def wavelets_real(self, alm_half, h, N):
        return self.wavelets_real_scales((alm_half,), (h,), N)[0]

    def wavelets_real_fourier(self, alm_half, h, N):
        return self.wavelets_real_scales((alm_half,), (h,), N, fourier=True)[0]

    def wavelets_real_scales(self, halves, hs, N, fourier=False):
        return _wavelets_op(int(N), self.dtype.str, bool(fourier))(tuple(halves), tuple(hs))

    def two_layers(self, half, hs, N, bandlimits, pairs):
        op = _two_layers_op(int(N), self.dtype.str, tuple(int(B) for B in bandlimits), tuple(pairs))
        grams, means = op(half, tuple(hs))
        return tuple(Mixed(g, _components(int(N), h.shape[0])[1]) for g, h in zip(grams, hs)), means
