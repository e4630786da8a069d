"""The replay check every detector's thresholds pass: the reference rows hold no drift by
definition, so a threshold they cross more often than its law allows is raised."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from agent.monitor.cusum import Cusum


def allowed_alarms(rows: int, rate_per_week: float, samples_per_week: float) -> int:
    """Most alarms a drift-free replay of ``rows`` samples may show under a detector's law: the
    99% quantile of Poisson(rows x rate). More than that and the law does not fit these data:
    the threshold is raised (a replay check that raises at the first alarm would spend budget
    on chance)."""
    lam = rows * rate_per_week / samples_per_week
    count, term = 0, math.exp(-lam)
    cdf = term
    while 1 - cdf > 0.01 and count < 10_000:
        count += 1
        term *= lam / count
        cdf += term
    return count


def fired_too_often(cusum: Cusum, x: np.ndarray, rows: int, rate_per_week: float,
                    samples_per_week: float) -> set[int]:
    counts: dict[int, int] = {}
    for d in cusum.update(x):
        if d.level == "alarm":
            counts[d.column] = counts.get(d.column, 0) + 1
    limit = allowed_alarms(rows, rate_per_week, samples_per_week)
    return {col for col, n in counts.items() if n > limit}
