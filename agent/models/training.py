"""Train a classifier with scikit-learn and convert it with skl2onnx (the 'train' extra).

Cost-aware: each training part is weighted by what misclassifying its class costs the plant
(``class_weight``, from the cost matrix), so the model's own decision (the class of highest
weighted probability) is the one of lowest expected cost, not of highest accuracy.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import AgentError

log = logging.getLogger(__name__)

KINDS = ("gbt", "rf", "logistic", "auto")
AUTO_CANDIDATES = ("logistic", "gbt")  # what "auto" chooses between, by cross-validated cost
AUTO_FOLDS = 3


def write_csv(path: Path, x: np.ndarray, names: list[str], labels: np.ndarray,
              timestamps: np.ndarray | None = None) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow((["timestamp"] if timestamps is not None else []) + names + ["label"])
        for i, row in enumerate(x):
            prefix = [f"{timestamps[i]:.3f}"] if timestamps is not None else []
            writer.writerow(prefix + [f"{v:.6g}" for v in row] + [labels[i]])


def class_weights(missed: float, false: float, positive: str | None) -> dict[str, float]:
    """Weights per class from the cost matrix: the positive class weighs what missing one costs,
    every other class what a false call costs (the Bayes-optimal decision then is argmax)."""
    if positive is None or missed <= 0 or false <= 0:
        return {}
    return {positive: missed / false}


def _estimator(kind: str, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "rf":
        return RandomForestClassifier(n_estimators=50, max_depth=8, random_state=seed)
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    return GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)


def _fit(kind: str, x: np.ndarray, y: np.ndarray, weights: np.ndarray, seed: int) -> Any:
    model = _estimator(kind, seed)
    if kind == "logistic":
        model.fit(x, y, logisticregression__sample_weight=weights)
    else:
        model.fit(x, y, sample_weight=weights)
    return model


def _choose(x: np.ndarray, y: np.ndarray, weights: np.ndarray, seed: int) -> str:
    """The candidate with the lowest weighted error over stratified folds of the training
    data itself (the holdout stays for champion/challenger)."""
    from sklearn.model_selection import StratifiedKFold

    if min(np.unique(y, return_counts=True)[1]) < AUTO_FOLDS:
        return AUTO_CANDIDATES[0]
    folds = StratifiedKFold(AUTO_FOLDS, shuffle=True, random_state=seed)
    costs = {}
    for kind in AUTO_CANDIDATES:
        total = 0.0
        for fit_idx, test_idx in folds.split(x, y):
            model = _fit(kind, x[fit_idx], y[fit_idx], weights[fit_idx], seed)
            wrong = model.predict(x[test_idx]) != y[test_idx]
            total += float(np.sum(weights[test_idx] * wrong))
        costs[kind] = total
    best = min(costs, key=lambda k: costs[k])
    log.info("trainer auto: weighted cross-validated errors %s -> %s", costs, best)
    return best


def train_onnx(x: np.ndarray, y: np.ndarray, out: Path, kind: str = "gbt", seed: int = 0,
               class_weight: dict[str, float] | None = None) -> Path:
    """Fit a classifier and write it as ONNX with a plain probability tensor (no ZipMap).
    ``class_weight`` maps a class to the weight of its parts (others weigh 1)."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise AgentError("training needs the 'train' extra: "
                         "pip install 'factory-edge-agent[train]'") from None
    if kind not in KINDS:
        raise AgentError(f"trainer kind {kind!r}: use one of {', '.join(KINDS)}")
    x = x.astype(np.float32)
    y = np.asarray(y)
    weights = np.array([float((class_weight or {}).get(str(v), 1.0)) for v in y])
    chosen = _choose(x, y, weights, seed) if kind == "auto" else kind
    model = _fit(chosen, x, y, weights, seed)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    onx = to_onnx(model, x[:1], options={id(final): {"zipmap": False}}, target_opset=17)
    out.write_bytes(onx.SerializeToString())
    return out


def train_regressor_onnx(x: np.ndarray, y: np.ndarray, out: Path, seed: int = 0) -> Path:
    """Fit a regressor (standardised ridge: it extrapolates a shifted input linearly, where a
    tree ensemble would flatten) and write it as ONNX with one value per row."""
    try:
        from skl2onnx import to_onnx
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise AgentError("training needs the 'train' extra: "
                         "pip install 'factory-edge-agent[train]'") from None
    x = x.astype(np.float32)
    values = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise AgentError("regression targets must be finite numbers (found NaN or infinity)")
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0, random_state=seed))
    model.fit(x, values)
    onx = to_onnx(model, x[:1], target_opset=17)
    out.write_bytes(onx.SerializeToString())
    return out
