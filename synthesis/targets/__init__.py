r"""Where a target field comes from, and how every source is made comparable.

Sources (``target.source`` in an experiment):

* ``"lognormal"``: a lognormal large-scale-structure-like field (:func:`.demo.lognormal`);
* ``"filaments"``: aligned filaments on a faint red-noise background (:func:`.demo.filaments`);
* ``"file"``: a HEALPix map (FITS or 1D ``.npy``), a ``.npy`` map on an MW or GL grid of any
  band-limit ``L0 >= L``, or harmonic coefficients (2D ``.npy`` in s2fft's layout, or a healpy
  alm FITS file) (:func:`.files.read_coefficients`).

Every source gives coefficients ``flm (L, 2L-1)`` truncated to ``l < L`` and then, by default,
standardised (:func:`standardise`): zero mean, unit variance of the band-limited map.

Ensembles: ``paths`` (files, globs expanded by the config) or ``members`` (seeds ``seed``,
``seed + 1``, ... of a demo field) give several fields; the engine averages their statistics.

Masks (``mask``: a file, or ``"band"`` / ``"cap"`` drawn by :mod:`.masks`): the target is
read as a HEALPix map (coefficients and MW/GL grids are synthesised at ``nside >= L``), its
unseen pixels must lie in the masked region, the masked region (``mask < 1``, blended) is
filled with the observed mean, the map analysed to ``l < L`` and standardised over the
observed sky (:func:`standardise_observed`). The mask comes back on the statistics' GL grid
and on the map's HEALPix grid.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from s2scat_core import harmonics

from . import demo, files, masks
from .files import read_coefficients

__all__ = ["TargetField", "demo", "demo_map", "files", "load", "masked_coefficients", "masks",
           "read_coefficients", "standardise", "standardise_observed", "write_map"]


@dataclasses.dataclass(frozen=True)
class TargetField:
    """A target ready for synthesis: ``flm (L, 2L-1)`` complex and a one-line description.

    ``members (M, L, 2L-1)``: an ensemble's fields (``flm`` is the first), else ``None``.
    With a mask: ``mask (L, 2L-1)`` on the statistics' GL grid and ``mask_map``, the same on
    the HEALPix grid of the target map (RING), both in ``[0, 1]``; else ``None``. ``second``:
    the second field of a pair (``[target.second]``, masked alike), else ``None``.
    """

    flm: np.ndarray
    description: str
    members: np.ndarray | None = None
    mask: np.ndarray | None = None
    mask_map: np.ndarray | None = None
    second: "TargetField | None" = None

    @property
    def fields(self) -> np.ndarray:
        """``(M, L, 2L-1)``: the members, or the one field."""
        return self.flm[None] if self.members is None else self.members


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


def standardise_observed(flm, mask_map) -> np.ndarray:
    r"""Zero mean, unit variance over the observed sky: the band-limited map ``f`` on the
    mask's HEALPix grid, ``mu = <f>_w``, ``sigma^2 = <(f - mu)^2>_w`` (``w`` the mask, pixel
    means), then ``(f - mu) / sigma`` (``f_00 -= sqrt(4 pi) mu``)."""
    import healpy as hp

    flm = np.array(flm, dtype=np.complex128)
    L = flm.shape[-2]
    f = hp.alm2map(harmonics.to_healpy_alm(flm), hp.npix2nside(mask_map.size), lmax=L - 1)
    w = mask_map / mask_map.sum()
    mu = float(np.sum(w * f))
    sigma = float(np.sqrt(np.sum(w * (f - mu) ** 2)))
    if not sigma > 0:
        raise ValueError("target has no variance on the observed sky and cannot be standardised")
    flm[0, L - 1] -= np.sqrt(4 * np.pi) * mu
    return flm / sigma


def _key(target, key="target"):
    return f"{key}.path" if not target.paths else f"{key}.paths"


def _member_flm(target, L, path=None, seed=None, key="target"):
    """One member's coefficients ``(L, 2L-1)``, unstandardised (no mask)."""
    if target.source == "file":
        return read_coefficients(path, L, format=target.format, field=target.field,
                                 name=_key(target, key))
    generator = {"lognormal": demo.lognormal, "filaments": demo.filaments}[target.source]
    params = dataclasses.asdict(getattr(target, target.source))
    return generator(L, seed=seed, bandlimit=target.bandlimit or L, **params)


def _member_map(target, L, path=None, seed=None, key="target"):
    """One member as a HEALPix map (unseen pixels kept) and a name for errors."""
    import healpy as hp

    if target.source == "file":
        name = _key(target, key)
        raw = files.read_healpix(path, format=target.format, field=target.field, name=name)
        if raw is not None:
            nside = hp.npix2nside(raw.size)
            if L > 3 * nside:
                raise ValueError(f"{name}: {path}: L={L} is above 3 nside = {3 * nside} for "
                                 f"this nside={nside} map")
            return raw, f"{name}: {path}"
        flm = _member_flm(target, L, path, key=key)
        nside = max(16, 1 << int(np.ceil(np.log2(L))))
        return hp.alm2map(harmonics.to_healpy_alm(flm), nside, lmax=L - 1), f"{name}: {path}"
    generator = {"lognormal": demo.lognormal_map, "filaments": demo.filaments_map}[target.source]
    params = dataclasses.asdict(getattr(target, target.source))
    return generator(target.bandlimit or L, seed=seed, **params), key


def _mask_maps(target, nside, L):
    """``(mask on the HEALPix grid of nside, mask on the GL grid of L)`` of ``target.mask``."""
    if target.mask in masks.DRAWN:
        params = dataclasses.asdict(getattr(target, target.mask))
        return (masks.draw_healpix(target.mask, nside, **params),
                masks.draw_gl(target.mask, L, **params))
    m = masks.read(target.mask, field=target.mask_field, name="target.mask")
    return masks.to_nside(m, nside), masks.on_gl_grid(m, L)


def _masked_member(target, L, path=None, seed=None, key="target"):
    """A masked member: its map's unseen pixels must be masked (where a finer mask, degraded
    to the map's nside, only partly masks them, they count as masked); the masked region is
    filled with the observed mean before the harmonic analysis (module doc)."""
    import healpy as hp

    raw, name = _member_map(target, L, path, seed, key)
    nside = hp.npix2nside(raw.size)
    mask_map, mask_gl = _mask_maps(target, nside, L)
    flm, mask_map = masked_coefficients(raw, mask_map, L, name)
    return flm, mask_map, mask_gl


def masked_coefficients(raw, mask_map, L: int, name: str = "map", key: str = "target.mask"):
    """``(flm (L, 2L-1), mask)`` of a HEALPix map seen through a mask of its nside: unseen or
    non-finite pixels must be masked (error naming ``name`` where the mask is 1; where a finer
    mask only partly masks them they count as masked, the returned mask 0 there); the masked
    region is filled with the observed (mask-weighted) mean, then ``map2alm`` to ``l < L``."""
    import healpy as hp

    bad = ~np.isfinite(raw) | (raw == hp.UNSEEN)
    if np.any(bad & (mask_map >= 1)):
        raise ValueError(f"{name}: {int(np.sum(bad & (mask_map >= 1)))} unseen or non-finite "
                         f"pixel(s) where {key} is 1 (observed); mask them or fill them")
    mask_map = np.where(bad, 0.0, mask_map)
    if not np.any(mask_map > 0):
        raise ValueError(f"{name}: no observed pixel with data under {key}")
    values = np.where(bad, 0.0, raw)
    mean = float(np.sum(mask_map * values) / np.sum(mask_map))
    filled = mask_map * values + (1 - mask_map) * mean
    return harmonics.from_map(filled, L, "healpix"), mask_map


def _sources(target):
    """``[(path, seed), ...]``: one per member."""
    if target.source == "file":
        if target.paths:
            return [(p, None) for p in target.paths]
        return [(target.path, None)]
    return [(None, target.seed + i) for i in range(target.members)]


def load(target, L: int) -> TargetField:
    """The target of an experiment's ``[target]`` section (:class:`synthesis.config.Target`):
    one field or an ensemble (``paths``, or ``members`` seeds of a demo field), masked or not
    (``mask``), standardised by default (over the observed sky when masked); with
    ``[target.second]`` the second field of a pair too."""
    field = _load(target, L)
    second = getattr(target, "second", None)
    if second is None or second.source == "none":
        return field
    shared = {f.name: getattr(second, f.name) for f in dataclasses.fields(second)}
    other = _load(dataclasses.replace(target, **shared, paths=(), members=1), L,
                  key="target.second")
    return dataclasses.replace(field, second=other)


def _load(target, L: int, key: str = "target") -> TargetField:
    import healpy as hp

    sources = _sources(target)
    mask = mask_map = None
    fields = []
    nsides = set()
    for path, seed in sources:
        if target.mask:
            flm, mask_map, mask = _masked_member(target, L, path, seed, key)
            nsides.add(hp.npix2nside(mask_map.size))
            if target.standardise:
                flm = standardise_observed(flm, mask_map)
        else:
            flm = _member_flm(target, L, path, seed, key)
            if target.standardise:
                flm = standardise(flm)
        fields.append(np.asarray(flm))
    if len(nsides) > 1:
        raise ValueError(f"{key}.paths: the maps of an ensemble must share one nside (and "
                         f"mask), got nside {sorted(nsides)}")
    if target.source == "file":
        text = f"file {target.path}" if len(sources) == 1 else f"{len(sources)} files"
    else:
        text = f"{target.source} demo field (seed {target.seed}" + (
            f"..{target.seed + len(sources) - 1})" if len(sources) > 1 else ")")
    if target.mask:
        kind = target.mask if target.mask in masks.DRAWN else f"file {target.mask}"
        text += f", masked ({kind} mask, f_sky = {masks.observed_fraction(mask_map):.2f})"
    if target.standardise:
        text += ", standardised"
    members = np.stack(fields) if len(fields) > 1 else None
    return TargetField(fields[0], text, members, mask, mask_map)


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
