"""Argument checks shared by the public functions: one clear ``ValueError`` each."""

from __future__ import annotations

import numbers


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None,
              hint: str = "") -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{hint}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{hint}, got {value}")
    return value


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_scales(L, N, J_min, delta_j):
    """Validate the scale configuration; return ``(L, N, J_min, J, delta_j)`` with ``J = j_max(L)``."""
    from .wavelets import j_max

    L = check_int("L", L, minimum=2)
    N = check_int("N", N, minimum=1)
    J = j_max(L)
    J_min = check_int("J_min", J_min, minimum=0, maximum=J - 1, hint=f" (j_max(L={L}) - 1)")
    if delta_j is not None:
        delta_j = check_int("delta_j", delta_j, minimum=1)
    return L, N, J_min, J, delta_j
