"""The PSI window's binning and its term table against the definitions they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from agent.monitor.detectors import Binner, WindowPSI
from agent.monitor.profile import bin_counts


def _bins_by_definition(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bin of each value, column by column, as the profile counts them (bin_counts' rule)."""
    out = np.empty(x.shape, dtype=np.int64)
    for col in range(x.shape[1]):
        e = edges[col][np.isfinite(edges[col])]
        idx = np.searchsorted(e, x[:, col], side="right")
        out[:, col] = np.where(x[:, col] == e[-1], len(e) - 1, idx)
    return out


def test_binner_cells_are_column_times_bins_plus_the_profiles_bin() -> None:
    rng = np.random.default_rng(5)
    # full deciles, fewer distinct edges (+inf padded), and a constant training feature
    edges = np.array([np.quantile(rng.normal(size=500), np.linspace(0, 1, 11)),
                      [0.0, 1.0, 2.5, *[np.inf] * 8],
                      [3.0, *[np.inf] * 10]])
    x = rng.normal(scale=2.0, size=(2000, 3))
    # exact edges (the training minimum, maximum and inner edges), beyond them, infinities
    x[:11, 0] = edges[0]
    x[:3, 1] = edges[1, :3]
    x[:3, 2] = [3.0, np.nextafter(3.0, 4.0), np.nextafter(3.0, 2.0)]
    x[20, 0] = np.nextafter(edges[0, 4], -np.inf)  # just below an inner edge
    x[21, 0] = np.nextafter(edges[0, -1], np.inf)  # just above the maximum
    x[11:14] = np.array([np.inf, -np.inf, 1e300])[:, None]
    binner = Binner(edges)
    cells = binner(x)
    assert np.array_equal(cells, _bins_by_definition(edges, x) + np.arange(3) * 12)
    assert cells[0, 0] == 1 and cells[10, 0] == 10  # minimum: first inner bin; maximum: last inner
    assert cells[11].tolist() == [11, 12 + 3, 24 + 1]  # +inf: each feature's own overflow bin
    assert cells[12].tolist() == [0, 12, 24]
    with pytest.raises(ValueError, match="2 columns for the edges of 3"):
        binner(x[:, :2])


def test_binner_counts_match_the_profile_of_the_same_values() -> None:
    rng = np.random.default_rng(6)
    values = rng.exponential(size=1000)
    edges = np.unique(np.concatenate([[values.min()], np.quantile(values, np.linspace(0.1, 0.9, 9)),
                                      [values.max()]]))
    cells = Binner(edges[None, :])(values[:, None])
    assert np.array_equal(np.bincount(cells[:, 0], minlength=len(edges) + 1),
                          bin_counts(values, edges))


def test_psi_from_the_term_table_is_bitwise_the_computed_one() -> None:
    rng = np.random.default_rng(7)
    edges = np.sort(rng.normal(size=(4, 9)), axis=1)
    props = rng.dirichlet(np.ones(10), size=4)
    props[1, 3] = 0.0  # floored at EPS like an empty window bin
    table, computed = WindowPSI(edges, props, 300, 25), WindowPSI(edges, props, 300, 25)
    computed.TABLE_LIMIT = 0  # this one always computes its terms
    x = rng.normal(size=(3000, 4))
    x[1500:, 2] += 1.0
    got, want = table.update(x), computed.update(x)
    assert len(got) == len(want) > 100
    for (i, a), (j, b) in zip(got, want, strict=True):
        assert i == j and np.array_equal(a, b)


def test_psi_state_keeps_bins_per_column_and_restores() -> None:
    rng = np.random.default_rng(8)
    edges = np.sort(rng.normal(size=(3, 5)), axis=1)
    props = np.full((3, 6), 1 / 6)
    psi = WindowPSI(edges, props, 50, 10)
    psi.update(rng.normal(size=(77, 3)))
    state = psi.state()
    assert state["ring"].dtype == np.int16 and 0 <= state["ring"].min() and state["ring"].max() <= 5
    again = WindowPSI(edges, props, 50, 10)
    again.restore(state)
    more = rng.normal(size=(200, 3))
    assert [(i, v.tolist()) for i, v in psi.update(more)] == [(i, v.tolist()) for i, v in again.update(more)]
