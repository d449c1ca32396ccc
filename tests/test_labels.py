"""Labels say what each flat entry is: checked by regrouping real outputs with them."""

import numpy as np
import pytest

import s2scat_core
from s2scat_core import labels
from conftest import random_half, rel_err


def test_counts_for_a_known_configuration():
    # L = 16 -> J = 4, scales 0..4, N = 3 -> 5 directions; j1 = 0..3 pairs with 4, 3, 2, 1 scales.
    assert labels.counts(16, 3) == {"mean": 1, "var": 1, "S1": 25, "S2": 25,
                                    "S3": 10 * 25, "S4": (16 + 9 + 4 + 1) * 125}
    assert labels.counts(16, 3, delta_j=2, isotropic=True)["S3"] == 2 + 2 + 2 + 1
    assert labels.counts(16, 3, delta_j=2, isotropic=True)["S4"] == 4 + 4 + 4 + 1


def test_label_order_for_a_small_case():
    lab = labels.labels(8, 1)  # J = 3, one direction
    assert [tuple(r)[:2] for r in lab["S3"]] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert [tuple(r) for r in lab["S1"]] == [(j, 0) for j in range(4)]
    assert lab["S4"].dtype.names == ("j1", "j2", "j3", "k2", "k3", "k1")
    assert tuple(lab["S4"][1]) == (0, 1, 2, 0, 0, 0)


def test_same_scale_pairs_each_scale_with_itself_first():
    lab = labels.labels(8, 1, same_scale=True)  # J = 3: j1 = 3 now has a partner, itself
    assert [tuple(r)[:2] for r in lab["S3"]] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2),
                                                 (1, 3), (2, 2), (2, 3), (3, 3)]
    assert labels.counts(16, 3, same_scale=True) == {
        "mean": 1, "var": 1, "S1": 25, "S2": 25, "S3": 15 * 25, "S4": (25 + 16 + 9 + 4 + 1) * 125}
    assert labels.counts(16, 3, delta_j=1, isotropic=True, same_scale=True)["S4"] == 4 * 4 + 1
    op = s2scat_core.build(16, 2, 1, same_scale=True)
    assert {k: len(v) for k, v in op.labels().items()} == op.counts


@pytest.mark.parametrize("L, N, J_min", [(16, 2, 0), (16, 3, 1)])
def test_labels_select_delta_j_and_group_isotropic_sums(L, N, J_min):
    flm = random_half(L, seed=11)
    full = s2scat_core.build(L, N, J_min).scatter(flm)
    lab = labels.labels(L, N, J_min)
    for name, fields in (("S3", ("j1", "j2")), ("S4", ("j1", "j2", "j3"))):
        entries = np.asarray(getattr(full, name))
        records = lab[name]
        # delta_j = 1 keeps exactly the entries whose partner scales are within 1 of j1.
        near = np.ones(len(records), bool)
        for f in fields[1:]:
            near &= records[f] - records["j1"] <= 1
        narrow = s2scat_core.build(L, N, J_min, delta_j=1).scatter(flm)
        assert rel_err(getattr(narrow, name), entries[near]) < 1e-12
        # The isotropic statistic is the sum over directions of the entries with the same scales.
        iso = np.asarray(getattr(s2scat_core.build(L, N, J_min, isotropic=True).scatter(flm), name))
        iso_lab = labels.labels(L, N, J_min, isotropic=True)[name]
        assert iso_lab.dtype.names == fields
        for value, rec in zip(iso, iso_lab):
            match = np.all([records[f] == rec[f] for f in fields], axis=0)
            assert np.isclose(value, entries[match].sum(), rtol=1e-12, atol=1e-14)


def test_labels_lengths_equal_counts_and_op_methods():
    op = s2scat_core.build(32, 2, 1, delta_j=2)
    assert {k: len(v) for k, v in op.labels().items()} == op.counts
    assert op.counts == labels.counts(32, 2, 1, delta_j=2)


def test_labels_refuse_bad_arguments():
    with pytest.raises(ValueError, match="J_min"):
        labels.counts(16, 2, 4)
    with pytest.raises(ValueError, match="delta_j"):
        labels.labels(16, 2, delta_j=0)
