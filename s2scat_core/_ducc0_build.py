"""Which of ducc0's builds runs: chosen here, before ducc0 is first imported.

ducc0's wheel carries one build per x86-64 level (v1 to v4) and loads the highest the CPU
runs, unless the environment variable ``DUCC0_MAX_PSABI_LEVEL`` caps it; the variable is read
once, when ducc0 is imported. The x86-64-v4 (AVX-512) build is not reproducible from one
process to the next (its Legendre recursion coefficients came out one ulp apart depending on
where the allocator placed its buffers): the ``ducc`` backend's gradient at L = 64 took two
values in four fresh processes, and L-BFGS amplified the difference into runs that a resumed
checkpoint could not reproduce bit for bit. The v3 (AVX2) build gave the same bits in six of
six; it costs 1.1x (forward and gradient at L = 128 and 512 on a 2-core AVX-512 CPU:
docs/performance.md).

So this package caps ducc0 at level 3 unless the user has set ``DUCC0_MAX_PSABI_LEVEL``
(set it to 4 to trade reproducibility for the last few per cent). Where ducc0 was imported
before this package, its build is already chosen: :data:`REPRODUCIBLE` says so and the
``ducc`` backend warns once when built.
"""

from __future__ import annotations

import os
import sys
import warnings

VARIABLE = "DUCC0_MAX_PSABI_LEVEL"
#: The level this package asks for: x86-64-v3 (AVX2, FMA); as the variable's text.
LEVEL = "3"

_IMPORTED_BEFORE = "ducc0" in sys.modules
if not _IMPORTED_BEFORE:
    os.environ.setdefault(VARIABLE, LEVEL)

#: Whether the ducc0 build in this process is one whose results do not depend on memory
#: placement: capped at level 3 or below (by this package or the user) before ducc0 loaded.
REPRODUCIBLE = (not _IMPORTED_BEFORE and os.environ[VARIABLE].strip().isdigit()
                and int(os.environ[VARIABLE]) <= int(LEVEL))

_warned = False


def warn_if_unreproducible() -> None:
    """Warn once per process where ducc0 may run its x86-64-v4 build (see the module text)."""
    global _warned
    if REPRODUCIBLE or _warned:
        return
    _warned = True
    why = ("ducc0 was imported before s2scat_core" if _IMPORTED_BEFORE
           else f"{VARIABLE}={os.environ.get(VARIABLE)!r} was set")
    warnings.warn(f"{why}, so ducc0 may run its AVX-512 build, whose results differ by an ulp "
                  "from one process to the next: runs with the 'ducc' backend are not bitwise "
                  f"reproducible and a resumed run may drift from an uninterrupted one "
                  f"(import s2scat_core first, or set {VARIABLE}={LEVEL})",
                  RuntimeWarning, stacklevel=3)
