r"""Masks: a weight map on the operator's grid becomes one sphere-average weight a scale.

A mask ``w(theta, phi)`` in ``[0, 1]`` (1 observed, 0 masked) on the GL grid of band-limit
``L`` (the operator's grid, :meth:`Scattering.grid`) turns every sphere average of the
statistics into a weighted average over the observed sky,

    <x>_w = sum_tp Q_t w_tp x_tp / sum_tp Q_t w_tp,

with ``Q_t`` the GL quadrature weights of the grid the quantity lives on. In the formulas
of :mod:`.covariances` this is ``Q_t`` replaced by the pixel weights

    omega_tp = 4 pi Q_t w_tp / sum_tp Q_t w_tp          (sum_tp omega_tp = 4 pi),

so a full mask gives ``omega = Q`` and today's numbers (to rounding, 1e-14 measured).

**Erosion per scale.** A wavelet coefficient ``W_j f`` near the edge of the mask is a sum
over a patch of sky of radius ~ ``theta_j = pi / 2^j`` (half the wavelength at the wavelet's
central degree ``l = 2^j``), part of it under the mask, so it is biased (toward zero for a
zero-filled map). Scale ``j``'s statistics (``S1``, ``S2`` at ``j``; ``S3``, ``S4`` at
``j1 = j``, whose second layer is filtered at the coarser scale ``j1 <= j2``) are therefore
averaged with the mask **eroded and apodised** at that scale, as pseudo-spectrum and
scattering analyses of cut skies do (a weight that goes to zero smoothly at a distance of the
kernel's width from the edge, e.g. Delouis et al. 2022 smooth the mask per scale):

    s_j = w * G_j                   (the mask smoothed by a Gaussian beam of
                                     sigma_j = apodisation * theta_j),
    w_j = clip(2 s_j - 1, 0, 1)     on the GL grid of L_j.

Across a straight edge at distance ``d`` inside the observed region this is
``w_j = erf(d / (sqrt(2) sigma_j))``: 0 on the edge and in the masked region, 68 % at
``sigma_j``, 95 % at ``2 sigma_j``; pixels far from any edge keep weight 1. Why this shape and
not a hard erosion: it is a smooth function of the mask (rotation-equivariant: the smoothing
is a harmonic convolution, the clip acts pixel by pixel, so a rotated mask gives the rotated
weights up to the grid), it needs no distance transform on the sphere, and it is cheap
(two spherical-harmonic transforms a scale, once). The eroded weight is multiplied by the
mask itself on the scale's grid (averaged over its pixels), so no weight ever falls in the
masked region, however wide the beam.

What it costs and what is left (measured on zero-filled lognormal maps at L = 64, N = 3,
J_min = 2, 8 seeds, ``apodisation = 1``; bias in units of the full-sky statistics' spread
between seeds): with a galactic cut ``|b| < 20 deg`` the biases of S1-S4 at scales 3-5 are
0.2-0.9 of that spread (the noise of this measurement is ~0.3); two places stay biased,
whatever the apodisation (0.5-3 tried): the coarsest scale's S4 (3 spreads: its wavelet, 45
deg wide, is wider than the cut) and the finest scale's S1 (1.6 spreads, 1-5 % low: its
wavelet is cut by the band-limit at its peak, so its tails reach 30 deg from the edge). A
60 deg survey cap (a quarter of the sky) gives 1-3.6 spreads. Larger apodisations lower the
bias near edges and the observed area; smaller ones the reverse. The mean and the variance
read the mask as it is, on the grid of ``L`` (no wavelet is involved).

The weights are computed once, in NumPy (ducc0's transforms), by :func:`scale_weights` (or
``op.mask(w)``), and enter the compiled statistics as arrays: the masked statistics are
differentiable in the field and in the weights.
"""

from __future__ import annotations

from typing import NamedTuple

import ducc0
import jax
import numpy as np

from .transforms.base import gl_thetas, gl_weights


class MaskWeights(NamedTuple):
    """The pixel weights ``omega`` of a mask (module doc), ready for ``op.scatter(..., mask=)``.

    ``field (L, 2L-1)``: the mask itself, for the mean and the variance; ``scales``: one
    ``(L_j, 2L_j-1)`` array a scale ``j = J_min..J``, the mask eroded and apodised at that
    scale. Each sums to ``4 pi`` (``Q_t`` folded in). A NamedTuple of arrays: a JAX pytree.
    """

    field: jax.Array
    scales: tuple


def default_apodisation() -> float:
    """``sigma_j / theta_j`` of the erosion beam used when none is given (module doc)."""
    return 1.0


def check_mask(mask, L: int, name: str = "mask") -> np.ndarray:
    """``mask`` as a float64 ``(L, 2L-1)`` array on the GL grid of ``L``, or ``ValueError``."""
    if isinstance(mask, jax.core.Tracer):
        raise ValueError(f"{name} must be a concrete array: prepare it outside jit with "
                         f"op.mask(w) and pass the result")
    try:
        w = np.asarray(mask)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise ValueError(f"{name} must be an array, got {type(mask).__name__}") from None
    if w.shape != (L, 2 * L - 1):
        raise ValueError(f"{name} must have shape ({L}, {2 * L - 1}) (the GL grid of L={L}, "
                         f"op.grid()), got {w.shape}")
    if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise ValueError(f"{name} must be real, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite, got {int(np.sum(~np.isfinite(w)))} "
                         f"non-finite value(s)")
    if w.min() < 0 or w.max() > 1:
        raise ValueError(f"{name} values must lie in [0, 1], got [{w.min():.6g}, {w.max():.6g}]")
    if not np.any(w > 0):
        raise ValueError(f"{name} is zero everywhere: no observed sky")
    return w


def _omega(w: np.ndarray) -> np.ndarray:
    """``4 pi Q_t w_tp / sum Q w`` on the GL grid of ``w``'s shape."""
    qw = gl_weights(w.shape[0])[:, None] * w
    return 4 * np.pi * qw / qw.sum()


def _ells(lmax: int) -> np.ndarray:
    """The degree ``l`` of each entry of ducc0's (healpy's) packed ``m >= 0`` alm order."""
    return np.concatenate([np.arange(m, lmax + 1) for m in range(lmax + 1)])


def smooth(w: np.ndarray, sigma: float, bandlimit: int) -> np.ndarray:
    """``w`` (GL grid of ``L``) convolved with a Gaussian beam ``b_l = exp(-l(l+1) sigma^2/2)``
    (``sigma`` in radians), its harmonic series to ``l < L`` evaluated on the GL grid of
    ``bandlimit``: ``(bandlimit, 2 bandlimit - 1)``."""
    L = w.shape[0]
    alm = ducc0.sht.analysis_2d(map=w[None], spin=0, lmax=L - 1, geometry="GL")[0]
    ell = _ells(L - 1)
    alm = alm * np.exp(-0.5 * ell * (ell + 1) * sigma**2)
    B = bandlimit
    nphi = 2 * B - 1
    out = ducc0.sht.synthesis(alm=alm[None], theta=gl_thetas(B), lmax=L - 1, mstart=None,
                              nphi=np.full(B, nphi, np.uint64), phi0=np.zeros(B),
                              ringstart=(np.arange(B) * nphi).astype(np.uint64), spin=0)
    return out.reshape(B, nphi)


def scale_width(j: int) -> float:
    """``theta_j = pi / 2^j`` (radians): half the wavelength at the central degree of scale
    ``j`` (scale 0 counts as 1, as in :func:`s2scat_core.wavelets.scale_bandlimit`)."""
    return float(np.pi / 2 ** max(j, 1))


def resampled(w: np.ndarray, bandlimit: int) -> np.ndarray:
    """``w`` on the GL grid of ``bandlimit``, averaged over that grid's pixels (smoothed by a
    Gaussian of ``sigma = pi / (2 bandlimit)``, half its pixel, and clipped to ``[0, 1]``);
    ``w`` itself when the grids are the same."""
    if bandlimit == w.shape[0]:
        return w
    return np.clip(smooth(w, np.pi / (2 * bandlimit), bandlimit), 0.0, 1.0)


def eroded(w: np.ndarray, j: int, bandlimit: int, apodisation: float) -> np.ndarray:
    """``w_j = w_B clip(2 (w * G_j) - 1, 0, 1)`` on the GL grid of ``bandlimit`` ``B``, with
    ``w_B`` the mask on that grid (:func:`resampled`); module doc."""
    s = smooth(w, apodisation * scale_width(j), bandlimit)
    return resampled(w, bandlimit) * np.clip(2 * s - 1, 0.0, 1.0)


def scale_weights(mask, L: int, scales, bandlimits, apodisation: float | None = None,
                  name: str = "mask") -> MaskWeights:
    """The :class:`MaskWeights` of ``mask (L, 2L-1)`` for scales ``scales`` with grids
    ``bandlimits`` (``op.mask(w)`` fills these in from the operator).

    Raises ``ValueError`` naming ``name`` for a mask of the wrong shape, not real, not finite,
    outside ``[0, 1]`` or zero everywhere, and naming the scale when erosion leaves it no sky.
    """
    w = check_mask(mask, L, name)
    a = default_apodisation() if apodisation is None else apodisation
    if not (isinstance(a, (int, float)) and np.isfinite(a) and a > 0):
        raise ValueError(f"apodisation must be a number > 0, got {apodisation!r}")
    out = []
    for j, B in zip(scales, bandlimits):
        wj = eroded(w, j, B, float(a))
        if not np.any(wj > 0):
            raise ValueError(f"{name}: eroding it at scale j={j} (sigma = "
                             f"{np.degrees(a * scale_width(j)):.3g} deg) leaves no observed sky; "
                             f"raise J_min or lower the apodisation")
        out.append(_omega(wj))
    return MaskWeights(_omega(w), tuple(out))


def observed_fraction(weights: np.ndarray) -> float:
    """``sum_tp Q_t w_tp / 4 pi`` of a weight map ``(T, 2T-1)`` on a GL grid: its sky fraction."""
    w = np.asarray(weights, dtype=np.float64)
    return float(np.sum(gl_weights(w.shape[0])[:, None] * w) / (4 * np.pi))
