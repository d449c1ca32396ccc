r"""The synthesis loss: distance between normalised scattering covariances.

For a sample ``x`` and a target ``t`` (normalisation ``n = op.norm(t)`` from the target),

    loss(x) = sum_{s in (mean, var, S1, S2, S3, S4)} w_s mean_i |Phi_s(x)_i - Phi_s(t)_i|^2,

``Phi = op.scatter(., norm=n)``. With all ``w_s = 1`` this is S2SCAT 0.0.3's
``l2_covariance_loss``.
"""

from __future__ import annotations

import jax.numpy as jnp
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


def terms(predicted, target) -> jnp.ndarray:
    """``(6,)`` per-statistic ``mean |p - t|^2`` (one field, no batch axis)."""
    return jnp.stack([jnp.mean(jnp.abs(p - t) ** 2) for p, t in zip(predicted, target)])


def covariance_loss(op, flm, norm, target, weights) -> jnp.ndarray:
    """Scalar loss of one field ``flm`` (``(L, L)`` half or ``(L, 2L-1)``)."""
    return jnp.dot(weights, terms(op.scatter(flm, norm=norm), target))
