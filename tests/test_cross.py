"""Cross statistics of two fields: f = g gives the auto statistics, swapping f and g swaps the
orders, by-hand integrals, masks, gradients, errors; and the joint synthesis of a pair."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import s2scat_core
from conftest import random_half, rel_err
from test_scattering import lognormal_half
from synthesis import config as cfg
from synthesis import engine
from synthesis.run import run_experiment
from synthesis.targets import demo, standardise


@pytest.mark.parametrize("mode, isotropic", [("precompute", False), ("ducc", True)])
def test_cross_of_a_field_with_itself_is_its_auto_statistics(mode, isotropic):
    L = 16
    op = s2scat_core.build(L, 3, 1, mode=mode, isotropic=isotropic, same_scale=True)
    f = lognormal_half(L, seed=1)
    norm = op.norm(f)
    auto, cross = op.scatter(f, norm), op.cross(f, f, norm=(norm, norm))
    for a, b in [(cross.var, auto.var), (cross.S2, auto.S2), (cross.S3_fg, auto.S3),
                 (cross.S3_gf, auto.S3), (cross.S4, auto.S4)]:
        assert rel_err(a, b) < 1e-12
    assert {k: np.size(v) for k, v in cross._asdict().items()} == op.cross_counts


def test_swapping_the_fields_swaps_the_orders():
    L = 16
    op = s2scat_core.build(L, 2, 1)
    f, g = lognormal_half(L, seed=1), lognormal_half(L, seed=2)
    nf, ng = op.norm(f), op.norm(g)
    fg, gf = op.cross(f, g, norm=(nf, ng)), op.cross(g, f, norm=(ng, nf))
    assert rel_err(fg.S3_fg, gf.S3_gf) < 1e-14 and rel_err(fg.S3_gf, gf.S3_fg) < 1e-14
    assert rel_err(fg.S2, gf.S2) < 1e-14 and rel_err(fg.var, gf.var) < 1e-14
    lab = op.labels()["S4"]
    key = {tuple(r): i for i, r in enumerate(lab.tolist())}
    swapped = [key[(j1, j3, j2, k3, k2, k1)] for j1, j2, j3, k2, k3, k1 in lab.tolist()]
    assert rel_err(np.asarray(fg.S4)[swapped], gf.S4) < 1e-14
    # the covariance of the maps, by the GL quadrature
    maps = [np.asarray(op.to_map(x)) for x in (f, g)]
    q = s2scat_core.transforms.gl_weights(L)[:, None]
    mean = [np.sum(q * m) / (4 * np.pi) for m in maps]
    assert np.isclose(fg.var, np.sum(q * maps[0] * maps[1]) / (4 * np.pi) - mean[0] * mean[1])


def test_uncorrelated_fields_have_small_cross_and_masks_apply():
    L = 16
    op = s2scat_core.build(L, 3, 2)
    f, g = random_half(L, seed=1, spectrum_slope=2), random_half(L, seed=2, spectrum_slope=2)
    x = op.cross(f, g)
    a = op.scatter(f)
    assert np.abs(np.asarray(x.S2)).max() < 0.5 * np.asarray(a.S2).max()
    ones = np.ones((L, 2 * L - 1))
    for u, v in zip(op.cross(f, g, mask=ones), x):
        assert rel_err(u, v) < 1e-12


def test_cross_gradients_and_errors():
    L = 8
    op = s2scat_core.build(L, 2, 1, same_scale=True)
    f = (jnp.asarray(random_half(L, seed=5)) + 0.3) * np.tril(np.ones((L, L)))
    g = (jnp.asarray(random_half(L, seed=6)) + 0.3) * np.tril(np.ones((L, L)))
    rng = np.random.default_rng(0)
    w = [jnp.asarray(rng.standard_normal(n)) for n in op.cross_counts.values()]

    def total(f, g):
        return sum(jnp.sum(a * b) for a, b in zip(w, op.cross(f, g)))

    check_grads(total, (f, g), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="flm and glm must have the same shape"):
        op.cross(f, np.stack([g, g]))
    with pytest.raises(ValueError, match="norm must be None or a pair"):
        op.cross(f, g, norm=op.norm(f))
    with pytest.raises(ValueError, match="reality=True"):
        zero = np.zeros((L, 2 * L - 1))
        s2scat_core.build(L, 2, reality=False).cross(zero, zero)


def test_joint_synthesis_reproduces_the_pairs_correlation():
    L = 16
    f = standardise(demo.lognormal(L, seed=1))
    g = standardise(demo.lognormal(L, seed=1, sigma=0.3, distance=400.0))
    op = s2scat_core.build(L, 3, 2)

    def corr(a, b):
        return np.corrcoef(np.asarray(op.to_map(a)).ravel(), np.asarray(op.to_map(b)).ravel())[0, 1]

    kw = dict(L=L, N=3, J_min=2, mode="ducc", count=2, steps=40, chunk=20, seed=2)
    pair = engine.synthesize(f, second_flm=g, **kw)
    alone = engine.synthesize(f, second_flm=g, cross_weight=0.0, **kw)
    target = corr(f, g)
    assert target > 0.9
    assert all(abs(corr(a, b) - target) < 0.1 for a, b in zip(pair.samples, pair.second))
    assert all(abs(corr(a, b)) < 0.5 for a, b in zip(alone.samples, alone.second))
    with pytest.raises(ValueError, match="not an ensemble"):
        engine.synthesize(np.stack([f, f]), second_flm=g, **kw)
    with pytest.raises(ValueError, match="second_flm has band-limit 8 < L=16"):
        engine.synthesize(f, second_flm=standardise(demo.lognormal(8, seed=1)), **kw)


def test_a_pair_run_writes_both_fields_and_the_cross_report(tmp_path):
    exp = cfg.Experiment().replace(**{
        "statistics.L": 16, "statistics.J_min": 2, "synthesis.steps": 20, "synthesis.count": 2,
        "render.enabled": False, "report.thresholds": 9, "target.second.source": "filaments"})
    out = run_experiment(exp, tmp_path, progress=False)
    for name in ("samples_second.npz", "report_second.png", "report_cross.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    second = np.load(tmp_path / "samples_second.npz")
    assert second["sample_flm"].shape == (2, 16, 31)
    assert set(out.metrics["cross"]) >= {"r_l_abs_error", "pixel_correlation_target"}
    with pytest.raises(cfg.ConfigError, match="target.second pairs with one target field"):
        exp.replace(**{"target.members": 3})
