"""Reference profile of training data: what 'normal' looks like, shipped in the bundle."""

from __future__ import annotations

from typing import Any

import numpy as np

DECILES = np.linspace(0.1, 0.9, 9)


def feature_profile(values: np.ndarray) -> dict[str, Any]:
    """Bin edges from deciles (plus min/max) so each inner bin holds ~10% of training data.

    Two overflow bins (below min, above max) catch values never seen in training.
    """
    v = values[np.isfinite(values)]
    inner = np.unique(np.quantile(v, DECILES)) if v.size else np.array([])
    edges = np.concatenate(([v.min()], inner, [v.max()])) if v.size else np.array([0.0, 0.0])
    edges = np.unique(edges)
    counts = bin_counts(v, edges)
    return {
        "edges": edges.tolist(),
        "proportions": (counts / max(1, v.size)).tolist(),
        "mean": float(v.mean()) if v.size else 0.0,
        "std": float(v.std()) if v.size else 0.0,
        "min": float(v.min()) if v.size else 0.0,
        "max": float(v.max()) if v.size else 0.0,
        "count": int(v.size),
    }


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts over len(edges)+1 bins: underflow, the inner bins, overflow."""
    idx = np.searchsorted(edges, values, side="right")
    # a value equal to the last edge belongs to the last inner bin, not overflow
    idx = np.where(values == edges[-1], len(edges) - 1, idx)
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def category_profile(values: np.ndarray) -> dict[str, Any]:
    """The categories (numeric codes) seen in training and how often each occurred."""
    v = values[np.isfinite(values)]
    cats, counts = np.unique(v, return_counts=True)
    return {"categories": cats.tolist(), "category_proportions": (counts / max(1, v.size)).tolist()}


def build_profile(x: np.ndarray, names: list[str], scores: np.ndarray,
                  categorical: set[str] | None = None) -> dict[str, Any]:
    cat = categorical or set()
    return {
        "features": {name: {**feature_profile(x[:, i]),
                            **(category_profile(x[:, i]) if name in cat else {})}
                     for i, name in enumerate(names)},
        "prediction": feature_profile(scores),
        "rows": int(x.shape[0]),
    }
