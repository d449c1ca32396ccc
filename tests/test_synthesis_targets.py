"""Target sources: every reader round-trips, demo fields are seeded, errors name the file."""

import healpy as hp
import numpy as np
import pytest
import s2fft
from s2scat_core import harmonics

from synthesis import targets
from synthesis.config import Experiment
from synthesis.targets import demo, files, read_coefficients, standardise

L = 8


@pytest.fixture(scope="module")
def flm():
    """Band-limited (l < 8) real-field coefficients with power at every l >= 1."""
    rng = np.random.default_rng(0)
    half = rng.standard_normal((L, L)) + 1j * rng.standard_normal((L, L))
    half[:, 0] = half[:, 0].real
    half[np.arange(L)[:, None] < np.arange(L)[None, :]] = 0
    return np.asarray(harmonics.full_from_half(half))


def _pad(flm, L0):
    out = np.zeros((L0, 2 * L0 - 1), complex)
    out[:L, L0 - L:L0 - 1 + L] = flm
    return out


def test_healpix_fits_round_trip(flm, tmp_path):
    m = hp.alm2map(harmonics.to_healpy_alm(flm), 16, lmax=L - 1)
    path = tmp_path / "map.fits"
    hp.write_map(str(path), m, dtype=np.float64)
    got = read_coefficients(path, L)
    assert np.allclose(got, flm, atol=1e-6 * np.abs(flm).max())


def test_healpix_npy_round_trip(flm, tmp_path):
    m = hp.alm2map(harmonics.to_healpy_alm(flm), 16, lmax=L - 1)
    np.save(tmp_path / "map.npy", m)
    got = read_coefficients(tmp_path / "map.npy", L)
    assert np.allclose(got, flm, atol=1e-6 * np.abs(flm).max())


@pytest.mark.parametrize("sampling", ["mw", "gl"])
def test_grid_npy_round_trip_at_higher_bandlimit(flm, tmp_path, sampling):
    L0 = 12
    m = np.real(np.asarray(s2fft.inverse(_pad(flm, L0), L0, sampling=sampling, method="jax",
                                         reality=True)))
    np.save(tmp_path / "grid.npy", m)
    got = read_coefficients(tmp_path / "grid.npy", L, format=sampling)
    assert np.allclose(got, flm, atol=1e-9 * np.abs(flm).max())


def test_alm_npy_2d_and_packed_round_trip(flm, tmp_path):
    np.save(tmp_path / "flm.npy", _pad(flm, 10))
    assert np.allclose(read_coefficients(tmp_path / "flm.npy", L), flm)
    np.save(tmp_path / "packed.npy", harmonics.to_healpy_alm(flm))
    assert np.allclose(read_coefficients(tmp_path / "packed.npy", L), flm)


def test_alm_fits_round_trip(flm, tmp_path):
    path = tmp_path / "alm.fits"
    hp.write_alm(str(path), harmonics.to_healpy_alm(_pad(flm, 10)), overwrite=True)
    assert np.allclose(read_coefficients(path, L), flm, atol=1e-12)


def test_written_demo_map_reads_back(tmp_path):
    exp = Experiment()
    m = targets.demo_map(exp.target, 16)
    for name in ("demo.fits", "demo.npy"):
        targets.write_map(m, tmp_path / name)
        got = read_coefficients(tmp_path / name, 16)
        assert np.allclose(got, harmonics.from_map(m, 16, "healpix"), atol=1e-5 * np.abs(got).max())


def test_standardise_zero_mean_unit_variance(flm):
    s = standardise(flm * 3 + 0)
    m = harmonics.to_map(s, "healpix", nside=32)
    assert abs(s[0, L - 1]) == 0
    assert np.isclose(np.sum(np.abs(s) ** 2) / (4 * np.pi), 1.0)
    assert abs(m.mean()) < 1e-3 and np.isclose(m.std(), 1.0, rtol=1e-2)


def test_every_source_goes_through_the_same_standardisation(flm, tmp_path):
    m = hp.alm2map(harmonics.to_healpy_alm(flm), 16, lmax=L - 1)
    np.save(tmp_path / "m.npy", m)
    exp = Experiment().replace(**{"target.source": "file", "target.path": str(tmp_path / "m.npy"),
                                  "statistics.L": L, "statistics.J_min": 1, "statistics.N": 1})
    got = targets.load(exp.target, L).flm
    assert np.allclose(got, standardise(flm), atol=1e-6)


@pytest.mark.parametrize("generator", [demo.lognormal, demo.filaments])
def test_demo_fields_are_seeded(generator):
    a, b, c = generator(16, seed=1), generator(16, seed=1), generator(16, seed=2)
    assert a.shape == (16, 31)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert harmonics.is_hermitian(a)


def test_lognormal_is_positively_skewed():
    m = harmonics.to_map(standardise(demo.lognormal(32, seed=1)), "healpix", nside=32)
    skew = np.mean(m**3) / np.mean(m**2) ** 1.5
    assert skew > 1.0


def test_bbks_spectrum_shape():
    cl = demo.bbks_cl(64)
    assert cl[0] == 0 and cl.max() == 1.0
    assert np.argmax(cl) < 16 and cl[-1] < 0.2


@pytest.mark.parametrize("content, kwargs, match", [
    (None, {}, "does not exist"),
    (np.zeros((4, 7)), {}, "say which with format 'mw' or 'gl'"),
    (np.zeros((4, 7)), {"format": "mw"}, "band-limit L0=4 < L=8"),
    (np.zeros(100), {}, "12 nside"),
    (np.ones((8, 15)) * (1 + 1j), {}, "not those of a real field"),
    (np.array(["a", "b"]), {}, "numeric"),
])
def test_errors_name_the_file(tmp_path, content, kwargs, match):
    path = tmp_path / "bad.npy"
    if content is not None:
        np.save(path, content)
    with pytest.raises(ValueError, match=match) as err:
        read_coefficients(path, L, **kwargs)
    assert "bad.npy" in str(err.value)


def test_unknown_suffix_and_unseen_pixels(tmp_path):
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="unknown file type"):
        read_coefficients(tmp_path / "x.txt", L)
    m = np.zeros(hp.nside2npix(4))
    m[3] = hp.UNSEEN
    np.save(tmp_path / "u.npy", m)
    with pytest.raises(ValueError, match="unseen"):
        read_coefficients(tmp_path / "u.npy", L)
    assert files.FORMATS[0] == "auto"
