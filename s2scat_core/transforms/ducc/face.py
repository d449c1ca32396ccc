r"""The JAX face of the ``ducc`` backend: host kernels as ``jax.custom_vjp`` functions of
``jax.pure_callback``, and :class:`DuccTransforms`.

Each op is one host callback and its VJP one more, which computes the cotangent map. A batch
(leading axes, or a ``vmap`` axis, which arrives as one more leading axis) goes to the host
whole. A callback takes and gives few arrays: complex ones as real pairs, several packed into
one real ``(*lead, total)`` (:func:`_pack`, :func:`_unpack`; each array costs about 20 us to
hand over).

* :func:`_linear`: ``synthesis`` ``(..., L, 2L-1)`` -> ``(..., L, 2L-1)`` complex, and
  ``synthesis_real`` ``(..., L, L)`` -> ``(..., L, 2L-1)`` real (:mod:`.sht`).
* :func:`_analysis_op`: ``analysis_real`` of one map a scale, ``(..., Li, 2Li-1)`` real ->
  ``(..., Bi, Bi)`` (:mod:`.sht`).
* :func:`_wavelets_op`: the wavelets of a real field at several scales, ``(..., Li, Li)`` ->
  maps ``(..., 2N-1, Li, 2Li-1)`` or ``2N-1`` arrays ``(..., Li, Li, 2)`` (:mod:`.real_wavelets`).
* :func:`_two_layers_op`: both layers, ``half (..., L, L)`` -> Gram matrices and means
  (:mod:`.layers`), the rows kept on the host from the forward pass to its VJP (:mod:`.kept`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ... import _ducc0_build
from ..base import Mixed, SphericalTransforms, register
from .kept import _KEPT
from .layers import _two_layers_ct_kernel, _two_layers_kernel
from .real_wavelets import (_components, _wavelets_real_ct_start, _wavelets_real_fourier_ct_start,
                            _wavelets_real_start)
from .schedule import _together
from .sht import (_analysis_real_ct_start, _analysis_real_start, _synthesis, _synthesis_ct,
                  _synthesis_real, _synthesis_real_ct)


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
    """:func:`.layers._two_layers_kernel` as a JAX function of ``(half, hs)`` (the field's
    half, read by each scale to its band-limit on the host) returning ``(grams, means)``: one
    host callback, its VJP one more, each handed few arrays (:func:`_pack`). The rows and the
    signs of the first layer's maps stay on the host for the VJP (:class:`.kept._Kept`); the
    residual is their ticket (with the inputs, should they be gone)."""
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
    """:func:`.real_wavelets._wavelets_real_start` at several scales in one host callback, as
    a JAX function of ``(halves, hs)`` (tuples, one entry a scale, ``halves[i] (..., Li, Li)``,
    ``hs[i] (Li, N)``), differentiable in ``halves``. All the scales' ducc0 calls share the
    pool (:func:`.schedule._together`); the VJP is one callback too."""
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
    """:func:`.sht._analysis_real_start` of several maps (one entry a scale, ``maps[i]``
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
    """ducc0 SHTs on the host (see the package's docstring); no tables in the JAX program."""

    def __init__(self, bandlimits, spins, dtype=np.float64):
        super().__init__(bandlimits, spins, dtype)
        _ducc0_build.warn_if_unreproducible()
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
