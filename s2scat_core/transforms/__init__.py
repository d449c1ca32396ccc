"""Spherical-harmonic transform backends, all behind :class:`.base.SphericalTransforms`.

Adding a backend: a module here with a :class:`SphericalTransforms` subclass and one line in
``BACKENDS``.
"""

from __future__ import annotations

from ..harmonics import expand_half
from .base import SphericalTransforms, gl_thetas, gl_weights
from .ducc import DuccTransforms
from .precompute import PrecomputeTransforms
from .recursive import RecursiveTransforms

BACKENDS: dict[str, type[SphericalTransforms]] = {
    "precompute": PrecomputeTransforms,
    "recursive": RecursiveTransforms,
    "ducc": DuccTransforms,
}


def get(mode: str) -> type[SphericalTransforms]:
    """The backend class registered under ``mode``; ``ValueError`` naming the choices otherwise."""
    try:
        return BACKENDS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"mode must be one of {sorted(BACKENDS)}, got {mode!r}") from None


__all__ = ["BACKENDS", "SphericalTransforms", "expand_half", "get", "gl_thetas", "gl_weights"]
