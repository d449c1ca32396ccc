"""Backends: Wigner-d tables, each SHT against s2fft, and the two backends against each other."""

import jax.numpy as jnp
import numpy as np
import pytest

import s2fft
import s2scat_core
from s2scat_core import transforms
from s2scat_core.transforms import wigner_d
from conftest import random_full, random_half, rel_err


@pytest.mark.parametrize("L", [8, 33])
@pytest.mark.parametrize("spin", [0, 1, -2, 3])
def test_wigner_d_tables_equal_s2fft_kernels(L, spin):
    from s2fft.precompute_transforms.construct import spin_spherical_kernel_jax

    ref = np.asarray(spin_spherical_kernel_jax(L, spin, False, "gl", forward=False))
    d = wigner_d.table(L, -spin, transforms.gl_thetas(L))
    ours = d * np.sqrt((2 * np.arange(L) + 1) / (4 * np.pi))[None, :, None]
    assert rel_err(ours, ref) < 1e-12


def test_wigner_d_closed_forms():
    theta = np.array([0.3, 1.1, 2.9])
    d = wigner_d.table(4, 0, theta)
    np.testing.assert_allclose(d[:, 1, 3], np.cos(theta), atol=1e-15)  # d^1_00
    np.testing.assert_allclose(d[:, 2, 3], (3 * np.cos(theta) ** 2 - 1) / 2, atol=1e-15)
    d1 = wigner_d.table(3, 1, theta)
    np.testing.assert_allclose(d1[:, 1, 2 + 1], (1 + np.cos(theta)) / 2, atol=1e-15)  # d^1_11
    np.testing.assert_allclose(d1[:, 1, 2 - 1], (1 - np.cos(theta)) / 2, atol=1e-15)  # d^1_-11
    np.testing.assert_allclose(d1[:, 1, 2], np.sin(theta) / np.sqrt(2), atol=1e-15)  # d^1_01


@pytest.mark.parametrize("mode", ["precompute", "recursive"])
def test_backend_transforms_equal_s2fft(mode):
    L = 12
    backend = transforms.get(mode)([L], [0, 1, -2])
    for spin in (0, 1, -2):
        alm = random_full(L, seed=spin + 5)
        alm[: abs(spin)] = 0
        ref = s2fft.inverse(alm, L, spin=spin, sampling="gl", method="numpy")
        assert rel_err(backend.synthesis(alm, L, spin), ref) < 1e-12
    half = random_half(L, seed=2)
    f = np.real(s2fft.inverse(np.asarray(transforms.expand_half(half)), L, sampling="gl",
                              method="numpy"))
    assert rel_err(backend.synthesis_real(half, L), f) < 1e-12
    assert rel_err(backend.analysis_real(f, L), half) < 1e-12
    batch = np.stack([f, -2 * f])
    assert rel_err(backend.analysis_real(batch, L)[1], -2 * half) < 1e-12


@pytest.mark.parametrize("reality, L, N, J_min, delta_j, isotropic", [
    (True, 16, 3, 0, None, False),
    (False, 12, 2, 1, 1, True),
    pytest.param(False, 16, 3, 0, None, False, marks=pytest.mark.slow),
    pytest.param(True, 12, 2, 1, 1, True, marks=pytest.mark.slow),
    pytest.param(True, 16, 4, 0, 2, False, marks=pytest.mark.slow),
    pytest.param(False, 16, 4, 0, 2, False, marks=pytest.mark.slow),
    pytest.param(True, 24, 1, 2, None, True, marks=pytest.mark.slow),
])
def test_precompute_and_recursive_agree(reality, L, N, J_min, delta_j, isotropic):
    flm = random_half(L, seed=1) if reality else random_full(L, seed=1)
    kw = dict(reality=reality, delta_j=delta_j, isotropic=isotropic)
    fast = s2scat_core.build(L, N, J_min, mode="precompute", **kw)
    slow = s2scat_core.build(L, N, J_min, mode="recursive", **kw)
    norm = fast.norm(flm)
    assert rel_err(slow.norm(flm), norm) < 1e-10
    for a, b in zip(slow.scatter(flm, norm), fast.scatter(flm, norm)):
        assert rel_err(a, b) < 1e-10


def test_unknown_mode_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="mode must be one of .*precompute"):
        s2scat_core.build(8, 2, mode="fast")


def test_gl_grid_equals_s2fft():
    from s2fft.sampling.s2_samples import thetas
    from s2fft.utils.quadrature import quad_weights_gl

    for L in (2, 17, 64):
        np.testing.assert_allclose(transforms.gl_thetas(L), thetas(L, "gl"), rtol=0, atol=1e-14)
        np.testing.assert_allclose(transforms.gl_weights(L), quad_weights_gl(L), rtol=1e-13)
        assert np.isclose(transforms.gl_weights(L).sum() * (2 * L - 1), 4 * np.pi)


@pytest.mark.parametrize("mode", ["precompute", "recursive"])
def test_fourier_outputs_are_the_ffts_of_the_maps(mode):
    """A backend's ring Fourier coefficients equal the generic FFT of its maps (base class)."""
    from s2scat_core.transforms.base import SphericalTransforms

    L, spin = 10, -2
    backend = transforms.get(mode)([L], [spin])
    alm = jnp.asarray(random_full(L, 3))
    half = jnp.asarray(random_half(L, 4))
    assert rel_err(backend.synthesis_fourier(alm, L, spin),
                   SphericalTransforms.synthesis_fourier(backend, alm, L, spin)) < 1e-13
    assert rel_err(backend.synthesis_real_fourier(half, L),
                   SphericalTransforms.synthesis_real_fourier(backend, half, L)) < 1e-13
