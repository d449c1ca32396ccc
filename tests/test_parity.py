"""Parity with the reference package S2SCAT 0.0.3 (precompute mode): same input, same numbers.

Skipped when ``s2scat`` is not importable; ``.ci/run`` builds a second environment with it
(s2scat 0.0.3 and s2wav 1.0.4 with ``--no-deps``, their real needs and a CPU torch) and runs
this file there. Tolerance: max |ours - ref| / max |ref| < 1e-8 for every statistic.

The default run covers every value of L {8, 16, 32}, N {1..4}, J_min {0, 1, 2}, real and
complex input, and each of the 12 (isotropic, delta_j, normalised) variants twice; the full
grid (72 configurations x 12 variants, about an hour) is marked slow.
"""

import itertools
from functools import lru_cache

import numpy as np
import pytest

import s2scat_core
from conftest import needs_s2scat, random_full, random_half, rel_err

pytestmark = [needs_s2scat, pytest.mark.parity]

VARIANTS = list(itertools.product([False, True], [None, 1, 2], [False, True]))  # iso, dj, norm

DEFAULT = [  # (L, N, J_min, reality, variant indices)
    (8, 1, 0, True, (0, 5, 10)), (8, 4, 1, False, (1, 6, 11)), (16, 2, 2, True, (2, 7, 8)),
    (16, 3, 0, False, (3, 4, 9)), (32, 3, 1, True, (0, 7, 9)), (32, 4, 2, False, (2, 5, 11)),
    (16, 4, 0, True, (1, 3, 8)), (32, 1, 0, False, (4, 6, 10)),
]
FULL = [(L, N, J_min, reality, tuple(range(len(VARIANTS))))
        for L, N, J_min, reality in itertools.product([8, 16, 32], [1, 2, 3, 4], [0, 1, 2],
                                                      [True, False])]


@lru_cache(maxsize=2)
def reference_config(L, N, J_min, reality):
    import s2scat

    return s2scat.configure(L, N, J_min, reality, recursive=False)


def check(L, N, J_min, reality, variants):
    import jax.numpy as jnp
    import s2scat

    flm = random_half(L, seed=L + N) if reality else random_full(L, seed=L + N)
    config = reference_config(L, N, J_min, reality)
    ref_norm = s2scat.compute_norm(jnp.asarray(flm), L, N, J_min, reality, config, False)
    op = s2scat_core.build(L, N, J_min, reality=reality)
    norm = op.norm(flm)
    assert rel_err(norm, np.stack([np.asarray(n) for n in ref_norm])) < 1e-8
    for index in variants:
        isotropic, delta_j, normalised = VARIANTS[index]
        ref = s2scat.scatter(jnp.asarray(flm), L, N, J_min, reality, config,
                             ref_norm if normalised else None, False, isotropic, delta_j)
        ours = s2scat_core.build(L, N, J_min, reality=reality, isotropic=isotropic,
                                 delta_j=delta_j).scatter(flm, norm if normalised else None)
        for name, a, b in zip(ours._fields, ours, ref):
            b = np.asarray(b)
            assert np.abs(b.imag).max() <= 1e-12 * max(np.abs(b).max(), 1.0)  # S2SCAT's var is complex
            assert a.shape == b.shape, (name, isotropic, delta_j, normalised)
            assert rel_err(a, b.real) < 1e-8, (name, isotropic, delta_j, normalised)


@pytest.mark.parametrize("L, N, J_min, reality, variants", DEFAULT)
def test_parity_with_s2scat(L, N, J_min, reality, variants):
    check(L, N, J_min, reality, variants)


@pytest.mark.slow
@pytest.mark.parametrize("L, N, J_min, reality, variants", FULL)
def test_parity_with_s2scat_full_grid(L, N, J_min, reality, variants):
    check(L, N, J_min, reality, variants)
