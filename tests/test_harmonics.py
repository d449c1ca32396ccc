"""Coefficient layouts and conversions: round trips against s2fft and healpy."""

import numpy as np
import pytest

from s2scat_core import harmonics
from conftest import random_half, rel_err


def test_half_full_round_trip_and_hermitian_symmetry():
    L = 9
    half = random_half(L, seed=3)
    full = np.asarray(harmonics.full_from_half(half))
    assert full.shape == (L, 2 * L - 1)
    np.testing.assert_array_equal(harmonics.half_from_full(full), half)
    for m in range(1, L):
        np.testing.assert_allclose(full[:, L - 1 - m], (-1) ** m * np.conj(full[:, L - 1 + m]))
    assert harmonics.is_hermitian(full)
    full[3, L - 3] += 0.5
    assert not harmonics.is_hermitian(full)


def test_healpy_alm_round_trip_matches_healpy_indexing():
    import healpy as hp

    L = 12
    full = np.asarray(harmonics.full_from_half(random_half(L, seed=4)))
    alm = harmonics.to_healpy_alm(full)
    for ell, m in [(0, 0), (5, 3), (11, 11), (7, 0)]:
        assert alm[hp.Alm.getidx(L - 1, ell, m)] == full[ell, L - 1 + m]
    np.testing.assert_array_equal(harmonics.from_healpy_alm(alm), full)
    np.testing.assert_array_equal(harmonics.from_healpy_alm(alm, L=5), harmonics.truncate(full, 5))


@pytest.mark.parametrize("sampling", ["mw", "gl"])
def test_map_round_trip_mw_gl_with_band_limit_reduction(sampling):
    L0, L = 16, 10
    full = np.asarray(harmonics.full_from_half(random_half(L0, seed=5)))
    f = harmonics.to_map(full, sampling)
    assert f.shape == (L0, 2 * L0 - 1) and np.isrealobj(f)
    assert rel_err(harmonics.from_map(f, L0, sampling), full) < 1e-12
    assert rel_err(harmonics.from_map(f, L, sampling), harmonics.truncate(full, L)) < 1e-12


def test_healpix_round_trip():
    L, nside = 16, 32
    full = np.asarray(harmonics.full_from_half(random_half(L, seed=6)))
    f = harmonics.to_map(full, "healpix", nside=nside)
    assert f.shape == (12 * nside**2,)
    # HEALPix quadrature is not exact; healpy's iterative map2alm gets close.
    assert rel_err(harmonics.from_map(f, L, "healpix"), full) < 1e-6


def test_bad_maps_and_alms_raise_clear_errors():
    with pytest.raises(ValueError, match="sampling"):
        harmonics.from_map(np.zeros((4, 7)), 4, "cube")
    with pytest.raises(ValueError, match="shape"):
        harmonics.from_map(np.zeros((4, 8)), 4, "mw")
    with pytest.raises(ValueError, match="L must be <= 4"):
        harmonics.from_map(np.zeros((4, 7)), 5, "gl")
    with pytest.raises(ValueError, match="finite"):
        harmonics.from_map(np.full((4, 7), np.nan), 4, "gl")
    with pytest.raises(ValueError, match="12 nside"):
        harmonics.from_map(np.zeros(100), 4, "healpix")
    with pytest.raises(ValueError, match="lmax"):
        harmonics.from_healpy_alm(np.zeros(7, complex))
