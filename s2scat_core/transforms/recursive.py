r"""Backend ``recursive``: s2fft's on-the-fly Price-McEwen recursion.

No kernel tables: the Wigner-d values are recomputed at every call from ``O(L^2)``
recursion coefficients (s2fft ``generate_precomputes_jax``), so memory stays ``O(N L^2)``
and high band-limits fit where ``precompute`` would not. Slower than ``precompute`` on the
same machine; same numbers to rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from s2fft.recursions.price_mcewen import generate_precomputes_jax
from s2fft.transforms.spherical import forward_jax, inverse_jax

from .base import SphericalTransforms, register


def _batched(fn, x, core_ndim):
    """Apply ``fn`` over all leading axes of ``x`` beyond its last ``core_ndim`` (vmap)."""
    lead = x.shape[:-core_ndim]
    flat = x.reshape((-1,) + x.shape[-core_ndim:])
    out = jax.vmap(fn)(flat)
    return out.reshape(lead + out.shape[1:])


@register
class RecursiveTransforms(SphericalTransforms):
    def __init__(self, bandlimits, spins, dtype=np.float64):
        super().__init__(bandlimits, spins, dtype)
        inverse, forward = {}, {}
        for L in self.bandlimits:
            for s in set(self.spins) | {0}:
                inverse[f"{L}:{s}"] = generate_precomputes_jax(L, s, "gl", forward=False)
            forward[f"{L}"] = generate_precomputes_jax(L, 0, "gl", forward=True)
        self.tables = {"inverse": inverse, "forward": forward}

    def synthesis(self, alm, L, spin):
        pre = self.tables["inverse"][f"{L}:{spin}"]
        return _batched(lambda a: inverse_jax(a, L, spin, sampling="gl", reality=False,
                                              precomps=pre), alm, 2)

    def synthesis_real(self, alm_half, L):
        pre = self.tables["inverse"][f"{L}:0"]
        padded = jnp.concatenate([jnp.zeros(alm_half.shape[:-1] + (L - 1,), alm_half.dtype),
                                  alm_half], axis=-1)
        return _batched(lambda a: inverse_jax(a, L, 0, sampling="gl", reality=True,
                                              precomps=pre), padded, 2)

    def analysis_real(self, f, L):
        pre = self.tables["forward"][f"{L}"]
        out = _batched(lambda x: forward_jax(x, L, 0, sampling="gl", reality=True,
                                             precomps=pre), f, 2)
        return out[..., L - 1:]
