"""Shared fixtures: random valid harmonic coefficients and the optional reference package."""

from __future__ import annotations

import gc
import importlib.util
import os

import jax
import numpy as np
import pytest

import s2scat_core  # noqa: F401  (enables float64)


def random_half(L: int, seed: int = 0, spectrum_slope: float = 0.0) -> np.ndarray:
    """``m >= 0`` half ``(L, L)`` of a random real field (zero for m > l, real m = 0)."""
    rng = np.random.default_rng(seed)
    half = (rng.standard_normal((L, L)) + 1j * rng.standard_normal((L, L))) / np.sqrt(2)
    half[:, 0] = rng.standard_normal(L)
    half = np.tril(half)
    ell = np.arange(L)
    return half * ((ell + 1.0) ** (-spectrum_slope / 2))[:, None]


def random_full(L: int, seed: int = 0) -> np.ndarray:
    """``(L, 2L-1)`` coefficients of a random complex field (zero for |m| > l)."""
    rng = np.random.default_rng(seed)
    flm = (rng.standard_normal((L, 2 * L - 1)) + 1j * rng.standard_normal((L, 2 * L - 1))) / np.sqrt(2)
    ell = np.arange(L)[:, None]
    m = np.arange(-(L - 1), L)[None, :]
    return np.where(np.abs(m) <= ell, flm, 0)


def rel_err(a, b) -> float:
    """max |a - b| / max |b|, the tolerance measure used throughout."""
    a, b = np.asarray(a), np.asarray(b)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0))


# In CI's parity environment a missing reference is an error, not a skip.
REQUIRE = os.environ.get("S2SCAT_REQUIRE_REFERENCE") == "1"
HAVE_S2SCAT = REQUIRE or importlib.util.find_spec("s2scat") is not None
HAVE_S2WAV = REQUIRE or importlib.util.find_spec("s2wav") is not None
needs_s2scat = pytest.mark.skipif(
    not HAVE_S2SCAT, reason="reference package s2scat 0.0.3 not importable (CI installs it in a "
    "separate environment: see .ci/run)")
needs_s2wav = pytest.mark.skipif(not HAVE_S2WAV, reason="s2wav 1.0.4 not importable")


@pytest.fixture(scope="session")
def lognormal16():
    """The standardised lognormal demo target at L = 16 (seed 1): small synthesis and frames."""
    from synthesis.targets import demo, standardise

    return standardise(demo.lognormal(16, seed=1))


@pytest.fixture(autouse=True, scope="module")
def _compiled_programs_freed_after_each_module():
    """Each compiled XLA:CPU program holds a few memory mappings of its own (its code and
    data, ~8 for a small one) until JAX drops it; one process running the whole suite kept
    thousands of programs and crossed the kernel's limit of 65,530 mappings per process
    (``vm.max_map_count``), where XLA's next compilation failed with a segmentation fault.
    Cleared after each test module: later modules recompile what they use."""
    yield
    jax.clear_caches()
    gc.collect()
