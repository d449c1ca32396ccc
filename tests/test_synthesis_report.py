"""Report numbers: Minkowski functional estimator on exact cases, metrics of identical fields,
and the quality bar on the default experiment at small L."""

import healpy as hp
import numpy as np
import pytest
from s2scat_core import harmonics

from synthesis import config as cfg
from synthesis import minkowski, report
from synthesis.run import run_experiment
from synthesis.targets import demo, standardise


def test_minkowski_functionals_of_a_cap():
    nside = 128
    th, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    flm = harmonics.from_map(np.cos(th), 4, "healpix")
    nu = np.linspace(-0.8, 0.8, 17)
    v = minkowski.functionals(flm, nu, nside=nside)
    assert np.allclose(v[0], (1 - nu) / 2, atol=5e-3)  # pixel rings align with the contours
    assert np.allclose(v[1], np.sqrt(1 - nu**2) / 8, rtol=0.05)
    keep = np.abs(nu) > 0.1
    assert np.allclose(v[2][keep], nu[keep] / (4 * np.pi), rtol=0.05)


def test_minkowski_curvature_sign_with_a_traceless_hessian():
    """u = cos^2(theta): caps around both poles; eth^2 u != 0 tests the spin-2 sign."""
    nside = 64
    th, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    flm = harmonics.from_map(np.cos(th) ** 2, 6, "healpix")
    nu = np.array([0.45, 0.5, 0.55, 0.6, 0.65])
    v = minkowski.functionals(flm, nu, nside=nside)
    # two caps of cos(theta_0) = sqrt(nu): V2 = 2 cos(theta_0) / (4 pi); the contours follow
    # HEALPix rings, so single thresholds alias (+-20%) and their mean is compared
    assert np.all(v[2] > 0)
    assert np.isclose(v[2].mean(), np.mean(2 * np.sqrt(nu) / (4 * np.pi)), rtol=0.05)


def test_metrics_of_the_target_against_itself():
    t = standardise(demo.lognormal(16, seed=1))
    data = report.compute(t, np.stack([t, t]), thresholds=9, J_min=1)
    m = report.compute_metrics(data, history=[1.0, 1e-4])
    assert m["cl"]["rel_error"] < 1e-12 and m["pdf"]["wasserstein1"] < 1e-12
    assert m["minkowski"]["distance_mean"] < 1e-12 and m["pdf"]["skewness_rel_error"] < 1e-12
    assert m["criteria"] == {"cl_within_10pct": True, "skewness_within_10pct": True,
                             "loss_reduced_1000x": True}
    assert report.dyadic_bins(4, 32) == [(4, 8), (8, 16), (16, 32)]


@pytest.fixture(scope="module")
def quickstart_small(tmp_path_factory):
    """The default (quickstart) experiment at L = 32, 300 steps, without frames."""
    exp = cfg.apply_overrides(cfg.Experiment(), [
        "statistics.L=32", "synthesis.steps=300", "render.enabled=false"])
    return run_experiment(exp, tmp_path_factory.mktemp("q32"), progress=False).metrics


def test_quickstart_quality_at_small_L(quickstart_small):
    m = quickstart_small
    assert m["loss"]["ratio"] <= 1e-3
    assert m["cl"]["rel_error"] <= 0.10
    assert m["criteria"]["cl_within_10pct"] and m["criteria"]["loss_reduced_1000x"]
    # With the pixel-PDF term (synthesis.weights.pdf = 1, the default) the samples' skewness
    # is 3.3 % off the target's here and kurtosis 6.9 against 7.0 (without it: 23 %, and
    # 21 % after 1000 steps): the bar is 10 %.
    assert m["criteria"]["skewness_within_10pct"], m["pdf"]["skewness_rel_error"]
    assert abs(m["pdf"]["kurtosis_samples_mean"] / m["pdf"]["kurtosis_target"] - 1) < 0.15


def test_quickstart_meets_every_bar(tmp_path):
    """The default experiment itself (L = 64, 600 steps; about 45 s on 2 cores, mode
    ``auto``: ``ducc`` on a CPU): loss x1e-3, C_l within 10 % and pixel skewness within 10 % of
    the target's (measured: 3.4e-4, 3.4 %, 2.3 %; without the pixel-PDF term 2.5e-4, 5.8 %,
    19.1 %)."""
    exp = cfg.apply_overrides(cfg.Experiment(), ["render.enabled=false"])
    m = run_experiment(exp, tmp_path, progress=False).metrics
    assert m["criteria"] == {"cl_within_10pct": True, "skewness_within_10pct": True,
                             "loss_reduced_1000x": True}, m["pdf"]["skewness_rel_error"]
