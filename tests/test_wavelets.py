"""Wavelet filters: their own identities, and equality with s2wav 1.0.4 where installed."""

import numpy as np
import pytest

from s2scat_core import wavelets
from conftest import needs_s2wav


@pytest.mark.parametrize("L, J", [(2, 1), (3, 2), (4, 2), (5, 3), (16, 4), (17, 5), (64, 6), (100, 7)])
def test_j_max_is_ceil_log2(L, J):
    assert wavelets.j_max(L) == J


def test_scale_bandlimits_are_dyadic_and_capped():
    assert [wavelets.scale_bandlimit(64, j) for j in range(7)] == [4, 4, 8, 16, 32, 64, 64]
    assert [wavelets.scale_lower(j) for j in range(5)] == [1, 1, 2, 4, 8]


@pytest.mark.parametrize("L, N", [(8, 1), (16, 2), (32, 3), (33, 4), (64, 5)])
def test_admissibility_tiles_the_harmonic_line(L, N):
    """4 pi/(2l+1) phi_l^2 + 8 pi^2/(2l+1) sum_{j,n} |psi_jln|^2 = 1 for every l."""
    psi, phi = wavelets.filters(L, N)
    ell = np.arange(L)
    total = 4 * np.pi / (2 * ell + 1) * phi**2
    total += 8 * np.pi**2 / (2 * ell + 1) * np.sum(np.abs(psi) ** 2, axis=(0, 2))
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("N", [1, 2, 3, 4, 7])
def test_directional_component_is_normalised_with_the_right_parity(N):
    L = 20
    s = wavelets.tiling_direction(L, N)
    np.testing.assert_allclose(np.sum(np.abs(s[1:]) ** 2, axis=1), 1.0, atol=1e-14)
    m = np.arange(-(L - 1), L)
    support = np.abs(s).sum(axis=0) > 0
    assert set(m[support]) == set(wavelets.directions(N)) & set(range(-(L - 1), L))
    assert np.all(s[0] == 0)


def test_wavelets_live_on_their_dyadic_band():
    L = 64
    psi, _ = wavelets.filters(L, 3)
    ell = np.arange(L)
    for j in range(wavelets.j_max(L) + 1):
        support = ell[np.abs(psi[j]).sum(axis=1) > 0]
        assert support.min() > 2 ** (j - 1) and support.max() < 2 ** (j + 1)


@needs_s2wav
@pytest.mark.parametrize("L, N, J_min", [(8, 1, 0), (16, 3, 1), (32, 4, 2), (24, 2, 0)])
def test_filters_equal_s2wav(L, N, J_min):
    import s2wav

    ref_psi, ref_phi = s2wav.filters.filters_directional_vectorised(L, N, J_min)
    psi, phi = wavelets.filters(L, N, J_min)
    # Vectorised trapezium sums round differently from s2wav's scalar loop: ~1e-14 absolute.
    np.testing.assert_allclose(psi, ref_psi, rtol=0, atol=1e-13)
    np.testing.assert_allclose(phi, ref_phi, rtol=0, atol=1e-13)
    for j in range(J_min, wavelets.j_max(L) + 1):
        Lj, Nj, L0j = s2wav.samples.LN_j(L, j, N, 2.0, True)
        assert (Lj, Nj, L0j) == (wavelets.scale_bandlimit(L, j), wavelets.scale_directions(L, j, N),
                                 wavelets.scale_lower(j))
