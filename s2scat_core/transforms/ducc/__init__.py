r"""Backend ``ducc``: ducc0's CPU SHTs behind ``jax.pure_callback``, differentiable by adjoints.

Every method is computed in NumPy with ``ducc0`` on s2fft's ``"gl"`` grid (ducc0's
``geometry="GL"``, ``ntheta = L``, ``nphi = 2L-1``), wrapped in ``jax.custom_vjp`` whose
backward pass is the adjoint map. A batch (leading axes, or a ``vmap`` axis) is transformed
map by map, memory ``O(L^2)`` a map, or for ``L <= TABLE_MAX`` all at once by tabulated
Legendre functions. One host callback computes both layers of the statistics at every scale,
one more its VJP; the ducc0 calls of all the scales share a pool of one-thread workers.

The modules, each importing only those above it:

* :mod:`.host_threads`: the pool of one-thread workers, and products and passes split over it.
* :mod:`.buffers`: large arrays from memory kept for the next call (no fresh pages each time).
* :mod:`.schedule`: a round's ducc0 calls drained by the pool; kernels advanced in rounds.
* :mod:`.legendre`: the ducc0 steps, Legendre sums ``alm <-> leg[t, m]`` (calls, or tables) and
  ring FFTs ``leg <-> maps``.
* :mod:`.sht`: spin syntheses and real analyses in s2fft's conventions, and their cotangents.
* :mod:`.real_wavelets`: one scale's directional wavelets of a real field, fused; their VJPs.
* :mod:`.layers`: both layers (first layer, analyses of its moduli, second layer) as Gram
  matrices of rows, every scale, in three rounds; their VJP.
* :mod:`.kept`: the rows a forward pass leaves on the host for its VJP.
* :mod:`.face`: each op as ``custom_vjp`` over ``pure_callback``; :class:`DuccTransforms`.

The data path of one gradient of the statistics (``two_layers`` under ``jax.grad``; scale
``i``: ``K`` directions, ``A`` partners, ``C`` components, ``n = A*K*C + C`` rows)::

    JAX / XLA                              host (NumPy, ducc0, the pool)
    ---------                              -----------------------------
    half (..., L, L), hs
      |  pack               forward callback
      +-----------------------------------> layers._two_layers_kernel, three rounds:
                                             1 first layer W_i, 2 analyses of |W_i|,
                                             3 second layer of each j1
                                            rows R_i (..., n, Li, Li) complex,
                                            signs of W_i (int8) ---> kept._KEPT.put
                                                                       |        |
    grams R_i R_i^T (..., n, n),                                ticket |        | rows and
    means (..., K, 1, 1), ticket <--------- Gram matrices <------------+        | signs stay
      |  statistics, loss (the ticket: the custom_vjp's residual)               | on the host
      v                                                                         |
    cotangents of grams and means, ticket                                       |
      |  pack               VJP callback                                        |
      +-----------------------------------> kept._KEPT.take(ticket) <-----------+
                                            (gone: the forward pass again from half)
                                            layers._two_layers_ct_kernel:
                                             (D + D^T) R_i for the grams' cotangent D,
                                             then rounds 3, 2, 1 backwards
    cotangent of half <-------------------- summed over the scales
"""

from __future__ import annotations

from .face import DuccTransforms

__all__ = ["DuccTransforms"]
