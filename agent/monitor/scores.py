"""The model's score as the prediction-drift CUSUM sees it: its normal scores.

Scores are skewed (a classifier's most of all): the CUSUM watches the held-out distribution
mapped onto N(0, 1), which its law assumes. The table is fitted on held-out rows; its own
rows would look exactly normal through it, so the spread the CUSUM is calibrated with is
cross-fitted (each half mapped by the other half's table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np

from agent.monitor.laws import long_run_inflation

NORMAL_SCORE_POINTS = 200


def normal_scores_table(score: np.ndarray) -> dict[str, list[float]]:
    """Quantiles of the held-out scores and the standard normal quantiles they map to."""
    n = len(score)
    probs = (np.arange(NORMAL_SCORE_POINTS) + 0.5) / NORMAL_SCORE_POINTS
    probs = np.clip(probs, 0.5 / n, 1 - 0.5 / n)
    values = np.quantile(np.asarray(score, dtype=np.float64), probs)
    z = np.array([NormalDist().inv_cdf(float(p)) for p in probs])
    uniq, first = np.unique(values, return_index=True)  # ties (tree models): one z per value
    z_mean = np.array([z[values == v].mean() for v in uniq]) if len(uniq) < len(values) else z[first]
    return {"values": uniq.tolist(), "z": z_mean.tolist()}


def cross_fitted(score: np.ndarray, span: float = 0.0) -> tuple[float, float, float]:
    """Mean, spread and long-run inflation of the normal scores, each half of the held-out rows
    mapped by the table of the other half: the table fitted on the same rows would make them look
    exactly normal, narrower than new data will be."""
    half = len(score) // 2
    if half < 20:
        z = score_transform(score, "normal_scores", normal_scores_table(score))
        return float(z.mean()), float(z.std()), float(long_run_inflation(z, safe=True, slow=span)[0])
    parts = [(score[:half], score[half:]), (score[half:], score[:half])]
    stats = []
    for fit, use in parts:
        z = score_transform(use, "normal_scores", normal_scores_table(fit))
        stats.append((float(z.mean()), float(z.var()),
                      float(long_run_inflation(z, safe=True, slow=span)[0])))
    mean = sum(m for m, _, _ in stats) / 2
    spread = math.sqrt(sum(v for _, v, _ in stats) / 2 + sum((m - mean) ** 2 for m, _, _ in stats) / 2)
    return mean, spread, max(i for _, _, i in stats)


def table_arrays(table: Mapping[str, Sequence[float]] | None) -> dict[str, np.ndarray] | None:
    """The normal-scores table as float arrays, converted once: np.interp converting the two
    lists of 200 on every call is most of the transform's cost on a batch of 64."""
    if table is None:
        return None
    return {key: np.asarray(values, dtype=np.float64) for key, values in table.items()}


def score_transform(score: np.ndarray, transform: str,
                    table: Mapping[str, Sequence[float] | np.ndarray] | None = None) -> np.ndarray:
    if transform == "normal_scores" and table is not None:
        if len(table["values"]) < 2:
            return np.zeros(len(score))
        return np.asarray(np.interp(score, table["values"], table["z"]))
    if transform == "logit":
        p = np.clip(score, 1e-6, 1 - 1e-6)
        return np.asarray(np.log(p / (1 - p)))
    return np.asarray(score, dtype=np.float64)
