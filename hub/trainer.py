"""The default trainer, run by the hub as a command like any custom one:

    python -m hub.trainer DATASET_DIR OUTPUT_FILE

The contract (README, "Retraining"): DATASET_DIR holds train.csv (one column per model input,
in order, and a ``label`` column), holdout.csv (same columns; for the trainer's own checks, not
for fitting), meta.json (inputs, label, classes) and trainer.json (seed and the trainer's own
settings); the command writes an ONNX model to OUTPUT_FILE that takes a float32
[N, inputs] tensor and returns class probabilities, and exits 0. Anything else is a failed run
and leaves the fleet alone. This one fits scikit-learn gradient boosting or a random forest
(``trainer.json: kind``) with the given seed and converts it with skl2onnx."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from agent.models.training import train_onnx

VERSION = "sklearn-default 1"


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
    train_onnx(x, y, output, kind=str(settings.get("kind", "gbt")), seed=int(settings.get("seed", 0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
