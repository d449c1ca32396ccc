r"""The synthesis loss: distance between normalised scattering covariances, and a pixel-PDF term.

For a sample ``x`` and a target ``t`` (normalisation ``n = op.norm(t)`` from the target),

    loss(x) = sum_{s in (mean, var, S1, S2, S3, S4)} w_s mean_i v_{s,i} |Phi_s(x)_i - Phi_s(t)_i|^2
              + w_pdf W2^2(x, t),

``Phi = op.scatter(., norm=n)``. ``v`` are per-entry weights (1 by default; with an ensemble of
targets ``v = 1 / sigma^2`` from the members' spread, scaled to mean 1 within each statistic,
:func:`entry_weights`). With all ``w_s = 1``, ``v = 1`` and ``w_pdf = 0`` this is S2SCAT
0.0.3's ``l2_covariance_loss``.

**Pixel PDF** (:func:`pdf_distance`): the squared 2-Wasserstein distance between the
area-weighted distributions of the sample's and the target's pixel values on the
operator's GL grid,

    W2^2 = int_0^1 (F_x^{-1}(u) - F_t^{-1}(u))^2 du
         ~ sum_k a_k (x_(k) - F_t^{-1}(c_k))^2 / sum_k a_k,

``x_(k)`` the sample's values sorted, ``a_k`` their areas (GL weights), ``c_k`` the middle of
each one's interval of cumulative area, ``F_t^{-1}`` the target's quantile function (its
sorted values against their cumulative area; with a mask, observed pixels only, weighted
by the mask). In units of the target's variance (1 for a standardised target). It is
differentiable in the sample's values (the sort is a permutation; its gradient moves each
pixel toward the target's value of the same rank) and costs one sort a step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from s2scat_core.labels import STATISTICS


def weight_vector(weights=None) -> jnp.ndarray:
    """``(6,)`` weights in the order of :data:`STATISTICS` from a dict (missing: 1) or a sequence."""
    if weights is None:
        return jnp.ones(len(STATISTICS))
    if isinstance(weights, dict):
        unknown = set(weights) - set(STATISTICS)
        if unknown:
            raise ValueError(f"weights has unknown statistic(s) {sorted(unknown)}; "
                             f"expected some of {list(STATISTICS)}")
        values = [float(weights.get(s, 1.0)) for s in STATISTICS]
    else:
        values = [float(w) for w in weights]
        if len(values) != len(STATISTICS):
            raise ValueError(f"weights must have {len(STATISTICS)} entries, got {len(values)}")
    if any(not (w >= 0) for w in values):
        raise ValueError(f"weights must be >= 0, got {values}")
    return jnp.asarray(values, dtype=jnp.float64)


def entry_weights(members) -> tuple:
    """``v = 1 / sigma^2`` per entry from the statistics of ``M >= 2`` target members
    (``members``: a :class:`~s2scat_core.Covariances` with a leading axis ``M``), ``sigma`` their
    standard deviation (``ddof = 1``), floored at ``1e-3`` of its rms over the statistic, then
    scaled to mean 1 within each statistic (all 1 for a statistic the members share exactly,
    such as the mean and variance of standardised maps): a tuple of six arrays."""
    out = []
    for s in members:
        s = np.asarray(s, dtype=np.float64).reshape(s.shape[0], -1)
        var = s.var(axis=0, ddof=1)
        if not np.mean(var) > 1e-20 * max(float(np.mean(s * s)), np.finfo(float).tiny):
            out.append(jnp.ones(s.shape[1]))  # no spread (standardised members' mean, var)
            continue
        v = 1.0 / np.maximum(var, 1e-6 * np.mean(var))
        out.append(jnp.asarray(v / v.mean()))
    return tuple(out)


def terms(predicted, target, entry=None) -> jnp.ndarray:
    """``(6,)`` per-statistic ``mean_i v_i |p_i - t_i|^2`` (one field, no batch axis; ``v = 1``
    when ``entry`` is ``None``)."""
    if entry is None:
        return jnp.stack([jnp.mean(jnp.abs(p - t) ** 2) for p, t in zip(predicted, target)])
    return jnp.stack([jnp.mean(v * jnp.abs(p - t) ** 2)
                      for p, t, v in zip(predicted, target, entry)])


def covariance_loss(op, flm, norm, target, weights, entry=None) -> jnp.ndarray:
    """Scalar loss of one field ``flm`` (``(L, L)`` half or ``(L, 2L-1)``)."""
    return jnp.dot(weights, terms(op.scatter(flm, norm=norm), target, entry))


class TargetPDF(NamedTuple):
    """The target's quantile function on the GL grid: ``cdf (P,)`` the middle of each sorted
    value's interval of cumulative area (in ``(0, 1)``, increasing), ``values (P,)`` the sorted
    values; ``area (L, 2L-1)`` the GL weights of a sample's pixels (``sum = 1``)."""

    cdf: jax.Array
    values: jax.Array
    area: jax.Array


def target_pdf(target_maps, quadrature, mask=None, region=None) -> TargetPDF:
    """:class:`TargetPDF` of target maps ``(..., L, 2L-1)`` on the GL grid (an ensemble's
    members pooled) with ring weights ``quadrature (L,)``; with ``mask (L, 2L-1)`` only their
    observed pixels, weighted by it. ``region (L, 2L-1)``: the weights of the samples' pixels
    (default 1: the whole sky; ``1 - mask`` for inpainting, whose observed pixels are the
    target's anyway)."""
    t = np.asarray(target_maps, dtype=np.float64)
    area = np.broadcast_to(np.asarray(quadrature, np.float64)[:, None], t.shape[-2:])
    w = np.broadcast_to(area * (1.0 if mask is None else np.asarray(mask, np.float64)), t.shape)
    keep = w.ravel() > 0
    values, w = t.ravel()[keep], w.ravel()[keep]
    order = np.argsort(values, kind="stable")
    c = np.cumsum(w[order])
    mid = (c - 0.5 * w[order]) / c[-1]
    sample_area = area * (1.0 if region is None else np.asarray(region, np.float64))
    return TargetPDF(jnp.asarray(mid), jnp.asarray(values[order]),
                     jnp.asarray(sample_area / sample_area.sum()))


def _argsort_host(values) -> np.ndarray:
    """``np.argsort`` along the last axis, as int32, ties in index order (a stable sort's).
    NumPy's default sort (SIMD introsort) is not stable, but when the sorted values are all
    distinct the permutation is unique; with ties or NaN the stable sort is run instead."""
    values = np.asarray(values)
    order = np.argsort(values, axis=-1)
    s = np.take_along_axis(values, order, axis=-1)
    if np.any(s[..., 1:] == s[..., :-1]) or np.isnan(s[..., -1:]).any():
        order = np.argsort(values, axis=-1, kind="stable")
    return order.astype(np.int32)


def argsort(v) -> jnp.ndarray:
    """Indices ``(..., P)`` int32 that sort ``v (..., P)`` along its last axis, ties in index
    order (``jnp.argsort``'s permutation), with no gradient. On a CPU they come from NumPy
    through a host callback: XLA's CPU sort takes 6.3 ms for the 32,640 pixels of an
    L = 128 map, NumPy 0.4 ms; on other platforms XLA sorts (``lax.platform_dependent``)."""
    v = jax.lax.stop_gradient(v)
    shape = jax.ShapeDtypeStruct(v.shape, jnp.int32)

    def on_host(v):
        return jax.pure_callback(_argsort_host, shape, v, vmap_method="expand_dims")

    def by_xla(v):
        return jnp.argsort(v, axis=-1).astype(jnp.int32)

    return jax.lax.platform_dependent(v, cpu=on_host, default=by_xla)


def pdf_distance(sample_map, pdf: TargetPDF) -> jnp.ndarray:
    """``W2^2`` between a sample map ``(L, 2L-1)`` and the target's PDF (module doc): a scalar."""
    v = sample_map.ravel()
    a = pdf.area.ravel()
    order = argsort(v)
    a_sorted = a[order]
    mid = jnp.cumsum(a_sorted) - 0.5 * a_sorted
    q = jnp.interp(jax.lax.stop_gradient(mid), pdf.cdf, pdf.values)
    return jnp.sum(a_sorted * (v[order] - q) ** 2)
