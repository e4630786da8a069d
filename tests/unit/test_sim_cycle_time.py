"""The simulated line's second target, the cycle time per part: a regression target of a few
process tags plus noise that the drift story leaves alone, on a random stream of its own."""

from __future__ import annotations

import numpy as np

from agent.demo.sim.process import (
    CYCLE_INPUTS,
    CYCLE_NOISE_S,
    PROCESS_TAGS,
    full_history,
    history,
    parse_drift,
)

DRIFT = parse_drift("resin@15000,concept@30000")  # parts 500 and 1000 of 1500


def test_the_cycle_time_is_its_own_stream() -> None:
    x, names, y = history(600, seed=3, drift=DRIFT)
    x2, names2, y2, cycle = full_history(600, seed=3, drift=DRIFT)
    assert names == names2 and np.array_equal(x, x2) and np.array_equal(y, y2)
    assert cycle.shape == (600,) and np.all(np.isfinite(cycle))


def test_the_drift_story_leaves_the_cycle_time_and_its_tags_alone() -> None:
    x0, _, y0, c0 = full_history(1500, seed=4)
    x1, _, y1, c1 = full_history(1500, seed=4, drift=DRIFT)
    assert np.array_equal(c0, c1)  # the same cycle time for every part, drift or not
    cols = [PROCESS_TAGS.index(t) for t in CYCLE_INPUTS]
    assert np.array_equal(x0[:, cols], x1[:, cols])
    # while the quality side did change: the resin moved other tags, the relation other labels
    assert not np.array_equal(x0, x1) and not np.array_equal(y0[1000:], y1[1000:])


def test_a_few_tags_explain_it_none_alone() -> None:
    x, _, _, cycle = full_history(4000, seed=5)
    corr = {t: abs(np.corrcoef(x[:, PROCESS_TAGS.index(t)], cycle)[0, 1]) for t in PROCESS_TAGS}
    assert max(corr.values()) < 0.8, corr
    assert all(corr[t] > 0.2 for t in CYCLE_INPUTS), corr
    # a linear fit on its three tags leaves about the noise
    a = np.column_stack([x[:, [PROCESS_TAGS.index(t) for t in CYCLE_INPUTS]], np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(a, cycle, rcond=None)
    residual = cycle - a @ coef
    assert 0.8 * CYCLE_NOISE_S < residual.std() < 1.2 * CYCLE_NOISE_S
    assert residual.std() < 0.4 * cycle.std()
