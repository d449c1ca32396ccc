r"""Reading target fields from files; every reader returns ``flm (L, 2L-1)`` complex, ``l < L``.

What a file holds (``format``):

============  ===========================================================================
``healpix``   HEALPix map, RING or NESTED (FITS, read by healpy, column ``field``) or a 1D
              ``.npy`` of ``12 nside^2`` pixels in RING order; ``L <= 3 nside``; analysed
              with healpy's ``map2alm`` (3 Jacobi iterations).
``mw``        2D real ``.npy`` of shape ``(L0, 2L0-1)`` on s2fft's McEwen-Wiaux grid, ``L0 >= L``.
``gl``        the same on s2fft's Gauss-Legendre grid.
``alm``       2D complex ``.npy`` ``(L0, 2L0-1)`` in s2fft's layout ``flm[l, L0-1+m]`` (a real
              field's, Hermitian), or a 1D complex ``.npy`` / FITS file of healpy's packed alm.
``auto``      FITS: alm if the table has an ``INDEX`` column, else a HEALPix map; ``.npy``:
              complex -> ``alm``, real 1D -> ``healpix``; a real 2D array must be told
              ``mw`` or ``gl``.
============  ===========================================================================

Errors are ``ValueError`` naming the file (and the setting that names it, ``name``).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from s2scat_core import harmonics

FORMATS = ("auto", "healpix", "mw", "gl", "alm")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


def _is_fits(path: Path) -> bool:
    return path.name.lower().endswith(FITS_SUFFIXES)


def _fits_holds_alm(path: Path) -> bool:
    from astropy.io import fits

    with fits.open(path) as hdus:
        for hdu in hdus[1:]:
            names = [n.upper() for n in (getattr(hdu.columns, "names", None) or [])]
            if names:
                return "INDEX" in names
    return False


def _load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise ValueError("not a .npy file (no NumPy header; save arrays with numpy.save)")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several types for a bad file
        raise ValueError(f"not a readable .npy array ({type(err).__name__}: {err})") from None
    if not isinstance(data, np.ndarray) or not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"expected a numeric array, got dtype {getattr(data, 'dtype', '?')}")
    if data.ndim not in (1, 2):
        raise ValueError(f"expected a 1D HEALPix map or healpy alm, or a 2D grid or s2fft "
                         f"coefficients, got a {data.ndim}-D array of shape {data.shape}")
    return data


@contextlib.contextmanager
def _fits_errors(what: str):
    """Turn a FITS reader's failure into ``ValueError("not a {what} (...)")``, with what
    astropy warned about (a truncated file, say) instead of the reader's own words; the
    warnings are not printed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except _NoColumn:
            raise
        except Exception as err:  # noqa: BLE001  (astropy and healpy raise many types)
            reason = caught[0].message if caught else f"{type(err).__name__}: {err}"
            raise ValueError(f"not a {what} ({reason})") from None


class _NoColumn(ValueError):
    """The FITS file has no such column (``field``)."""


def _from_2d_alm(alm: np.ndarray, L: int) -> np.ndarray:
    L0 = alm.shape[0]
    if alm.ndim != 2 or alm.shape[1] != 2 * L0 - 1:
        raise ValueError(f"2D coefficients must have shape (L0, 2L0-1), got {alm.shape}")
    if L0 < L:
        raise ValueError(f"coefficients have band-limit L0={L0} < L={L}")
    if not np.all(np.isfinite(alm)):
        raise ValueError("coefficients must be finite")
    if not harmonics.is_hermitian(alm, rtol=1e-8):
        raise ValueError("coefficients are not those of a real field (f_{l,-m} != (-1)^m conj f_lm)")
    return np.asarray(harmonics.truncate(alm.astype(np.complex128), L))


def _from_packed_alm(alm: np.ndarray, L: int) -> np.ndarray:
    lmax = int(round((np.sqrt(8 * alm.size + 1) - 3) / 2))
    if alm.ndim != 1 or alm.size != (lmax + 1) * (lmax + 2) // 2:
        raise ValueError(f"healpy packed alm must be 1D with (lmax+1)(lmax+2)/2 entries, got "
                         f"shape {alm.shape}")
    if lmax + 1 < L:
        raise ValueError(f"alm have lmax={lmax}, band-limit {lmax + 1} < L={L}")
    return harmonics.from_healpy_alm(alm, L)


def _from_map(data: np.ndarray, L: int, sampling: str) -> np.ndarray:
    if sampling == "healpix":
        import healpy as hp

        if data.ndim != 1 or not hp.isnpixok(data.size):
            raise ValueError(f"a HEALPix map must be 1D with 12 nside^2 pixels, got shape {data.shape}")
        bad = ~np.isfinite(data) | (data == hp.UNSEEN)
        if bad.any():
            raise ValueError(f"map has {int(bad.sum())} unseen or non-finite pixel(s); fill them first")
        nside = hp.npix2nside(data.size)
        if L > 3 * nside:
            raise ValueError(f"L={L} is above 3 nside = {3 * nside} for this nside={nside} map")
    elif data.ndim != 2 or data.shape[1] != 2 * data.shape[0] - 1:
        raise ValueError(f"a {sampling.upper()} map must have shape (L0, 2L0-1), got {data.shape}")
    elif data.shape[0] < L:
        raise ValueError(f"the {sampling.upper()} map has band-limit L0={data.shape[0]} < L={L}")
    if np.iscomplexobj(data):
        raise ValueError(f"a map must be real, got dtype {data.dtype}")
    return harmonics.from_map(data, L, sampling)


def read_coefficients(path, L: int, *, format: str = "auto", field: int = 0,
                      name: str = "path") -> np.ndarray:
    """Harmonic coefficients ``(L, 2L-1)`` of the real field stored in ``path`` (see module doc).

    Args:
        path: a ``.npy`` or FITS file.
        L: band-limit of the result; the file must carry at least ``l < L``.
        format: one of ``auto``, ``healpix``, ``mw``, ``gl``, ``alm``.
        field: FITS column of a HEALPix map.
        name: the setting that named the file, for error messages.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}: file {str(path)!r} does not exist")
    try:
        if _is_fits(path):
            return _read_fits(path, L, format, field)
        if path.suffix.lower() == ".npy":
            return _read_npy(path, L, format)
        raise ValueError("unknown file type (expected .npy or .fits)")
    except ValueError as err:
        raise ValueError(f"{name}: {path}: {err}") from None
    except OSError as err:
        raise ValueError(f"{name}: {path}: cannot read: {err}") from None


def _read_fits(path: Path, L: int, format: str, field: int) -> np.ndarray:
    import healpy as hp

    if format in ("mw", "gl"):
        raise ValueError(f"format {format!r} is for 2D .npy grids, not FITS files")
    with _fits_errors("readable FITS file"):
        holds_alm = _fits_holds_alm(path)
    if format == "alm" or (format == "auto" and holds_alm):
        with _fits_errors("healpy alm FITS file"):
            alm = hp.read_alm(str(path))
        return _from_packed_alm(np.asarray(alm, dtype=np.complex128), L)
    return _from_map(_read_fits_map(path, field), L, "healpix")


def _read_fits_map(path: Path, field: int) -> np.ndarray:
    import healpy as hp

    with _fits_errors("HEALPix map FITS file"):
        try:
            data = hp.read_map(str(path), field=field, dtype=np.float64)
        except IndexError:
            raise _NoColumn(f"has no column field={field}") from None
    return np.asarray(data, dtype=np.float64)


def _read_npy(path: Path, L: int, format: str) -> np.ndarray:
    data = _load_npy(path)
    if format == "auto":
        if np.iscomplexobj(data):
            format = "alm"
        elif data.ndim == 1:
            format = "healpix"
        else:
            raise ValueError(f"a real 2D array of shape {data.shape} is a map on an MW or GL grid: "
                             "say which with format 'mw' or 'gl' (target.format / --format)")
    if format == "alm":
        if not np.iscomplexobj(data):
            raise ValueError(f"coefficients must be complex, got dtype {data.dtype}")
        if data.ndim == 1:
            return _from_packed_alm(data.astype(np.complex128), L)
        return _from_2d_alm(data, L)
    return _from_map(data, L, format)


def read_healpix(path, *, format: str = "auto", field: int = 0, name: str = "path"):
    """The raw HEALPix map (RING, float64; UNSEEN and NaN pixels kept) that ``path`` holds, or
    ``None`` if it holds coefficients or an MW/GL grid (``format`` as for
    :func:`read_coefficients`). For masked targets, whose masked pixels may be unseen."""
    import healpy as hp

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}: file {str(path)!r} does not exist")
    try:
        if _is_fits(path):
            with _fits_errors("readable FITS file"):
                holds_alm = format == "auto" and _fits_holds_alm(path)
            if format in ("alm", "mw", "gl") or holds_alm:
                return None
            data = _read_fits_map(path, field)
        elif path.suffix.lower() == ".npy":
            data = _load_npy(path)
            if format in ("alm", "mw", "gl") or np.iscomplexobj(data) or (
                    format == "auto" and data.ndim != 1):
                return None
        else:
            raise ValueError("unknown file type (expected .npy or .fits)")
        if data.ndim != 1 or not hp.isnpixok(data.size):
            raise ValueError(f"a HEALPix map must be 1D with 12 nside^2 pixels, got shape "
                             f"{data.shape}")
        return np.asarray(data, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{name}: {path}: {err}") from None
    except OSError as err:
        raise ValueError(f"{name}: {path}: cannot read: {err}") from None
