"""Masked statistics: full mask = unmasked, weighted averages by hand, rotation, gradients,
errors (s2scat_core.masks and op.scatter(..., mask=))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import s2scat_core
from s2scat_core import harmonics, masks
from s2scat_core.transforms import directional
from conftest import random_full, random_half, rel_err
from test_scattering import lognormal_half


def grid_vectors(op):
    theta, phi = op.grid()
    T, P = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], axis=-1)


def cap(op, centre, radius=60.0, ramp=10.0):
    """A survey cap of ``radius`` degrees about ``centre``, with a linear edge ``ramp`` wide."""
    angle = np.degrees(np.arccos(np.clip(grid_vectors(op) @ centre, -1, 1)))
    return np.clip((radius - angle) / ramp + 0.5, 0.0, 1.0)


def band(op, latitude=20.0):
    """A galactic-plane-like cut: 0 for |latitude| < ``latitude`` degrees."""
    theta, _ = op.grid()
    lat = 90 - np.degrees(theta)
    return np.repeat((np.abs(lat) >= latitude).astype(float)[:, None], 2 * op.config.L - 1, 1)


@pytest.mark.parametrize("mode", ["precompute", "recursive", "ducc"])
@pytest.mark.parametrize("reality, same_scale", [(True, False), (True, True), (False, False)])
def test_full_mask_gives_the_unmasked_numbers(mode, reality, same_scale):
    L, N = 16, 3
    op = s2scat_core.build(L, N, 1, mode=mode, reality=reality, same_scale=same_scale)
    x = lognormal_half(L) if reality else random_full(L, seed=3)
    ones = np.ones((L, 2 * L - 1))
    norm = op.norm(x)
    assert rel_err(op.norm(x, mask=ones), norm) < 1e-12
    prepared = op.mask(ones)
    for masked, plain in zip(op.scatter(x, norm, mask=prepared), op.scatter(x, norm)):
        assert rel_err(masked, plain) < 1e-12


def test_weights_sum_to_4pi_and_erode_towards_the_edge():
    L = 32
    op = s2scat_core.build(L, 3, 2)
    w = band(op)
    prepared = op.mask(w)
    for omega in (prepared.field,) + prepared.scales:
        assert np.isclose(float(np.sum(omega)), 4 * np.pi, rtol=1e-12)
        assert np.all(np.asarray(omega) >= 0)
    # the mask itself for mean and variance: zero exactly where masked
    assert np.all(np.asarray(prepared.field)[w == 0] == 0)
    # at each scale the observed sky shrinks as the scale grows (coarser: wider erosion)
    fractions = [masks.observed_fraction(masks.eroded(w, j, op.config.bandlimit(j), 1.0))
                 for j in op.config.scales]
    assert all(a < b for a, b in zip(fractions, fractions[1:]))
    assert fractions[-1] < masks.observed_fraction(w) - 0.01
    # a straight-ish edge: the weight follows erf(d / (sqrt 2 sigma)) inside the latitude cut,
    # d from the grid's edge (half-way between the last masked and the first observed ring)
    j = op.config.J - 2
    Lj = op.config.bandlimit(j)
    eroded = masks.eroded(w, j, Lj, 1.0)
    lat = 90 - np.degrees(s2scat_core.transforms.gl_thetas(L))
    edge = 0.5 * (np.abs(lat)[w[:, 0] == 0].max() + np.abs(lat)[w[:, 0] == 1].min())
    theta = s2scat_core.transforms.gl_thetas(Lj)
    d = np.abs(90 - np.degrees(theta)) - edge  # degrees inside the observed region
    sigma = np.degrees(masks.scale_width(j))
    from math import erf
    inside = (d > 0.5 * sigma) & (d < 3 * sigma)
    expected = np.array([erf(x / (np.sqrt(2) * sigma)) for x in d[inside]])
    assert np.abs(eroded[inside, 0] - expected).max() < 0.12
    assert np.all(eroded[d < -0.5 * sigma] < 1e-3)


def test_masked_statistics_are_weighted_sphere_averages_of_the_maps():
    """Each masked entry recomputed by hand from wavelet maps and the pixel weights."""
    L, N, J_min = 16, 2, 2
    op = s2scat_core.build(L, N, J_min, same_scale=True)
    c = op.config
    half = jnp.asarray(lognormal_half(L, seed=2))
    w = cap(op, np.array([0.6, 0.0, 0.8]), radius=80.0)
    prepared = op.mask(w)
    out = op.scatter(half, mask=prepared)
    omega = dict(zip(c.scales, prepared.scales))
    hs = [op.weights[str(j)] for j in c.scales]
    W = dict(zip(c.scales, directional.analysis_scales(op.backend, [half] * len(hs), hs, N, True)))
    f = harmonics.to_map(harmonics.full_from_half(np.asarray(half)), "gl")
    q = np.asarray(prepared.field)
    mean = np.sum(q * f) / (4 * np.pi)
    assert np.isclose(out.mean, abs(mean), rtol=1e-10)
    assert np.isclose(out.var, np.sum(q * f * f) / (4 * np.pi) - mean**2, rtol=1e-10)
    lab = op.labels()
    for i, (j, k) in enumerate(lab["S1"]):
        wmap = np.asarray(W[int(j)][int(k)])
        assert np.isclose(out.S1[i], np.sum(omega[int(j)] * np.abs(wmap)) / (4 * np.pi), rtol=1e-10)
        assert np.isclose(out.S2[i], np.sum(omega[int(j)] * wmap**2) / (4 * np.pi), rtol=1e-10)

    def second(j1, j2, k2):
        mlm = op.backend.analysis_real(jnp.abs(W[j2][k2]), c.bandlimit(j2), c.bandlimit(j1))
        return np.asarray(directional.analysis(op.backend, mlm, op.weights[str(j1)], N, real=True))

    rng = np.random.default_rng(1)
    for i in rng.choice(len(lab["S3"]), 10, replace=False):
        j1, j2, k2, k1 = (int(v) for v in lab["S3"][i])
        ref = np.sum(omega[j1] * second(j1, j2, k2)[k1] * np.asarray(W[j1][k1]))
        assert np.isclose(out.S3[i], ref, rtol=1e-10, atol=1e-14)
    for i in rng.choice(len(lab["S4"]), 10, replace=False):
        j1, j2, j3, k2, k3, k1 = (int(v) for v in lab["S4"][i])
        ref = np.sum(omega[j1] * second(j1, j2, k2)[k1] * second(j1, j3, k3)[k1])
        assert np.isclose(out.S4[i], ref, rtol=1e-10, atol=1e-14)


def test_backends_agree_on_masked_statistics_and_batches():
    L = 16
    x = np.stack([lognormal_half(L, seed=s) for s in (1, 2)])
    outs = {}
    for mode in ("precompute", "ducc"):
        op = s2scat_core.build(L, 3, 1, mode=mode)
        w = band(op, 25.0)
        outs[mode] = op.scatter(x, op.norm(x[0], mask=w), mask=w)
        single = op.scatter(x[1], op.norm(x[0], mask=w), mask=w)
        for a, b in zip(outs[mode], single):
            assert rel_err(a[1], b) < 1e-12
    for a, b in zip(outs["ducc"], outs["precompute"]):
        assert rel_err(a, b) < 1e-10


def rotate_vector(op, c, rotation):
    """Where s2fft's ``rotate_flms(., rotation)`` sends the direction ``c``: the rotated dipole
    ``c . x``, fitted back to a vector."""
    from s2fft.utils.rotation import rotate_flms

    L = op.config.L
    X = grid_vectors(op)
    f = harmonics.from_map(X @ c, L, "gl")
    g = harmonics.to_map(np.asarray(rotate_flms(jnp.asarray(f), L, rotation)), "gl")
    v = np.linalg.lstsq(X.reshape(-1, 3), g.ravel(), rcond=None)[0]
    return v / np.linalg.norm(v)


def test_rotating_field_and_mask_together_leaves_isotropic_statistics_unchanged():
    """Rotation invariance of the masked statistics, within the masking error.

    Field rotated exactly in harmonic space (s2fft), the cap's centre moved by the same
    rotation. Unnormalised, isotropic S3 and S4, S1 and S2 summed over directions. Measured
    (L = 32 and 64, two rotations): mean 0.3 %, var 0.8 %; S1, S2 direction sums 2-5 %
    (6.9 % at the coarsest scale, an 8 x 15 grid), S3 and S4 4-9 %, against 0 (S2), 0.5-2.6 %
    (S1) and 2-8 % (S3, S4) unmasked: the weights are not band-limited, so their products with
    the maps carry a grid quadrature error, largest on the coarsest grids. Bounds: 2 % for the
    mean and variance, 10 % for the S1/S2 sums, 15 % for S3/S4 (the unmasked bar).
    """
    from s2fft.utils.rotation import rotate_flms

    L, N = 32, 3
    op = s2scat_core.build(L, N, 2, isotropic=True)
    flm = harmonics.full_from_half(lognormal_half(L, seed=3))
    north = np.array([0.0, 0.0, 1.0])
    base = op.scatter(flm, mask=cap(op, north))
    K = 2 * N - 1
    for rotation in [(0.3, 0.9, -0.4), (1.1, 2.0, 0.5)]:
        rotated = np.asarray(rotate_flms(jnp.asarray(flm), L, rotation))
        out = op.scatter(rotated, mask=cap(op, rotate_vector(op, north, rotation)))
        for name in ("mean", "var"):
            assert rel_err(getattr(out, name), getattr(base, name)) < 0.02, name
        for name in ("S1", "S2"):
            sums = [np.asarray(getattr(o, name)).reshape(-1, K).sum(1) for o in (out, base)]
            assert rel_err(*sums) < 0.10, name
        for name in ("S3", "S4"):
            assert rel_err(getattr(out, name), getattr(base, name)) < 0.15, name
        # and the unrotated mask would not do: the statistics see where the sky is observed
        moved = op.scatter(rotated, mask=cap(op, north))
        assert rel_err(moved.var, base.var) > 2 * rel_err(out.var, base.var)


@pytest.mark.parametrize("mode", ["precompute", "ducc"])
def test_gradients_through_the_mask(mode):
    L, N = 8, 2
    op = s2scat_core.build(L, N, 1, mode=mode, same_scale=True)
    x = (jnp.asarray(random_half(L, seed=5)) + 0.3) * np.tril(np.ones((L, L)))
    w = cap(op, np.array([0.0, 0.6, 0.8]), radius=100.0, ramp=40.0)
    prepared = op.mask(w)
    norm = op.norm(random_half(L, seed=9), mask=prepared)
    check_grads(_masked_sum(op, norm, prepared), (x,), order=1, modes=["rev"], atol=1e-6,
                rtol=1e-6)
    # in the weights themselves (away from 0, where the erosion clips)
    omegas = prepared._replace(field=prepared.field + 0.05,
                               scales=tuple(o + 0.05 for o in prepared.scales))

    def in_weights(field, *scales):
        return _masked_sum(op, norm, masks.MaskWeights(field, scales))(x)

    check_grads(in_weights, (omegas.field, *omegas.scales), order=1, modes=["rev"], atol=1e-6,
                rtol=1e-6)


def _masked_sum(op, norm, prepared):
    rng = np.random.default_rng(0)
    weights = [jnp.asarray(rng.standard_normal(n)) for n in op.counts.values()]

    def f(x):
        out = op.scatter(x, norm, mask=prepared)
        return sum(jnp.sum(w * jnp.ravel(s)) for w, s in zip(weights, out))
    return f


def test_prepared_mask_works_inside_jit_without_retracing():
    L = 8
    op = s2scat_core.build(L, 2)
    prepared = op.mask(band(op, 30.0))
    loss = jax.jit(lambda op, x, m: jnp.sum(op.scatter(x, mask=m).S2))
    x = random_half(L, seed=4)
    assert np.isclose(loss(op, x, prepared), np.sum(op.scatter(x, mask=prepared).S2), rtol=1e-12)
    with pytest.raises(ValueError, match="prepare it outside jit with op.mask"):
        jax.jit(lambda x, w: op.scatter(x, mask=w).S2)(x, band(op, 30.0))


@pytest.mark.parametrize("mask, match", [
    (np.ones((8, 8)), r"mask must have shape \(8, 15\) \(the GL grid of L=8"),
    (np.full((8, 15), 1.5), r"mask values must lie in \[0, 1\], got \[1.5, 1.5\]"),
    (-np.ones((8, 15)), r"mask values must lie in \[0, 1\]"),
    (np.zeros((8, 15)), "mask is zero everywhere: no observed sky"),
    (np.full((8, 15), np.nan), "mask must be finite, got 120 non-finite"),
    (np.ones((8, 15)) * 1j, "mask must be real"),
    ("mask.fits", r"mask must have shape"),
])
def test_bad_masks(mask, match):
    op = s2scat_core.build(8, 2)
    with pytest.raises(ValueError, match=match):
        op.scatter(random_half(8), mask=mask)


def test_erosion_that_leaves_no_sky_names_the_scale_and_other_operators_weights_are_refused():
    op = s2scat_core.build(32, 3, 1)
    small = cap(op, np.array([0.0, 0.0, 1.0]), radius=30.0, ramp=1.0)
    with pytest.raises(ValueError, match=r"eroding it at scale j=1 .* raise J_min"):
        op.mask(small)
    with pytest.raises(ValueError, match="apodisation must be a number > 0"):
        op.mask(np.ones((32, 63)), apodisation=0)
    other = s2scat_core.build(16, 3, 1).mask(np.ones((16, 31)))
    with pytest.raises(ValueError, match="prepared for another operator"):
        op.scatter(random_half(32), mask=other)
