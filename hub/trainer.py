"""The default trainer, run by the hub as a command like any custom one:

    python -m hub.trainer DATASET_DIR OUTPUT_FILE

The contract (docs/retraining.md): DATASET_DIR holds train.csv (one column per model input,
in order, and a ``label`` column), holdout.csv (same columns; for the trainer's own checks, not
for fitting), meta.json (inputs, label, classes) and trainer.json (``seed``, ``kind`` and the
plant's costs: ``positive_class``, ``cost_missed_nok``, ``cost_false_nok``); the command writes
an ONNX model to OUTPUT_FILE that takes a float32 [N, inputs] tensor and returns class
probabilities, and exits 0. Anything else is a failed run and leaves the fleet alone.

This one fits a scikit-learn logistic regression on standardised inputs, gradient boosting, a
random forest, or (``auto``, the default) whichever of the first two has the lower cost-weighted
error over folds of the training data; each part weighs what misclassifying its class costs, so
the model's decision is the cheapest one. skl2onnx converts it."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from agent.models.training import class_weights, train_onnx

VERSION = "sklearn-default 2"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m hub.trainer DATASET_DIR OUTPUT_FILE", file=sys.stderr)
        return 2
    dataset, output = Path(args[0]), Path(args[1])
    meta = json.loads((dataset / "meta.json").read_text())
    settings = json.loads((dataset / "trainer.json").read_text())
    with (dataset / "train.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    inputs = meta["inputs"]
    x = np.array([[float(r[c]) for c in inputs] for r in rows], dtype=np.float32)
    y = np.array([r[meta.get("label", "label")] for r in rows])
    weights = class_weights(float(settings.get("cost_missed_nok", 1.0)),
                            float(settings.get("cost_false_nok", 1.0)), settings.get("positive_class"))
    kind = str(settings.get("kind", "auto"))
    train_onnx(x, y, output, kind=kind if kind != "custom" else "auto", seed=int(settings.get("seed", 0)),
               class_weight=weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
