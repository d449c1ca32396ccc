r"""What each entry of each flat statistic is, and how many there are, without computing them.

Indices: ``j`` scales (``J_min..J``), ``k`` directions (``0..2N-2``, angle ``gamma_k = 2 pi k/(2N-1)``).

* ``mean``, ``var``: one entry each, no index.
* ``S1``, ``S2``: ``(j, k)``, ``j`` slowest.
* ``S3``: ``(j1, j2, k2, k1)`` with ``j1 < j2``: ``Cov[W_{j1,k1} f, W_{j1,k1} |W_{j2,k2} f|]``.
  Isotropic: ``(j1, j2)`` (summed over ``k2, k1``).
* ``S4``: ``(j1, j2, j3, k2, k3, k1)`` with ``j1 < j2, j3``:
  ``Cov[W_{j1,k1} |W_{j2,k2} f|, W_{j1,k1} |W_{j3,k3} f|]``. Isotropic: ``(j1, j2, j3)``.

With ``delta_j``, only ``j2, j3 <= j1 + delta_j`` appear. The order is S2SCAT 0.0.3's.
With ``same_scale``, ``j2, j3 >= j1`` (each scale also paired with itself, after S2SCAT's
order within each ``j1``: ``j2 = j1`` first); S2SCAT 0.0.3 has ``j1 < j2`` only.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._checks import check_scales

STATISTICS = ("mean", "var", "S1", "S2", "S3", "S4")

FIELDS = {
    "mean": (), "var": (), "S1": ("j", "k"), "S2": ("j", "k"),
    "S3": ("j1", "j2", "k2", "k1"), "S4": ("j1", "j2", "j3", "k2", "k3", "k1"),
}
ISOTROPIC_FIELDS = {**FIELDS, "S3": ("j1", "j2"), "S4": ("j1", "j2", "j3")}


def partners(j1: int, J: int, delta_j: int | None = None, same_scale: bool = False) -> range:
    """Scales ``j2`` paired with ``j1`` in S3/S4: ``j1 < j2 <= J`` (S2SCAT 0.0.3), from
    ``j2 = j1`` with ``same_scale``, and up to ``j1 + delta_j`` when ``delta_j`` is given."""
    top = J if delta_j is None else min(j1 + delta_j, J)
    return range(j1 if same_scale else j1 + 1, top + 1)


def counts(L: int, N: int, J_min: int = 0, *, delta_j: int | None = None,
           isotropic: bool = False, same_scale: bool = False) -> dict[str, int]:
    """Number of entries of each statistic, e.g. ``{"mean": 1, ..., "S4": 3750}``."""
    L, N, J_min, J, delta_j = check_scales(L, N, J_min, delta_j)
    K = 2 * N - 1
    nJ = J - J_min + 1
    pairs = [len(partners(j1, J, delta_j, same_scale)) for j1 in range(J_min, J + 1)]
    if isotropic:
        s3, s4 = sum(pairs), sum(a * a for a in pairs)
    else:
        s3, s4 = sum(pairs) * K * K, sum(a * a for a in pairs) * K**3
    return {"mean": 1, "var": 1, "S1": nJ * K, "S2": nJ * K, "S3": s3, "S4": s4}


def labels(L: int, N: int, J_min: int = 0, *, delta_j: int | None = None,
           isotropic: bool = False, same_scale: bool = False) -> dict[str, np.ndarray]:
    """For each statistic a structured integer array, one record per flat entry.

    ``labels(16, 3)["S3"][7]`` gives ``(j1, j2, k2, k1)`` of entry 7 of ``S3``; field names are
    in :data:`FIELDS` (:data:`ISOTROPIC_FIELDS` when ``isotropic``).
    """
    L, N, J_min, J, delta_j = check_scales(L, N, J_min, delta_j)
    K = range(2 * N - 1)
    rows = {"mean": [()], "var": [()]}
    rows["S1"] = rows["S2"] = list(itertools.product(range(J_min, J + 1), K))
    s3, s4 = [], []
    for j1 in range(J_min, J + 1):
        js = partners(j1, J, delta_j, same_scale)
        if isotropic:
            s3 += [(j1, j2) for j2 in js]
            s4 += [(j1, j2, j3) for j2 in js for j3 in js]
        else:
            s3 += [(j1, j2, k2, k1) for j2 in js for k2 in K for k1 in K]
            s4 += [(j1, j2, j3, k2, k3, k1) for j2 in js for j3 in js
                   for k2 in K for k3 in K for k1 in K]
    rows["S3"], rows["S4"] = s3, s4
    names = ISOTROPIC_FIELDS if isotropic else FIELDS
    out = {}
    for stat in STATISTICS:
        dtype = [(name, np.int32) for name in names[stat]]
        if not dtype:
            out[stat] = np.zeros(1, dtype=[("entry", np.int32)])
        else:
            out[stat] = np.array(rows[stat], dtype=dtype)
    return out
