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
from typing import Iterable, NamedTuple

import ducc0
import jax
import jax.numpy as jnp
import numpy as np

from .from_spins import real_fourier_from_spins, real_from_spins


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


def ring_weights(q):
    """``sqrt`` of the Parseval weights of ring Fourier coefficients as ``(Re, Im)`` pairs.

    For real maps ``u, v`` of band-limit ``L`` on the GL grid with ring coefficients
    ``F[t, m] = sum_p f_tp e^{-i m phi_p} / (2L-1)``,
    ``sum_tp q_t u_tp v_tp = sum_t q_t (2L-1) (U_t0 V_t0 + 2 Re sum_{m>0} conj(U_tm) V_tm)``, so as
    ``(Re, Im)`` pairs the weight is ``q_t (2L-1) c_m``, ``c_0 = (1, 0)`` and ``c_m = (2, 2)``
    above. ``q (L,)``: the GL weights (:func:`gl_weights`). Returns ``(L, L, 2)``; NumPy in,
    NumPy out, anything else through ``jax.numpy``.
    """
    xp = np if isinstance(q, np.ndarray) else jnp
    T = q.shape[0]
    c = np.full((T, 2), 2.0)
    c[0] = (1.0, 0.0)
    return xp.sqrt(q[:, None, None] * (2 * T - 1) * xp.asarray(c, q.dtype)[None])


def ring_fourier_pairs(w):
    """Real maps ``w (..., T, 2T-1)`` on the GL grid -> their ring Fourier coefficients
    ``F[t, m] = sum_p w_tp e^{-i m phi_p} / (2T-1)``, ``m < T``, as weighted ``(Re, Im)`` pairs
    ``(..., T, T, 2)`` (:func:`ring_weights`): the sphere integral of a product of two maps is the
    dot product of their pairs."""
    T = w.shape[-2]
    F = jnp.fft.rfft(w, axis=-1) / (2 * T - 1)
    return jnp.stack([F.real, F.imag], axis=-1) * ring_weights(jnp.asarray(gl_weights(T), w.dtype))


class Layers(NamedTuple):
    """One scale's two wavelet layers as directions: what its S2, S3 and S4 read.

    ``first (..., K, L, L, 2)``: the maps ``W_k`` of the scale as weighted ring Fourier pairs
    (:func:`ring_fourier_pairs`); ``second``: ``None`` if no scale pairs with this one, else the
    second layer at this scale, a tuple of ``K`` arrays ``(..., A, K2, L, L, 2)`` (direction
    ``k``; ``A`` partners, ``K2`` directions of their moduli), as
    :meth:`SphericalTransforms.wavelets_real_fourier` gives them.
    """

    first: jax.Array
    second: tuple | None


class Mixed(NamedTuple):
    """One scale's two layers as ``C`` components whose mixtures are the ``K`` directions, given
    by the Gram matrix of their rows: all the statistics need of them.

    The rows are weighted ring Fourier pairs (as :class:`Layers`) of the second layer's
    components (``A`` partners, ``K2`` directions of their moduli, ``C`` components, in that
    order; none if no scale pairs with this one) and then of the first layer's ``C``
    components; ``gram (..., n, n)``, ``n = A*K2*C + C``, their dot products; ``mixing (K, C)``
    (NumPy): direction ``k`` of a map is ``sum_c mixing[k, c]`` times its component ``c``. A
    backend whose directions are such mixtures (``C < K``: a real field's wavelet maps are
    mixtures of its spin components) may return this from
    :meth:`SphericalTransforms.two_layers` (:func:`s2scat_core.covariances.scale_statistics`
    reads it) and keep the rows to itself, differentiating through the Gram matrix.
    """

    gram: jax.Array
    mixing: np.ndarray


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
    def analysis_real(self, f, L: int, bandlimit: int | None = None):
        """Spin-0 analysis of a real map: ``(..., L, 2L-1)`` real -> ``m >= 0`` half ``(..., B, B)``
        complex, the coefficients ``l, m < B = bandlimit`` (default ``L``, at most ``L``): the GL
        quadrature ``f_lm = sum_tp w_t f(theta_t, phi_p) Y*_lm``, exact for band-limited maps and
        the same quadrature (truncated) for others, such as moduli."""

    def synthesis_fourier(self, alm, L: int, spin: int):
        """:meth:`synthesis` as ring Fourier coefficients ``G[..., t, L-1+m]``, ``|m| < L``, with
        ``f(theta_t, phi_p) = sum_m G[t, L-1+m] e^{i m phi_p}``: ``(..., L, 2L-1)`` complex.
        The default takes the FFT of the map; a backend that has ``G`` before its FFT returns it."""
        f = self.synthesis(alm, L, spin)
        return jnp.fft.fftshift(jnp.fft.fft(f, axis=-1, norm="forward"), axes=-1)

    def synthesis_real_fourier(self, alm_half, L: int):
        """:meth:`synthesis_real` as ring Fourier coefficients ``F[..., t, m]``, ``0 <= m < L``
        (``F[t, -m] = conj(F[t, m])``): ``(..., L, L)`` complex. Default: the FFT of the map."""
        return jnp.fft.rfft(self.synthesis_real(alm_half, L), axis=-1, norm="forward")

    def wavelets_real(self, alm_half, h, N: int):
        """Directional wavelet maps of a real field at one scale.

        ``alm_half (..., Lj, Lj)`` (``f_l0`` real), ``h (Lj, N)`` the scale's harmonic weights
        (:func:`.directional.harmonic_weights`) -> ``(..., 2N-1, Lj, 2Lj-1)`` real. The default
        composes :meth:`synthesis_real` and :meth:`synthesis`
        (:func:`.from_spins.real_from_spins`); a backend may fuse the whole scale.
        """
        return real_from_spins(self, alm_half, h, N)

    def wavelets_real_fourier(self, alm_half, h, N: int):
        """The maps of :meth:`wavelets_real` as weighted ring Fourier coefficients, one array a
        direction.

        ``alm_half (*batch, Lj, Lj)`` -> a tuple of ``2N-1`` arrays ``(*batch, Lj, Lj, 2)`` real:
        ``r[t, m] (Re, Im)`` of ``F[t, m]``, ``m = 0..Lj-1``, where
        ``W(theta_t, phi_p) = sum_{|m| < Lj} F[t, m] e^{i m phi_p}`` (``F[t, -m] = conj(F[t, m])``)
        and ``r = ring_weights(gl_weights(Lj))``. The weights make the sphere integral of a
        product a dot product (Parseval over ``phi`` and the GL quadrature): for two such
        maps ``sum_tp w_t u_tp v_tp = sum_tmc U[t, m, c] V[t, m, c]``, which is all the
        second-layer statistics need (no FFT back to maps). The default composes
        :meth:`synthesis_real_fourier` and :meth:`synthesis_fourier`
        (:func:`.from_spins.real_fourier_from_spins`).
        """
        pairs = real_fourier_from_spins(self, alm_half, h, N)
        r = ring_weights(jnp.asarray(gl_weights(h.shape[0]), pairs.dtype))
        return tuple(jnp.unstack(pairs * r))  # unstack: its transpose is one concatenation

    def wavelets_real_scales(self, halves, hs, N: int, fourier: bool = False):
        """:meth:`wavelets_real` (with ``fourier``, :meth:`wavelets_real_fourier`) at several
        scales: ``halves[i] (..., Li, Li)`` with ``hs[i] (Li, N)`` -> a tuple, one output a
        scale. The default calls the one-scale method for each; a backend may do them together
        (one host call for all the scales of a layer, say)."""
        one = self.wavelets_real_fourier if fourier else self.wavelets_real
        return tuple(one(x, h, N) for x, h in zip(halves, hs))

    def analysis_real_scales(self, maps, bandlimits):
        """:meth:`analysis_real` of several maps: ``maps[i] (..., Li, 2Li-1)`` real, to
        ``bandlimits[i]`` -> a tuple of halves ``(..., Bi, Bi)``. The default calls
        :meth:`analysis_real` for each; a backend may do them together."""
        return tuple(self.analysis_real(f, f.shape[-2], B) for f, B in zip(maps, bandlimits))

    def two_layers(self, half, hs, N: int, bandlimits, pairs):
        """Both wavelet layers of a real field, every scale at once: what the statistics need.

        Args:
            half: ``(..., L, L)``, the field's ``m >= 0`` half (``f_l0`` real), which scale ``i``
                reads to its band-limit ``Li``.
            hs: ``hs[i] (Li, N)``, the scales' harmonic weights.
            N: directions parameter (``K = 2N-1`` directions).
            bandlimits: ``bandlimits[i] = Bi``, the band-limit to which ``|W_i|`` is analysed.
            pairs: ``((i1, (i2, ...)), ...)``, each second-layer scale with the moduli it reads.

        Returns:
            ``(layers, means)``: ``layers[i]``, what scale ``i``'s S2, S3 and S4 read: a
            :class:`Layers` (the first layer ``W_i`` and, if ``i`` is some ``i1`` of ``pairs``,
            the second layer: the :meth:`wavelets_real_fourier` at scale ``i1`` of the moduli
            ``|W_i2|`` read to ``L_i1``, stacked), or the same as :class:`Mixed` components;
            ``means[i] (..., K, 1, 1)`` the ``l = 0`` coefficients of ``|W_i|`` (S1).

        The default composes :meth:`wavelets_real_scales`, an FFT, :meth:`analysis_real_scales`
        and :meth:`wavelets_real_scales` again; a backend may keep everything in between
        (maps, moduli) to itself.
        """
        halves = [half[..., :h.shape[0], :h.shape[0]] for h in hs]
        return layers_from_maps(self, self.wavelets_real_scales(halves, hs, N), hs, N, bandlimits,
                                pairs)

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


def layers_from_maps(backend, W, hs, N: int, bandlimits, pairs):
    """:meth:`SphericalTransforms.two_layers` from the first layer's maps ``W[i] (..., K, Li,
    2Li-1)`` (real, or complex for a complex field: the first layers then hold their real
    part, the moduli are ``|W|``), the rest by the backend's own methods."""
    moduli = backend.analysis_real_scales([jnp.abs(w) for w in W], bandlimits)
    second = second_layers(backend, moduli, hs, N, pairs, fourier=True)
    layers = tuple(Layers(ring_fourier_pairs(w.real), second.get(i)) for i, w in enumerate(W))
    return layers, tuple(m[..., :1, :1] for m in moduli)


def second_layers(backend, moduli, hs, N: int, pairs, fourier: bool):
    """The second layer at each scale ``i1`` of ``pairs``: the wavelets at ``i1`` of the moduli
    ``|W_i2|`` it pairs with, read to ``L_i1``.

    ``moduli[i2] (..., K2, B, B)``: halves of ``|W_i2|`` to ``B >= L_i1``; ``hs[i] (Li, N)``;
    ``pairs``: ``((i1, (i2, ...)), ...)``. Returns ``{i1: second}``: with ``fourier``, ``K1``
    arrays ``(..., A, K2, L, L, 2)`` (:meth:`SphericalTransforms.wavelets_real_fourier`),
    else the maps ``(..., A, K2, K1, L, 2L-1)`` (``A`` partners, ``K2`` directions of their
    moduli, ``K1`` of the second wavelet).
    """
    stacks = [jnp.stack([moduli[i2][..., :hs[i1].shape[0], :hs[i1].shape[0]]
                         for i2 in partners], axis=-4) for i1, partners in pairs]
    seconds = backend.wavelets_real_scales(stacks, [hs[i1] for i1, _ in pairs], N,
                                           fourier=fourier)
    return dict(zip((i1 for i1, _ in pairs), seconds))


def register(cls):
    """Register a backend class as a JAX pytree (tables dynamic, configuration static)."""
    return jax.tree_util.register_pytree_node_class(cls)
