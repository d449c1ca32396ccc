"""The checks of :func:`synthesis.engine.synthesize`'s arguments: one-line errors that name the
argument, what was expected and what came (before anything is computed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from s2scat_core import harmonics
from s2scat_core._checks import check_int


def check_options(*, L, count, steps, seed, chunk, tolerance, init, pdf_weight, entry_weights,
                  cross_weight, learning_rate) -> tuple[int, int, int, int, int]:
    """The scalar options; returns ``(L, count, steps, seed, chunk)`` as ints."""
    L = check_int("L", L, minimum=2)
    count = check_int("count", count, minimum=1)
    steps = check_int("steps", steps, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    chunk = check_int("chunk", chunk, minimum=1)
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance must be a number in [0, 1), got {tolerance!r}")
    if init not in ("power", "white"):
        raise ValueError(f"init must be 'power' or 'white', got {init!r}")
    if not (isinstance(pdf_weight, (int, float)) and np.isfinite(pdf_weight) and pdf_weight >= 0):
        raise ValueError(f"pdf_weight must be a number >= 0, got {pdf_weight!r}")
    if entry_weights not in ("auto", "none"):
        raise ValueError(f"entry_weights must be 'auto' or 'none', got {entry_weights!r}")
    if not (isinstance(cross_weight, (int, float)) and np.isfinite(cross_weight)
            and cross_weight >= 0):
        raise ValueError(f"cross_weight must be a number >= 0, got {cross_weight!r}")
    if isinstance(learning_rate, bool) or not np.isfinite(_number(learning_rate)):
        raise ValueError(f"learning_rate must be a finite number, got {learning_rate!r}")
    return L, count, steps, seed, chunk


def check_targets(target_flm, L, second_flm, mask, constrained):
    """``(members (M, L, 2L-1), second (1, L, 2L-1) or None)``: the target (or ensemble) and
    a pair's second target, checked together with ``mask`` and ``constrained``."""
    members = check_target(target_flm, L)
    second = None
    if second_flm is not None:
        if members.shape[0] > 1:
            raise ValueError("a pair (second_flm) is synthesised from one target pair, not an "
                             "ensemble")
        if constrained:
            raise ValueError("constrained synthesis completes one field, not a pair (second_flm)")
        second = check_target(second_flm, L, name="second_flm")
    if constrained and mask is None:
        raise ValueError("constrained synthesis needs a mask (the observed pixels to keep)")
    if constrained and members.shape[0] > 1:
        raise ValueError(f"constrained synthesis completes one target, got an ensemble of "
                         f"{members.shape[0]}")
    return members, second


def masks_on_grid(mask, L):
    """The mask as the ``(L, 2L-1)`` array ``op.mask`` checks (the same checks, named)."""
    from s2scat_core.masks import check_mask

    return check_mask(mask, L)


def _number(value) -> float:
    """``float(value)``, NaN for what is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def check_target(target_flm, L, name="target_flm") -> jax.Array:
    """``(M, L, 2L-1)``: the target (``M = 1``) or the ensemble's members, checked, truncated."""
    flm = np.asarray(target_flm)
    single = flm.ndim == 2
    if single:
        flm = flm[None]
    if flm.ndim != 3 or flm.shape[2] != 2 * flm.shape[1] - 1 or flm.shape[0] < 1:
        raise ValueError(f"{name} must have shape (L0, 2L0-1) or (M, L0, 2L0-1), got "
                         f"{np.shape(target_flm)}")
    if flm.shape[1] < L:
        raise ValueError(f"{name} has band-limit {flm.shape[1]} < L={L}")
    if not np.all(np.isfinite(flm)):
        raise ValueError(f"{name} must be finite")
    for i, f in enumerate(flm):
        where = "" if single else f" (member {i})"
        if not harmonics.is_hermitian(f, rtol=1e-8):
            raise ValueError(f"{name} must be the coefficients of a real field "
                             f"(Hermitian){where}")
        if not np.any(harmonics.truncate(f, L)[1:]):
            raise ValueError(f"{name} has no power at 1 <= l < L{where}")
    return jnp.asarray(harmonics.truncate(flm.astype(np.complex128), L))
