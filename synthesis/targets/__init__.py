r"""Where a target field comes from, and how every source is made comparable.

Sources (``target.source`` in an experiment):

* ``"lognormal"``: a lognormal large-scale-structure-like field (:func:`.demo.lognormal`);
* ``"filaments"``: aligned filaments on a faint red-noise background (:func:`.demo.filaments`);
* ``"file"``: a HEALPix map (FITS or 1D ``.npy``), a ``.npy`` map on an MW or GL grid of any
  band-limit ``L0 >= L``, or harmonic coefficients (2D ``.npy`` in s2fft's layout, or a healpy
  alm FITS file) (:func:`.files.read_coefficients`).

Every source gives coefficients ``flm (L, 2L-1)`` truncated to ``l < L`` and then, by default,
standardised (:func:`standardise`): zero mean, unit variance of the band-limited map.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import demo, files
from .files import read_coefficients

__all__ = ["TargetField", "demo", "demo_map", "files", "load", "read_coefficients", "standardise",
           "write_map"]


@dataclasses.dataclass(frozen=True)
class TargetField:
    """A target ready for synthesis: ``flm (L, 2L-1)`` complex and a one-line description."""

    flm: np.ndarray
    description: str


def standardise(flm) -> np.ndarray:
    r"""Zero mean, unit variance: ``f_00 = 0``, then ``f_lm / sigma`` with
    ``sigma^2 = sum_{l>=1,m} |f_lm|^2 / (4 pi)`` (the variance of the band-limited map).

    ``flm``: ``(..., L, 2L-1)`` complex; the same shape comes back.
    """
    flm = np.array(flm, dtype=np.complex128)
    L = flm.shape[-2]
    flm[..., 0, L - 1] = 0.0
    var = np.sum(np.abs(flm) ** 2, axis=(-2, -1)) / (4 * np.pi)
    if np.any(var <= 0) or not np.all(np.isfinite(var)):
        raise ValueError("target has no variance at 1 <= l < L (a constant map) and cannot be "
                         "standardised")
    return flm / np.sqrt(var)[..., None, None]


def load(target, L: int) -> TargetField:
    """The target of an experiment's ``[target]`` section (:class:`synthesis.config.Target`)."""
    if target.source == "file":
        flm = read_coefficients(target.path, L, format=target.format, field=target.field,
                                name="target.path")
        text = f"file {target.path}"
    else:
        generator = {"lognormal": demo.lognormal, "filaments": demo.filaments}[target.source]
        params = dataclasses.asdict(getattr(target, target.source))
        flm = generator(L, seed=target.seed, bandlimit=target.bandlimit or L, **params)
        text = f"{target.source} demo field (seed {target.seed})"
    if target.standardise:
        flm = standardise(flm)
        text += ", standardised"
    return TargetField(np.asarray(flm), text)


def demo_map(target, bandlimit: int) -> np.ndarray:
    """The generated demo field of a ``[target]`` section as a HEALPix map (RING), before any
    band-limiting to the experiment's ``L``; ``nside`` follows from ``bandlimit``."""
    if target.source == "file":
        raise ValueError("target.source must be 'lognormal' or 'filaments' to generate a map, "
                         "got 'file'")
    generator = {"lognormal": demo.lognormal_map, "filaments": demo.filaments_map}[target.source]
    return generator(bandlimit, seed=target.seed, **dataclasses.asdict(getattr(target, target.source)))


def write_map(m, path) -> "Path":
    """Write a HEALPix map (RING): FITS (float32, healpy) or ``.npy`` (float64), atomically."""
    from pathlib import Path

    from ..io import atomic_path

    path = Path(path)
    if path.suffix.lower() == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.asarray(m, dtype=np.float64))
    elif files._is_fits(path):
        import healpy as hp

        with atomic_path(path, suffix=".fits") as tmp:
            hp.write_map(str(tmp), np.asarray(m, dtype=np.float32), overwrite=True, dtype=np.float32)
    else:
        raise ValueError(f"--out must end with .fits or .npy, got {str(path)!r}")
    return path
