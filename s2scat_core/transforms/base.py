r"""The interface every backend implements: spherical-harmonic transforms on the GL grid.

A backend is built once for a set of band-limits and spins and is a JAX pytree (its tables
are the leaves), so it can be passed through ``jit`` as an argument instead of being baked
into the compiled program as constants.

Grid: Gauss-Legendre, ``L`` colatitudes ``theta_t`` (s2fft's ``"gl"`` order) by ``2L-1``
longitudes ``phi_p = 2 pi p / (2L-1)``. Coefficients: s2fft's layout ``alm[l, L-1+m]``,
shape ``(L, 2L-1)``; the ``m >= 0`` half of a real field is ``(L, L)``. Spin-weighted
harmonics follow s2fft: ``sY_lm(theta, phi) = (-1)^s sqrt((2l+1)/(4 pi)) d^l_{m,-s}(theta) e^{i m phi}``.
"""

from __future__ import annotations

import abc
from typing import Iterable

import ducc0
import jax
import numpy as np


def gl_thetas(L: int) -> np.ndarray:
    """Colatitudes (radians) of the GL grid at band-limit ``L``, shape ``(L,)``, increasing.

    ducc0's nodes; equal to s2fft's ``samples.thetas(L, "gl")`` (to 1e-15, tested), and fast.
    """
    return np.asarray(ducc0.misc.GL_thetas(L), dtype=np.float64)


def gl_weights(L: int) -> np.ndarray:
    """Quadrature weights of the GL grid, ``2 pi/(2L-1)`` longitude factor included, ``(L,)``.

    ``sum_t sum_p w_t f(theta_t, phi_p)`` integrates a band-limited ``f`` over the sphere
    exactly (``sum_t w_t (2L-1) = 4 pi``).
    """
    return np.asarray(ducc0.misc.GL_weights(L, 2 * L - 1), dtype=np.float64)


class SphericalTransforms(abc.ABC):
    """Spin-weighted SHTs on the GL grid for a fixed set of band-limits and spins.

    Every method accepts any number of leading batch axes on its array argument.
    """

    def __init__(self, bandlimits: Iterable[int], spins: Iterable[int], dtype=np.float64):
        self.bandlimits = tuple(sorted(set(int(b) for b in bandlimits)))
        self.spins = tuple(sorted(set(int(s) for s in spins)))
        self.dtype = np.dtype(dtype)

    @abc.abstractmethod
    def synthesis(self, alm, L: int, spin: int):
        """``f(theta_t, phi_p) = sum_lm alm[l, L-1+m] sY_lm``: ``(..., L, 2L-1)`` complex -> same shape complex."""

    @abc.abstractmethod
    def synthesis_real(self, alm_half, L: int):
        """Spin-0 synthesis of a real field from its ``m >= 0`` half: ``(..., L, L)`` -> ``(..., L, 2L-1)`` real."""

    @abc.abstractmethod
    def analysis_real(self, f, L: int):
        """Spin-0 analysis of a real map: ``(..., L, 2L-1)`` real -> ``m >= 0`` half ``(..., L, L)`` complex."""

    # -- pytree plumbing: tables are leaves, everything else is static -----------------------
    def tree_flatten(self):
        return (self.tables,), (self.bandlimits, self.spins, self.dtype.str)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = cls.__new__(cls)
        obj.bandlimits, obj.spins, dtype = aux
        obj.dtype = np.dtype(dtype)
        (obj.tables,) = children
        return obj


def register(cls):
    """Register a backend class as a JAX pytree (tables dynamic, configuration static)."""
    return jax.tree_util.register_pytree_node_class(cls)


def expand_half(alm_half):
    """``m >= 0`` half ``(..., L, L)`` -> full ``(..., L, 2L-1)`` by ``f_{l,-m} = (-1)^m conj(f_lm)``.

    NumPy in, NumPy out; anything else (JAX arrays, tracers) goes through ``jax.numpy``.
    """
    import jax.numpy as jnp

    xp = np if isinstance(alm_half, np.ndarray) else jnp
    L = alm_half.shape[-1]
    signs = np.where(np.arange(1, L) % 2, -1.0, 1.0).astype(alm_half.real.dtype)
    negative = xp.flip(xp.conj(alm_half[..., 1:]) * signs, axis=-1)
    return xp.concatenate([negative, alm_half], axis=-1)
