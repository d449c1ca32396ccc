r"""Sky masks for targets: read from files or drawn, and resampled onto the grids that need them.

A mask is a weight map in ``[0, 1]``: 1 observed, 0 masked (values between: partial weight,
an apodised edge, say). It lives as a HEALPix map (RING) of any ``nside`` and is resampled

* onto another HEALPix ``nside`` (:func:`to_nside`: ``healpy.ud_grade``, which averages when
  degrading, so values stay in ``[0, 1]``), to mask the target map;
* onto the statistics' GL grid of band-limit ``L`` (:func:`on_gl_grid`: degraded to the
  smallest ``nside >= L / 2`` if finer, then bilinear interpolation at the grid's points,
  a convex combination of pixel values), for ``op.mask``.

Files (``[target] mask = "path"``): a HEALPix map in a FITS file (healpy, column ``field``;
NESTED files are reordered by healpy) or a 1D ``.npy`` of ``12 nside^2`` values in RING order.

Drawn masks (``[target] mask = "band"`` or ``"cap"``, in the map's own coordinates):

* ``band``: a galactic-plane-like cut, ``w = 0`` where ``|latitude| < latitude_cut``;
* ``cap``: a survey footprint, ``w = 1`` within ``radius`` of ``(lon, lat)``.

Both are evaluated at pixel centres (HEALPix) and at the grid's points (GL), so the two
agree wherever a pixel is not cut by the edge.
"""

from __future__ import annotations

import numpy as np

DRAWN = ("band", "cap")


def band(theta, phi, latitude: float = 20.0) -> np.ndarray:
    """0 where ``|90 deg - theta| < latitude`` (degrees), else 1; ``theta, phi`` in radians."""
    theta, _ = np.broadcast_arrays(np.asarray(theta, float), np.asarray(phi, float))
    return (np.abs(90.0 - np.degrees(theta)) >= latitude).astype(np.float64)


def cap(theta, phi, lon: float = 0.0, lat: float = 90.0, radius: float = 60.0) -> np.ndarray:
    """1 within ``radius`` degrees of the centre ``(lon, lat)`` (degrees), else 0."""
    theta, phi = np.broadcast_arrays(np.asarray(theta, float), np.asarray(phi, float))
    t0, p0 = np.radians(90.0 - lat), np.radians(lon)
    cosine = (np.cos(theta) * np.cos(t0)
              + np.sin(theta) * np.sin(t0) * np.cos(phi - p0))
    return (cosine >= np.cos(np.radians(radius))).astype(np.float64)


def draw(kind: str, theta, phi, **params) -> np.ndarray:
    """A drawn mask (``"band"`` or ``"cap"``) at the points ``(theta, phi)``."""
    if kind == "band":
        return band(theta, phi, **params)
    if kind == "cap":
        return cap(theta, phi, **params)
    raise ValueError(f"a drawn mask is one of {', '.join(DRAWN)}, got {kind!r}")


def draw_healpix(kind: str, nside: int, **params) -> np.ndarray:
    """A drawn mask at the pixel centres of a HEALPix map (RING)."""
    import healpy as hp

    theta, phi = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    return draw(kind, theta, phi, **params)


def draw_gl(kind: str, L: int, **params) -> np.ndarray:
    """A drawn mask on the GL grid of band-limit ``L``: ``(L, 2L-1)``."""
    from s2scat_core.transforms import gl_thetas

    theta = gl_thetas(L)[:, None]
    phi = 2 * np.pi * np.arange(2 * L - 1)[None, :] / (2 * L - 1)
    return draw(kind, theta, phi, **params)


def check(mask: np.ndarray, name: str = "target.mask") -> np.ndarray:
    """A HEALPix mask's values as float64, or ``ValueError`` naming ``name``: 1D of
    ``12 nside^2`` values, finite (no UNSEEN), in ``[0, 1]``, not zero everywhere."""
    import healpy as hp

    mask = np.asarray(mask)
    if mask.ndim != 1 or not hp.isnpixok(mask.size):
        raise ValueError(f"{name}: a HEALPix mask must be 1D with 12 nside^2 values, got shape "
                         f"{mask.shape}")
    if not np.issubdtype(mask.dtype, np.number) or np.iscomplexobj(mask):
        raise ValueError(f"{name}: a mask must be real, got dtype {mask.dtype}")
    mask = mask.astype(np.float64)
    bad = ~np.isfinite(mask) | (mask == hp.UNSEEN)
    if bad.any():
        raise ValueError(f"{name}: the mask has {int(bad.sum())} unseen or non-finite value(s); "
                         f"a mask holds weights in [0, 1] everywhere")
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"{name}: mask values must lie in [0, 1], got "
                         f"[{mask.min():.6g}, {mask.max():.6g}]")
    if not np.any(mask > 0):
        raise ValueError(f"{name}: the mask is zero everywhere: no observed sky")
    return mask


def read(path, *, field: int = 0, name: str = "target.mask") -> np.ndarray:
    """A mask file (FITS or 1D ``.npy``, any ``nside``) as a checked HEALPix map (RING)."""
    from .files import read_healpix

    data = read_healpix(path, format="healpix", field=field, name=name)
    if data is None:
        raise ValueError(f"{name}: {path}: a mask must be real, got complex values")
    return check(data, f"{name}: {path}")


def to_nside(mask: np.ndarray, nside: int) -> np.ndarray:
    """The mask on a HEALPix map of ``nside`` (RING), values in ``[0, 1]``."""
    import healpy as hp

    if hp.npix2nside(mask.size) == nside:
        return mask
    return np.clip(hp.ud_grade(mask, nside, order_in="RING", order_out="RING"), 0.0, 1.0)


def on_gl_grid(mask: np.ndarray, L: int) -> np.ndarray:
    """The mask on the GL grid of band-limit ``L``, ``(L, 2L-1)`` in ``[0, 1]`` (module doc)."""
    import healpy as hp
    from s2scat_core.transforms import gl_thetas

    nside = hp.npix2nside(mask.size)
    coarse = max(1, 1 << int(np.ceil(np.log2(max(L / 2, 1)))))
    if nside > coarse:
        mask = to_nside(mask, coarse)
    theta = np.repeat(gl_thetas(L)[:, None], 2 * L - 1, axis=1)
    phi = np.broadcast_to(2 * np.pi * np.arange(2 * L - 1)[None, :] / (2 * L - 1), theta.shape)
    values = hp.get_interp_val(mask, theta.ravel(), phi.ravel())
    return np.clip(values.reshape(L, 2 * L - 1), 0.0, 1.0)


def observed_fraction(mask: np.ndarray) -> float:
    """Sky fraction of a HEALPix mask: the mean of its values."""
    return float(np.mean(mask))
