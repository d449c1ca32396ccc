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

The quadrature weights are folded into one operand, so S3 is a matrix-vector product and S4 a
Gram matrix per direction ``k1``; no ``(J, J, N, N, pixels)`` product is ever formed.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_SQRT_4PI = float(np.sqrt(4 * np.pi))


def mean_variance(flm_full):
    """Mean and variance of a field from its coefficients ``(L, 2L-1)``; two real scalars."""
    L = flm_full.shape[-2]
    f00 = flm_full[0, L - 1]
    power = jnp.sum(flm_full.real**2 + flm_full.imag**2)
    return jnp.abs(f00) / _SQRT_4PI, (power - jnp.abs(f00) ** 2) / (4 * np.pi)


def s1(mlm_half):
    """``S1[k] = Re M_{00,k} / sqrt(4 pi)`` from the ``m >= 0`` half ``(2N-1, Lj, Lj)``: ``(2N-1,)``."""
    return mlm_half[..., 0, 0].real / _SQRT_4PI


def s2(w, q):
    """``S2[k] = sum_tp q_t |W_k|^2 / (4 pi)``; ``w (2N-1, Lj, 2Lj-1)``, ``q (Lj,)``: ``(2N-1,)``."""
    power = w.real**2 + w.imag**2 if jnp.iscomplexobj(w) else w**2
    return jnp.einsum("ktp,t->k", power, q) / (4 * np.pi)


def s3(second, w, q):
    """``S3[a, k2, k1]``; ``second (A, 2N-1, 2N-1, Lj, 2Lj-1)`` real, ``w (2N-1, Lj, 2Lj-1)``."""
    # A broadcast product and a sum: several times faster than einsum's transposes at high L.
    return jnp.sum(second * (w.real * q[:, None]), axis=(-2, -1))


def s4(second, q):
    """``S4[a, b, k2, k3, k1]`` from ``second (A, 2N-1, 2N-1, Lj, 2Lj-1)`` real."""
    A, K2, K1 = second.shape[:3]
    x = second.reshape(A * K2, K1, -1)
    gram = jnp.einsum("ikx,jkx->ijk", x * jnp.repeat(q, second.shape[-1]), x)
    return gram.reshape(A, K2, A, K2, K1).transpose(0, 2, 1, 3, 4)


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
