r"""The statistics, one function each, for one field (no batch axis).

Notation: ``W_{j,k}`` the wavelet coefficients at scale ``j`` and direction ``k`` (GL grid of
band-limit ``L_j``), ``M_{j,k} = |W_{j,k}|``, ``N_{j1,j2,k2,k1} = W_{j1,k1} M_{j2,k2}`` (the
second wavelet layer, on the grid of ``L_{j1}``), ``Q_j`` the GL weights (``sum = 4 pi``).
``<x> = sum_tp Q_t x_tp / (4 pi)`` is the sphere average. As in S2SCAT 0.0.3:

* mean ``= |f_00| / sqrt(4 pi)``; var ``= (sum_lm |f_lm|^2 - |f_00|^2) / (4 pi)``;
* ``S1[j, k] = <M_{j,k}>`` (read off the ``l = 0`` coefficient of ``M``);
* ``S2[j, k] = <|W_{j,k}|^2>``;
* ``S3[j1][j2, k2, k1] = Re sum_tp Q_t conj(N_{j1,j2,k2,k1}) W_{j1,k1}`` (no 1/(4 pi));
* ``S4[j1][j2, j3, k2, k3, k1] = Re sum_tp Q_t N_{j1,j2,k2,k1} conj(N_{j1,j3,k3,k1})``.

Both layers enter as ring Fourier coefficients with the quadrature folded in (no FFT back to
maps), one array per direction ``k1`` (:func:`as_rows`), so S3 is a matrix-vector product and
S4 a Gram matrix per direction ``k1``; no ``(J, J, N, N, pixels)`` product is ever formed. A
backend may give a scale's two layers as ``C`` components that mix to the directions, by the
Gram matrix of all their rows (:class:`~.transforms.base.Mixed`): S2, S3 and S4 are then its
blocks, mixed (:func:`scale_statistics`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .transforms.base import Layers


_SQRT_4PI = float(np.sqrt(4 * np.pi))


def mean_variance(flm, half=False):
    """Mean and variance of a field from its coefficients ``(L, 2L-1)``, or with ``half`` from
    the ``m >= 0`` half ``(L, L)`` of a real field (``f_{l,-m} = (-1)^m conj(f_lm)``: the power at
    ``m > 0`` counts twice); two real scalars."""
    power = flm.real**2 + flm.imag**2
    if half:
        f00 = flm[0, 0]
        power = jnp.sum(power[:, 0]) + 2 * jnp.sum(power[:, 1:])
    else:
        f00 = flm[0, flm.shape[-2] - 1]
        power = jnp.sum(power)
    return jnp.abs(f00) / _SQRT_4PI, (power - jnp.abs(f00) ** 2) / (4 * np.pi)


def s1(mlm_half):
    """``S1[k] = Re M_{00,k} / sqrt(4 pi)`` from the ``m >= 0`` half ``(2N-1, B, B)`` (any ``B``): ``(2N-1,)``."""
    return mlm_half[..., 0, 0].real / _SQRT_4PI


def s2(w, q):
    """``S2[k] = sum_tp q_t |W_k|^2 / (4 pi)``; ``w (2N-1, Lj, 2Lj-1)``, ``q (Lj,)``: ``(2N-1,)``."""
    power = w.real**2 + w.imag**2 if jnp.iscomplexobj(w) else w**2
    return jnp.einsum("ktp,t->k", power, q) / (4 * np.pi)


def s2_fourier(y):
    """:func:`s2` of real maps from their weighted ring Fourier pairs ``y (2N-1, Lj, Lj, 2)``
    (:func:`.transforms.base.ring_fourier_pairs`): ``sum y_k^2 / (4 pi)``, Parseval: ``(2N-1,)``."""
    return jnp.sum(y * y, axis=(-3, -2, -1)) / (4 * np.pi)


# Below this many elements per direction, the K1 arrays are stacked into one: a few batched
# kernels instead of K1 small ones compile faster, and copying that little costs nothing.
STACK_BELOW = 1 << 16


def as_rows(second, stack_below=STACK_BELOW):
    """The second layer as rows that turn sphere integrals into dot products.

    ``second``: for each direction ``k1``, ``(A, K2, Lj, Lj, 2)`` weighted ring coefficients of
    the second-layer maps (``SphericalTransforms.wavelets_real_fourier``) -> ``K1`` arrays
    ``(A*K2, X = 2 Lj^2)``, so that S3 is a matrix-vector product and S4 a Gram matrix per
    ``k1``. Large arrays stay a list (reshapes, no copy; a product on each array's own buffer);
    below ``stack_below`` elements each they become one ``(K1, A*K2, X)`` array.
    """
    rows = [s.reshape(s.shape[0] * s.shape[1], -1) for s in second]
    return jnp.stack(rows) if rows[0].size < stack_below else rows


def s3(rows, y, A):
    """``S3[a, k2, k1]`` from :func:`as_rows` (``K1`` arrays ``(A*K2, X)``, as a list or
    stacked) and the first-layer maps at scale ``j1`` as weighted ring Fourier pairs
    ``y (K1, Lj, Lj, 2)`` (of their real part: the second layer is real)."""
    K1 = y.shape[0]
    y = y.reshape(K1, -1)
    if isinstance(rows, jax.Array):
        return jnp.einsum("kix,kx->ik", rows, y).reshape(A, -1, K1)
    return jnp.stack([rk @ yk for rk, yk in zip(rows, jnp.unstack(y))], axis=-1).reshape(A, -1, K1)


# From this many columns on, a row is contracted as ``(I, a, X/a)`` over two axes: XLA's CPU
# product of a short and very wide ``(I, X)`` by its transpose is slow (L = 512: ``(5, 524288)``,
# 19 ms; over two axes, 3.8 ms, where NumPy takes 4.8 ms). At 32768 columns both are equal.
SPLIT_FROM = 1 << 17


def _self_product(r):
    """``r r^T`` for one ``(I, X)`` array."""
    I, X = r.shape
    if X < SPLIT_FROM:
        return r @ r.T
    a = max(d for d in range(1, int(np.sqrt(X)) + 1) if X % d == 0)
    r3 = r.reshape(I, a, X // a)
    return jnp.einsum("iax,jax->ij", r3, r3)


@jax.custom_vjp
def gram(rows):
    """``G[k] = R_k R_k^T`` for ``K`` arrays ``R_k (I, X)``, a list or stacked ``(K, I, X)``:
    ``(K, I, I)``.

    A list gets one product per ``k`` on its own array (XLA's CPU batched product, or
    products of slices of one array, are several times slower for the large, short and wide
    ``R_k`` here; see ``SPLIT_FROM``); a stacked array one batched product. The VJP is
    hand-written, ``dR_k = (C_k + C_k^T) R_k``, one product where autodiff makes two."""
    if isinstance(rows, jax.Array):
        return jnp.einsum("kix,kjx->kij", rows, rows)
    return jnp.stack([_self_product(r) for r in rows])


def _gram_fwd(rows):
    return gram(rows), rows


def _gram_bwd(rows, ct):
    if isinstance(rows, jax.Array):
        return (jnp.einsum("kij,kjx->kix", ct + jnp.swapaxes(ct, 1, 2), rows),)
    return ([(c + c.T) @ r for c, r in zip(ct, rows)],)


gram.defvjp(_gram_fwd, _gram_bwd)


def s4(rows, A):
    """``S4[a, b, k2, k3, k1]`` from :func:`as_rows` (``K1`` arrays ``(A*K2, X)``, as a list or
    stacked): a Gram matrix per ``k1``."""
    return _pairs_first(jnp.moveaxis(gram(rows), 0, -1), A)


def _pairs_first(S, A):
    """``S[i, j, k1]`` with ``i = (a, k2)``, ``j = (b, k3)`` -> ``S4[a, b, k2, k3, k1]``."""
    I, K1 = S.shape[0], S.shape[-1]
    return S.reshape(A, I // A, A, I // A, K1).transpose(0, 2, 1, 3, 4)


def scale_statistics(layers, A):
    """``(S2, S3, S4)`` of one scale from its two layers (``SphericalTransforms.two_layers``):
    ``S2 (K,)``; ``S3 (A, K2, K)`` and ``S4 (A, A, K2, K2, K)`` for its ``A`` partners (``None``
    when ``A = 0``).

    :class:`~.transforms.base.Layers` (directions): :func:`s2_fourier`, :func:`s3` and
    :func:`s4`. :class:`~.transforms.base.Mixed` (the Gram matrix ``G`` of rows of components,
    the second layer's ``R[i, c]`` and the first layer's ``Y[c]``, and the mixing ``M (K, C)``):

    * ``S2[k] = sum_cd M[k, c] M[k, d] (Y[c] . Y[d]) / (4 pi)``,
    * ``S3[i, k] = sum_cd M[k, c] M[k, d] (R[i, c] . Y[d])``,
    * ``S4[i, j, k] = sum_cd M[k, c] M[k, d] (R[i, c] . R[j, d])``.
    """
    if isinstance(layers, Layers):
        S2 = s2_fourier(layers.first)
        if not A:
            return S2, None, None
        rows = as_rows(layers.second)
        return S2, s3(rows, layers.first, A), s4(rows, A)
    G, mixing = layers
    n, C = G.shape[0], mixing.shape[1]
    M = jnp.asarray(mixing, G.dtype)
    I = n // C - 1  # second-layer maps
    S2 = jnp.einsum("kc,kd,cd->k", M, M, G[I * C:, I * C:]) / (4 * np.pi)
    if not A:
        return S2, None, None
    S3 = jnp.einsum("kc,kd,icd->ik", M, M, G[:I * C, I * C:].reshape(I, C, C))
    S4 = jnp.einsum("kc,kd,icjd->ijk", M, M, G[:I * C, :I * C].reshape(I, C, I, C))
    return S2, S3.reshape(A, I // A, -1), _pairs_first(S4, A)


# ---------------------------------------------------------------- weighted (masked) averages
# With a mask the sphere average is ``<x>_w = sum_tp omega_tp x_tp / (4 pi)``, ``omega`` the
# pixel weights of :mod:`.masks` (``Q_t`` times the mask, rescaled to sum to ``4 pi``): the
# formulas above with ``Q_t`` replaced by ``omega_tp``, on maps, since ``omega`` varies along
# rings and the ring-Fourier products no longer apply.

def weighted_mean(x, omega):
    """``<x>_w = sum_tp omega_tp x_tp / (4 pi)`` over the last two axes of ``x (..., T, P)``,
    ``omega (T, P)``: ``(...)``."""
    return jnp.einsum("...tp,tp->...", x, omega) / (4 * np.pi)


def weighted_moments(f, omega):
    """Mean ``|<f>_w|`` and variance ``<|f|^2>_w - |<f>_w|^2`` of a map ``f (T, P)`` (real or
    complex); with ``omega = Q`` these are :func:`mean_variance` (GL quadrature is exact for
    ``f`` and ``|f|^2`` of band-limit ``T``)."""
    mean = weighted_mean(f, omega)
    power = weighted_mean(f.real**2 + f.imag**2 if jnp.iscomplexobj(f) else f * f, omega)
    return jnp.abs(mean), power - jnp.abs(mean) ** 2


def weighted_s3(first, second, omega):
    """``S3 (A, K2, K1) = sum_tp omega N W`` of one scale from maps: ``first (K1, T, P)`` the
    first layer ``W_{j1,k1}`` (its real part), ``second (A, K2, K1, T, P)`` the second layer
    ``N_{j1,j2,k2,k1}`` (:func:`.transforms.base.second_layers`); no ``1/(4 pi)``, as unmasked."""
    return jnp.einsum("aiktp,ktp,tp->aik", second, first, omega)


def weighted_s4(second, other, omega, A):
    """``S4 (A, A, K2, K3, K1) = sum_tp omega N N'`` from two second layers
    ``(A, K2, K1, T, P)`` (the same one for the auto statistics, two fields' for the cross
    ones): a Gram matrix per direction ``k1``."""
    K1 = second.shape[2]
    rows = jnp.moveaxis(second, 2, 0).reshape(K1, -1, omega.size)  # (K1, A*K2, X)
    if other is second:
        G = jnp.einsum("kix,kjx,x->ijk", rows, rows, omega.reshape(-1))
    else:
        cols = jnp.moveaxis(other, 2, 0).reshape(K1, -1, omega.size)
        G = jnp.einsum("kix,kjx,x->ijk", rows, cols, omega.reshape(-1))
    return _pairs_first(G, A)


def weighted_s3_s4(first, second, omega, A):
    """``(S3, S4)`` of one scale from its maps (:func:`weighted_s3`, :func:`weighted_s4`)."""
    return weighted_s3(first, second, omega), weighted_s4(second, second, omega, A)


def normalise_cross(S2, S3_fg, S3_gf, S4, norm_f, norm_g):
    """:func:`normalise` for the cross statistics of ``(f, g)``: each direction axis divided by
    the ``sqrt`` of its own field's reference power at scale ``j1`` (``S2`` by
    ``sqrt(norm_f norm_g)``; in ``S3_fg`` the first layer's ``k1`` by ``f``'s, the modulus'
    ``k2`` by ``g``'s, the reverse in ``S3_gf``; in ``S4`` ``k2`` by ``f``'s, ``k3`` by ``g``'s)."""
    inv_f, inv_g = 1.0 / jnp.sqrt(norm_f), 1.0 / jnp.sqrt(norm_g)
    S2 = [s * inv_f[i] * inv_g[i] for i, s in enumerate(S2)]
    S3_fg = [s * inv_g[i][None, :, None] * inv_f[i][None, None, :] for i, s in enumerate(S3_fg)]
    S3_gf = [s * inv_f[i][None, :, None] * inv_g[i][None, None, :] for i, s in enumerate(S3_gf)]
    S4 = [s * inv_f[i][None, None, :, None, None] * inv_g[i][None, None, None, :, None]
          for i, s in enumerate(S4)]
    return S2, S3_fg, S3_gf, S4


def normalise(S1, S2, S3, S4, norm):
    """Divide by the reference power ``norm[j, k]`` (S2SCAT's ``apply_norm``).

    ``S1[j] / sqrt(norm[j])``, ``S2[j] / norm[j]``; ``S3[j1]`` and ``S4[j1]`` are divided by
    ``sqrt(norm[j1, k])`` along each direction axis of the second layer (``k2`` and ``k1`` for
    S3, ``k2`` and ``k3`` for S4), all taken at scale ``j1``, as S2SCAT 0.0.3 does.
    """
    inv = 1.0 / jnp.sqrt(norm)
    S1 = [s * inv[i] for i, s in enumerate(S1)]
    S2 = [s / norm[i] for i, s in enumerate(S2)]
    S3 = [s * inv[i][None, :, None] * inv[i][None, None, :] for i, s in enumerate(S3)]
    S4 = [s * inv[i][None, None, :, None, None] * inv[i][None, None, None, :, None]
          for i, s in enumerate(S4)]
    return S1, S2, S3, S4


def isotropic(S3, S4):
    """Sum over directions: ``S3[j1] -> (A,)``, ``S4[j1] -> (A, A)``."""
    return [s.sum(axis=(1, 2)) for s in S3], [s.sum(axis=(2, 3, 4)) for s in S4]
