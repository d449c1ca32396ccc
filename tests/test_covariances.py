"""The statistics' building blocks: Parseval over rings, the Gram matrix and its VJP, and S3/S4
from ring Fourier coefficients against sums over pixels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from s2scat_core import covariances as cov
from s2scat_core import transforms
from s2scat_core.transforms.base import gl_weights, ring_fourier_pairs, ring_weights
from conftest import random_half, rel_err


def real_maps(L, count, seed=0):
    backend = transforms.get("precompute")([L], [])
    halves = np.stack([random_half(L, seed + i) for i in range(count)])
    return np.asarray(backend.synthesis_real(halves, L))  # (count, L, 2L-1), band-limited


def ring_pairs(maps):
    L = maps.shape[-2]
    F = jnp.fft.rfft(maps, axis=-1) / (2 * L - 1)
    return jnp.stack([F.real, F.imag], axis=-1)


def test_ring_weights_turn_the_sphere_integral_into_a_dot_product():
    L = 11
    u, v = real_maps(L, 2)
    q = jnp.asarray(gl_weights(L))
    pixels = np.sum(np.asarray(q)[:, None] * u * v)
    w = ring_weights(q) ** 2
    assert rel_err(jnp.sum(ring_pairs(u) * w * ring_pairs(v)), pixels) < 1e-13
    assert float(ring_weights(q)[0, 0, 1]) == 0.0  # Im F[t, 0] carries nothing
    assert np.allclose(ring_weights(np.asarray(q)), ring_weights(q), rtol=1e-15)  # NumPy path


def test_s2_from_ring_pairs_equals_the_pixel_sum():
    L = 11
    q = jnp.asarray(gl_weights(L))
    w = jnp.asarray(real_maps(L, 3, seed=5))
    assert rel_err(cov.s2_fourier(ring_fourier_pairs(w)), cov.s2(w, q)) < 1e-13


@pytest.mark.parametrize("stacked", [False, True])
def test_gram_and_its_hand_written_vjp(stacked):
    rows = jnp.asarray(np.random.default_rng(0).standard_normal((3, 4, 50)))
    arg = rows if stacked else list(rows)
    assert rel_err(cov.gram(arg), jnp.einsum("kix,kjx->kij", rows, rows)) < 1e-14
    check_grads(cov.gram, (arg,), order=1, modes=["rev"])


@pytest.mark.parametrize("stack_below", [0, 1 << 30], ids=["list", "stacked"])
def test_s3_s4_from_ring_coefficients_equal_pixel_sums(stack_below):
    L, A, K = 9, 2, 3
    q = jnp.asarray(gl_weights(L))
    maps = real_maps(L, A * K * K, seed=3).reshape(A, K, K, L, 2 * L - 1)  # N[a, k2, k1]
    w = real_maps(L, K, seed=40)  # W[k1]
    second = jnp.moveaxis(ring_pairs(maps), 2, 0) * ring_weights(q)  # (K1, A, K2, L, L, 2)
    y = ring_fourier_pairs(jnp.asarray(w))
    assert rel_err(y, ring_pairs(w) * ring_weights(q)) < 1e-14
    rows = cov.as_rows(tuple(second), stack_below)
    assert isinstance(rows, list) == (stack_below == 0)
    qn = np.asarray(q)[:, None]
    s3 = np.einsum("akctp,ctp->akc", maps * qn, w)
    s4 = np.einsum("akctp,bjctp->abkjc", maps * qn, maps)
    assert rel_err(cov.s3(rows, y, A), s3) < 1e-13
    assert rel_err(cov.s4(rows, A), s4) < 1e-13


@pytest.mark.parametrize("A", [0, 2])
def test_scale_statistics_from_mixed_components_equal_those_of_the_mixed_directions(A):
    """A scale's layers given by the Gram matrix of their components and a mixing matrix
    (``base.Mixed``) give the S2, S3 and S4 of the directions they mix to (``base.Layers``),
    and the same gradients."""
    from s2scat_core.transforms.base import Layers, Mixed

    K2, C, K1, L = 3, 2, 3, 5
    rng = np.random.default_rng(7)
    second = jnp.asarray(rng.standard_normal((A, K2, C, L, L, 2)))
    first = jnp.asarray(rng.standard_normal((C, L, L, 2)))
    mixing = rng.standard_normal((K1, C))

    def stats(second, first, mixed):
        if mixed:
            rows = jnp.concatenate([second.reshape((-1, L, L, 2)), first]).reshape(-1, L * L * 2)
            out = cov.scale_statistics(Mixed(rows @ rows.T, mixing), A)
        else:
            directions = tuple(jnp.einsum("kc,abcxyz->kabxyz", mixing, second)) if A else None
            out = cov.scale_statistics(Layers(jnp.einsum("kc,cxyz->kxyz", mixing, first),
                                              directions), A)
        assert (out[1] is None) == (out[2] is None) == (A == 0)
        return jnp.concatenate([s.ravel() for s in out if s is not None])

    assert rel_err(stats(second, first, True), stats(second, first, False)) < 1e-13
    ct = jnp.asarray(rng.standard_normal(stats(second, first, False).shape))
    grads = [jax.vjp(lambda p, q: stats(p, q, mixed), second, first)[1](ct)
             for mixed in (True, False)]
    for a, b in zip(*grads):
        assert a.shape == b.shape and (a.size == 0 or rel_err(a, b) < 1e-13)
    check_grads(lambda p, q: stats(p, q, True), (second, first), order=1, modes=["rev"])
