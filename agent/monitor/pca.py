"""The multivariate detector's reference: the principal subspace of the standardised inputs and
the log reconstruction error outside it, which grows when inputs leave the correlations seen in
the reference (a broken tie between tags).

The subspace leaves out at least one direction in which the reference rows really vary. A tag
that is an exact function of others (a computed total, a redundant sensor) adds a direction
with no variance at all; counted as the residual, the reference error was the float floor
(spread 0) and float32 rounding on the line an alarm within minutes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agent.monitor.budget import Budget
from agent.monitor.cusum import Cusum
from agent.monitor.laws import cusum_h, long_run_inflation
from agent.monitor.replaycheck import fired_too_often

EXPLAINED = 0.9  # the principal subspace: the fewest components with 90% of the variance
# a direction with less than this share of the total variance is none: float32 rounding of
# standardised values is about 1e-7 of them, its variance share about 1e-14
NO_VARIANCE = 1e-10


def pca_section(x: np.ndarray, mean: np.ndarray, std: np.ndarray, budget: Budget,
                share: float) -> dict[str, Any] | None:
    """The manifest's ``multivariate`` section; None when the reference rows vary in fewer
    than two directions (nothing is left outside a subspace to watch)."""
    safe_std = np.where(std > 0, std, 1.0)
    z = (x - mean) / safe_std
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    variance = s**2 / max(float(np.sum(s**2)), 1e-300)
    rank = int((variance > NO_VARIANCE).sum())
    if rank < 2:
        return None
    explained = np.cumsum(variance)
    m = min(rank - 1, max(1, int(np.searchsorted(explained, EXPLAINED)) + 1))
    comps = vt[:m]
    err = reconstruction_log_error(z, comps)
    e_std = float(err.std() * math.sqrt(float(long_run_inflation(err, safe=True)[0])))
    warn_rate, alarm_rate = budget.rates(share)
    week = budget.samples_per_week
    h_warn = cusum_h(week / warn_rate, budget.cusum_k, False, 1 / len(x))
    h_alarm = cusum_h(week / alarm_rate, budget.cusum_k, False, 1 / len(x))
    for _ in range(20):  # replay check, as for the per-feature detectors
        c = Cusum(np.array([err.mean()]), np.array([e_std]), budget.cusum_k, h_alarm, True, h_warn)
        if not fired_too_often(c, err[:, None], len(err), alarm_rate, week):
            break
        h_alarm, h_warn = h_alarm * 1.25, h_warn * 1.25
    return {"mean": mean.tolist(), "scale": safe_std.tolist(), "components": comps.tolist(),
            "error_mean": float(err.mean()), "error_std": e_std, "cusum_k": budget.cusum_k,
            "h_warn": h_warn, "h_alarm": h_alarm, "explained": float(explained[m - 1]),
            "rank": rank}


def reconstruction_log_error(z: np.ndarray, comps: np.ndarray) -> np.ndarray:
    """Log of each row's squared distance from the principal subspace. The residual and its
    squares reuse the reconstruction's buffer (per batch of 64 the temporaries cost a third)."""
    residual = (z @ comps.T) @ comps
    np.subtract(z, residual, out=residual)
    np.multiply(residual, residual, out=residual)
    total = np.add.reduce(residual, axis=1)
    total += 1e-9
    return np.asarray(np.log(total, out=total))


def same_standardisation(pca: dict[str, Any] | None, scale: dict[str, Any] | None) -> bool:
    """Whether the PCA standardises the inputs exactly as the scale section does (both from
    the same reference rows, as bundles build them): the monitor then computes it once."""
    return (pca is not None and scale is not None and pca["mean"] == scale["mean"]
            and pca["scale"] == scale["std"])
