"""Train a first model with scikit-learn and convert it with skl2onnx (the 'train' extra)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from agent.errors import AgentError


def write_csv(path: Path, x: np.ndarray, names: list[str], labels: np.ndarray,
              timestamps: np.ndarray | None = None) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow((["timestamp"] if timestamps is not None else []) + names + ["label"])
        for i, row in enumerate(x):
            prefix = [f"{timestamps[i]:.3f}"] if timestamps is not None else []
            writer.writerow(prefix + [f"{v:.6g}" for v in row] + [labels[i]])


def train_onnx(x: np.ndarray, y: np.ndarray, out: Path, kind: str = "gbt", seed: int = 0) -> Path:
    """Fit a classifier and write it as ONNX with a plain probability tensor (no ZipMap)."""
    try:
        from skl2onnx import to_onnx
        from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    except ImportError:
        raise AgentError("training needs the 'train' extra: "
                         "pip install 'factory-edge-agent[train]'") from None
    if kind == "rf":
        model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=seed)
    else:
        model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    model.fit(x.astype(np.float32), y)
    onx = to_onnx(model, x[:1].astype(np.float32), options={id(model): {"zipmap": False}},
                  target_opset=17)
    out.write_bytes(onx.SerializeToString())
    return out
