"""Real skies in the application: mask files and drawn masks, masked and constrained runs
(inpainting), ensembles, the pixel-PDF term; bad input ends in one line naming the key."""

import json

import healpy as hp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import s2scat_core
from synthesis import config as cfg
from synthesis import engine, loss, targets
from synthesis.cli import main
from synthesis.run import run_experiment
from synthesis.targets import demo, masks, standardise

L = 16
NSIDE = 16


def small(**changes):
    base = {"statistics.L": L, "statistics.J_min": 2, "synthesis.steps": 20,
            "synthesis.count": 2, "synthesis.chunk": 10, "render.every": 10,
            "report.thresholds": 9, "render.enabled": False}
    return cfg.Experiment().replace(**{**base, **changes})


# ------------------------------------------------------------------------------ masks
def test_drawn_masks_agree_on_both_grids_and_have_the_right_area():
    m = masks.draw_healpix("band", 64, latitude=30.0)
    assert np.isclose(masks.observed_fraction(m), 1 - np.sin(np.radians(30)), atol=0.01)
    c = masks.draw_healpix("cap", 64, lon=40.0, lat=-20.0, radius=60.0)
    assert np.isclose(masks.observed_fraction(c), (1 - np.cos(np.radians(60))) / 2, atol=0.01)
    theta, phi = hp.pix2ang(64, hp.ang2pix(64, np.radians(110.0), np.radians(40.0)))
    assert masks.cap(theta, phi, lon=40.0, lat=-20.0, radius=60.0) == 1  # its centre
    # the GL grid version equals the resampled HEALPix one away from the edge
    gl = masks.draw_gl("band", 32, latitude=30.0)
    resampled = masks.on_gl_grid(m, 32)
    assert np.mean(np.abs(gl - resampled) < 1e-9) > 0.85
    assert resampled.min() >= 0 and resampled.max() <= 1


@pytest.mark.parametrize("content, match", [
    (np.ones(100), "12 nside"),
    (np.full(hp.nside2npix(4), 2.0), r"values must lie in \[0, 1\]"),
    (np.zeros(hp.nside2npix(4)), "zero everywhere"),
    (np.where(np.arange(hp.nside2npix(4)) == 3, hp.UNSEEN, 1.0), "unseen"),
    (np.ones((4, 7)), "12 nside"),
])
def test_bad_mask_files_name_the_key(tmp_path, content, match):
    path = tmp_path / "mask.npy"
    np.save(path, content)
    with pytest.raises(ValueError, match=match) as err:
        masks.read(path)
    assert "target.mask" in str(err.value)


def test_mask_file_of_any_nside_and_a_masked_fits_map_with_unseen_pixels(tmp_path):
    """A real-data-like pair: a map whose masked pixels are UNSEEN, and its mask at another
    nside. The unseen pixels are filled, the map standardised over the observed sky."""
    m = demo.lognormal_map(32, seed=3)  # nside 32
    cut = masks.draw_healpix("band", 32, latitude=20.0)
    data = np.where(cut > 0, m, hp.UNSEEN)
    hp.write_map(str(tmp_path / "map.fits"), data, overwrite=True)
    hp.write_map(str(tmp_path / "mask.fits"), masks.draw_healpix("band", 64, latitude=20.0),
                 overwrite=True)
    exp = small(**{"target.source": "file", "target.path": str(tmp_path / "map.fits"),
                   "target.mask": str(tmp_path / "mask.fits")})
    target = targets.load(exp.target, L)
    assert target.mask.shape == (L, 2 * L - 1) and target.mask_map.size == data.size
    f = hp.alm2map(s2scat_core.harmonics.to_healpy_alm(target.flm), 32, lmax=L - 1)
    w = target.mask_map / target.mask_map.sum()
    assert abs(np.sum(w * f)) < 1e-10 and np.isclose(np.sum(w * f * f), 1.0)
    assert "masked (file" in target.description
    # unseen pixels where the mask says observed are refused
    hp.write_map(str(tmp_path / "full.fits"), np.ones(hp.nside2npix(64)), overwrite=True)
    with pytest.raises(ValueError, match="unseen or non-finite pixel.*target.mask is 1"):
        targets.load(exp.replace(**{"target.mask": str(tmp_path / "full.fits")}).target, L)


# ------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def constrained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inpaint")
    exp = small(**{"target.mask": "band", "synthesis.constrained": True})
    return run_experiment(exp, out, progress=False), out


def test_constrained_samples_equal_the_target_on_observed_pixels_exactly(constrained_run):
    outcome, out = constrained_run
    d = np.load(out / "samples.npz")
    observed = d["mask_map"] == 1
    assert observed.mean() > 0.5
    for s in d["sample_maps"]:
        assert np.array_equal(s[observed], d["target_map"][observed])
        assert np.abs(s[~observed] - d["target_map"][~observed]).max() > 0.1  # synthesised
    assert d["free_flm"].shape == d["sample_flm"].shape == (2, L, 2 * L - 1)
    m = outcome.metrics
    assert m["loss"]["ratio"] < 0.5 and m["constrained"] is True
    assert "masked region" in m["pdf"]["compared"]


def test_constrained_completion_is_the_target_on_the_grid_where_observed():
    t = standardise(demo.lognormal(L, seed=1))
    op = s2scat_core.build(L, 3, 2)
    grid = masks.draw_gl("cap", L, radius=100.0)
    x = jnp.asarray(standardise(demo.lognormal(L, seed=5)))[:, L - 1:]
    from synthesis import params
    _, completed = params.complete(op, x, jnp.asarray(grid), op.to_map(t))
    target_map = np.asarray(op.to_map(t))
    assert np.array_equal(np.asarray(completed)[grid == 1], target_map[grid == 1])
    assert np.allclose(np.asarray(completed)[grid == 0], np.asarray(op.to_map(x))[grid == 0])


def test_masked_run_matches_the_observed_sky_statistics(tmp_path):
    exp = small(**{"target.mask": "cap", "target.cap.radius": 120.0, "synthesis.steps": 40})
    outcome = run_experiment(exp, tmp_path, progress=False)
    m = outcome.metrics
    assert m["loss"]["ratio"] < 0.05
    assert m["mask"]["observed_fraction"] == pytest.approx((1 - np.cos(np.radians(120))) / 2,
                                                           abs=0.02)
    assert (tmp_path / "report.png").stat().st_size > 10000


def test_an_ensemble_of_one_is_one_map_and_ensembles_average_their_statistics():
    t = standardise(demo.lognormal(L, seed=1))
    kw = dict(L=L, N=3, J_min=2, mode="ducc", count=2, steps=10, chunk=5, seed=3)
    one = engine.synthesize(t, **kw)
    ensemble_of_one = engine.synthesize(t[None], **kw)
    assert np.array_equal(one.samples, ensemble_of_one.samples)
    assert np.array_equal(one.history, ensemble_of_one.history)
    members = np.stack([standardise(demo.lognormal(L, seed=s)) for s in (1, 2, 3)])
    op = s2scat_core.build(L, 3, 2, same_scale=True)
    norm = np.mean(np.asarray(op.norm(members)), axis=0)
    stats = op.scatter(members, norm=norm)
    weights = loss.entry_weights(stats)
    for v, s in zip(weights, stats):
        assert np.isclose(float(np.mean(v)), 1.0)
        spread = np.asarray(s).reshape(3, -1).var(axis=0, ddof=1)
        if np.mean(spread) > 1e-20:  # 1 / sigma^2 up to the scale
            keep = spread > 1e-6 * np.mean(spread)
            ratio = np.asarray(v)[keep] * spread[keep]
            assert np.allclose(ratio, ratio[0], rtol=1e-10)


def test_config_ensembles_paths_globs_and_members(tmp_path):
    for s in (1, 2, 3):
        np.save(tmp_path / f"m{s}.npy", demo.lognormal_map(16, seed=s))
    (tmp_path / "e.toml").write_text('[target]\nsource = "file"\npaths = ["m*.npy"]\n'
                                     "[statistics]\nL = 16\nJ_min = 2\n")
    exp = cfg.load(tmp_path / "e.toml")
    assert [p.split("/")[-1] for p in exp.target.paths] == ["m1.npy", "m2.npy", "m3.npy"]
    target = targets.load(exp.target, 16)
    assert target.members.shape == (3, 16, 31) and np.array_equal(target.flm, target.members[0])
    demo_ensemble = targets.load(small(**{"target.members": 2}).target, L)
    assert demo_ensemble.members.shape == (2, L, 2 * L - 1)
    np.save(tmp_path / "odd.npy", demo.lognormal_map(64, seed=4))  # nside 64 among nside 32
    with pytest.raises(ValueError, match="target.paths: the maps of an ensemble must share one "
                                         "nside"):
        targets.load(exp.replace(**{"target.paths": [str(tmp_path / "m1.npy"),
                                                     str(tmp_path / "odd.npy")],
                                    "target.mask": "band"}).target, 16)
    (tmp_path / "none.toml").write_text('[target]\nsource = "file"\npaths = ["x*.npy"]\n')
    with pytest.raises(cfg.ConfigError, match="target.paths: 'x\\*.npy' matches no file"):
        cfg.load(tmp_path / "none.toml")


# ------------------------------------------------------------------------------ pixel PDF
def test_pdf_distance_is_w2_and_its_gradient_checks():
    op = s2scat_core.build(L, 2)
    q = s2scat_core.transforms.gl_weights(L)
    t = np.asarray(op.to_map(standardise(demo.lognormal(L, seed=1))))
    pdf = loss.target_pdf(t, q)
    assert float(loss.pdf_distance(jnp.asarray(t), pdf)) < 1e-20
    # a shift by c moves every quantile by c: W2^2 = c^2
    assert np.isclose(float(loss.pdf_distance(jnp.asarray(t + 0.3), pdf)), 0.09, rtol=1e-6)
    # a permutation of the pixels within a ring keeps the distribution
    assert float(loss.pdf_distance(jnp.asarray(np.roll(t, 5, axis=1)), pdf)) < 1e-20
    x = np.asarray(op.to_map(standardise(demo.lognormal(L, seed=7))))
    # the closest two pixel values are 1e-5 apart: a step of 1e-7 keeps every rank
    check_grads(lambda v: loss.pdf_distance(v, pdf), (jnp.asarray(x),), order=1, modes=["rev"],
                atol=1e-6, rtol=1e-6, eps=1e-7)


def test_host_argsort_is_the_stable_permutation_under_jit_and_vmap():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((3, 500))
    v[1, ::7] = 0.25  # ties: NumPy's default sort is not stable, a stable one keeps index order
    v[2, 5] = v[2, 9] = np.nan
    want = np.argsort(v, axis=-1, kind="stable")
    assert np.array_equal(loss._argsort_host(v), want)
    got = jax.jit(jax.vmap(loss.argsort))(jnp.asarray(v))
    assert got.dtype == jnp.int32 and np.array_equal(np.asarray(got), want)
    # what XLA's sort gives, the branch taken off the CPU
    assert np.array_equal(np.asarray(jnp.argsort(jnp.asarray(v), axis=-1)), want)
    # no gradient flows through the permutation; the distance's gradient is checked above
    assert np.all(np.asarray(jax.grad(lambda x: jnp.sum(loss.argsort(x) * x))(jnp.ones(4)))
                  == np.arange(4))


def test_pdf_term_pulls_the_samples_pdf_toward_the_target():
    t = standardise(demo.lognormal(L, seed=1, sigma=1.2))
    kw = dict(L=L, N=3, J_min=2, mode="ducc", count=2, steps=30, chunk=10, seed=1)
    op = s2scat_core.build(L, 3, 2)
    pdf = loss.target_pdf(np.asarray(op.to_map(t)), s2scat_core.transforms.gl_weights(L))
    dist = {}
    for w in (0.0, 10.0):
        r = engine.synthesize(t, pdf_weight=w, **kw)
        dist[w] = np.mean([float(loss.pdf_distance(op.to_map(s), pdf)) for s in r.samples])
    assert dist[10.0] < 0.5 * dist[0.0], dist


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("sets, match", [
    (["synthesis.constrained=true"], "synthesis.constrained = true needs target.mask"),
    (["target.paths=['a.npy']"], "target.paths needs target.source = 'file'"),
    (["target.mask=missing.fits"], "target.mask: file 'missing.fits' does not exist"),
    (["target.mask=band", "target.band.latitude=95"], "target.band.latitude must be <= 89"),
    (["statistics.apodisation=0"], "statistics.apodisation must be >= 0.05"),
    (["synthesis.weights.pdf=-1"], "synthesis.weights.pdf must be >= 0"),
    (["target.members=3", "synthesis.constrained=true", "target.mask=band"],
     "completes one target map"),
    (["target.mask=cap", "target.cap.radius=10", "statistics.L=32"],
     "eroding it at scale j=2 .* raise J_min"),
])
def test_bad_real_sky_input_is_one_line_exit_2(tmp_path, capsys, sets, match):
    args = ["run", "--out", str(tmp_path / "o"), "--quiet", "--set", "render.enabled=false",
            "--set", "synthesis.steps=1"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and __import__("re").search(match, err), err


def test_bad_mask_argument_to_the_engine():
    t = standardise(demo.lognormal(L, seed=1))
    with pytest.raises(ValueError, match="constrained synthesis needs a mask"):
        engine.synthesize(t, L=L, N=3, J_min=2, constrained=True, steps=1)
    with pytest.raises(ValueError, match=r"mask must have shape \(16, 31\)"):
        engine.synthesize(t, L=L, N=3, J_min=2, mask=np.ones((8, 15)), steps=1)
    with pytest.raises(ValueError, match="pdf_weight must be a number >= 0"):
        engine.synthesize(t, L=L, N=3, J_min=2, pdf_weight=float("nan"), steps=1)
    with pytest.raises(ValueError, match="constrained synthesis completes one target"):
        engine.synthesize(np.stack([t, t]), L=L, N=3, J_min=2, mask=np.ones((L, 2 * L - 1)),
                          constrained=True, steps=1)


def test_a_masked_fits_map_and_mask_file_give_inpainted_mocks_from_one_toml(tmp_path, capsys):
    """The user's path: a HEALPix FITS map with UNSEEN masked pixels, its FITS mask, one TOML."""
    m = demo.lognormal_map(16, seed=6)  # nside 32
    cut = masks.draw_healpix("cap", 32, lat=30.0, radius=120.0)
    hp.write_map(str(tmp_path / "sky.fits"), np.where(cut > 0, m, hp.UNSEEN), overwrite=True)
    hp.write_map(str(tmp_path / "sky_mask.fits"), cut, overwrite=True)
    (tmp_path / "mine.toml").write_text(
        '[target]\nsource = "file"\npath = "sky.fits"\nmask = "sky_mask.fits"\n'
        "[statistics]\nL = 16\nJ_min = 2\n"
        "[synthesis]\nconstrained = true\ncount = 2\nsteps = 10\nchunk = 5\n"
        "[render]\nevery = 5\n[report]\nthresholds = 9\n")
    assert main(["run", str(tmp_path / "mine.toml"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    summary = capsys.readouterr().out  # the criterion's skewness: the completed maps'
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["pdf"]
    assert (f"skewness error {metrics['skewness_completed_rel_error']:.1%} (completed maps; "
            f"masked region {metrics['skewness_rel_error']:.1%})") in summary
    d = np.load(tmp_path / "out" / "samples.npz")
    seen = d["mask_map"] == 1
    assert np.array_equal(d["sample_maps"][:, seen], np.broadcast_to(d["target_map"][seen],
                                                                     (2, seen.sum())))
    for name in ("report.png", "synthesis.gif", "metrics.json"):
        assert (tmp_path / "out" / name).is_file()
    # the same map and mask encoded: statistics over the observed sky, one row
    assert main(["encode", str(tmp_path / "sky.fits"), "--mask", str(tmp_path / "sky_mask.fits"),
                 "--L", "16", "--J-min", "2", "--out", str(tmp_path / "stats.npz")]) == 0
    table = np.load(tmp_path / "stats.npz")
    assert table["covariances"].shape[0] == 1 and np.all(np.isfinite(table["covariances"]))
    assert main(["encode", str(tmp_path / "sky.fits"), "--L", "16",
                 "--out", str(tmp_path / "bad.npz")]) == 2  # unseen pixels and no mask
    assert "unseen" in capsys.readouterr().err
